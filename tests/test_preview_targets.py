"""The preview's target columns: affinities as RGB, boundaries, distance, LSD, point prompts.

Unit cases draw a synthetic batch whose targets come from the ``nj.targets`` functions and read
the panels back out of the picture; the command case runs ``neurons-jax preview --targets`` on
the sample workspace (the Loader computes the targets) and checks no target panel is blank.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import neurons_jax as nj
from neurons_jax import cli
from neurons_jax.preview import (
    BASE_COLUMNS,
    HEADER_LINES,
    NEGATIVE,
    PAD,
    POSITIVE,
    TITLE_H,
    check_picture_size,
    default_targets,
    montage,
    montage_size,
    target_columns,
)

VS = (30.0, 6.0, 6.0)


def panel(img: np.ndarray, b: int, k: int, shape, scale: int = 1, header: bool = True) -> np.ndarray:
    """Panel ``k`` (column) of sample ``b`` (row) of a montage, as (Y, X, 3) pixels."""
    Y, X = shape[-2] * scale, shape[-1] * scale
    top = TITLE_H + (HEADER_LINES * TITLE_H if header else 0) + b * (Y + TITLE_H + PAD) + TITLE_H
    left = PAD + k * (X + PAD)
    return img[top:top + Y, left:left + X]


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(3)
    ids = np.repeat(np.repeat(rng.integers(0, 6, (2, 4, 6, 6)), 8, 2), 8, 3).astype(np.uint32)
    batch = {"image": rng.random((*ids.shape, 1), dtype=np.float32), "semantic": (ids > 0).astype(np.uint8),
             "instance": ids, "dataset": np.array([0, 0]), "position": np.zeros((2, 3), int),
             "mask": np.ones(ids.shape, np.uint8)}
    targets = default_targets(["affinities,boundaries", "distance", "lsd", "point_prompts"])
    targets["lsd"] = nj.targets.LSD(sigma_nm=24.0)  # CPU LSDs cost: a small window
    for key, spec in targets.items():
        out = spec(ids, batch["semantic"], batch["mask"], VS, spec.draw(rng, len(ids)))
        batch.update({key if o == "target" else f"{key}_{o}": out[o] for o in spec.outputs})
    return batch, targets


def test_layout_counts_target_columns(synthetic):
    batch, targets = synthetic
    assert target_columns(targets) == 6  # lsd: mean offset and variance
    img = montage(batch, ["toy"], scale=2, targets=targets)
    assert img.size == montage_size(2, batch["semantic"].shape[1:], 2, extra_columns=6)
    assert montage(batch, ["toy"], scale=2).size == montage_size(2, batch["semantic"].shape[1:], 2)


def test_affinity_boundary_lsd_distance_panels_show_the_targets(synthetic):
    batch, targets = synthetic
    shape = batch["semantic"].shape[1:]
    z = shape[0] // 2
    px = np.asarray(montage(batch, ["toy"], scale=1, targets=targets))
    cols = {name: len(BASE_COLUMNS) + i for i, name in enumerate(
        ["affinity", "boundary", "distance", "lsd_offset", "lsd_variance", "prompts"])}
    for b in range(2):
        aff = panel(px, b, cols["affinity"], shape)  # first three affinity channels, 0/1 -> 0/255
        np.testing.assert_array_equal(aff, batch["affinity"][b, z, :, :, :3] * 255)
        bound = panel(px, b, cols["boundary"], shape)  # yellow where the contour is
        on = batch["boundary"][b, z, :, :, 0] > 0
        assert on.any() and (bound[on][:, 2] < bound[on][:, 0]).all()
        grey = panel(px, b, 0, shape)
        np.testing.assert_array_equal(bound[~on], grey[~on])
        heat = panel(px, b, cols["distance"], shape).astype(int).sum(-1)
        d = batch["distance"][b, z, :, :, 0]
        far, near = d >= np.percentile(d[d > 0], 90), (d > 0) & (d <= np.percentile(d[d > 0], 10))
        assert heat[far].mean() > heat[near].mean() + 100  # brighter with distance
        for k in ("lsd_offset", "lsd_variance"):
            lsd = panel(px, b, cols[k], shape)
            fg = batch["instance"][b, z] > 0
            assert lsd[fg].std() > 10 and (lsd[~fg] == 0).all()


def test_prompt_markers_are_green_and_red_at_the_points(synthetic):
    batch, targets = synthetic
    shape = batch["semantic"].shape[1:]
    scale = 4
    px = np.asarray(montage(batch, ["toy"], scale=scale, targets=targets)).astype(int)
    k = len(BASE_COLUMNS) + target_columns(targets) - 1
    for b in range(2):
        p = panel(px, b, k, shape, scale)
        for (pz, py, px_), v, pos in zip(batch["prompts"][b], batch["prompts_valid"][b],
                                         batch["prompts_positive"][b]):
            if not v:
                continue
            cy, cx = (py + 0.5) * scale, (px_ + 0.5) * scale
            win = p[max(0, int(cy) - scale - 1):int(cy) + scale + 2, max(0, int(cx) - scale - 1):int(cx) + scale + 2]
            colour = np.array(POSITIVE if pos else NEGATIVE)
            assert (np.abs(win - colour).sum(-1) == 0).any(), (b, pz, py, px_, pos)


def test_budget_counts_target_columns():
    assert check_picture_size(4, (8, 64, 64), 2, extra_columns=4) == montage_size(4, (8, 64, 64), 2, 4)
    with pytest.raises(ValueError, match=r"and 2 target columns \(--targets\) makes a "):
        check_picture_size(4, (8, 64, 64), 42, extra_columns=2)
    check_picture_size(4, (8, 64, 64), 42)  # fits without the target columns


def test_unknown_target_name_is_refused(capsys):
    with pytest.raises(ValueError, match="--targets: unknown target 'affinity'; expected one of affinities, "):
        default_targets(["lsd,affinity"])
    assert cli.main(["preview", "--dataset", "snemi3d=never_read", "--targets", "edges", "-o", "x.png"]) == 2
    assert "unknown target 'edges'" in capsys.readouterr().err


def test_preview_command_draws_loader_targets(prepared, tmp_path):
    png = tmp_path / "t.png"
    patch = (4, 40, 40)
    rc = cli.main(["preview", "--dataset", f"snemi3d={prepared['snemi3d']}", "--patch", *map(str, patch),
                   "--batch-size", "2", "--scale", "1", "--pad", "--targets", "affinities,boundaries",
                   "distance", "lsd", "point_prompts", "-o", str(png)])
    assert rc == 0
    px = np.asarray(Image.open(png).convert("RGB")).astype(float)
    n = len(BASE_COLUMNS) + 6
    assert px.shape[1] == montage_size(2, patch, 1, 6)[0]
    empty = panel(np.full_like(px, 24), 0, 0, patch)  # the canvas colour
    for b in range(2):
        image = panel(px, b, 0, patch)
        for k in range(len(BASE_COLUMNS), n):
            p = panel(px, b, k, patch)
            assert p.std() > 5 and np.abs(p.mean(-1) - empty.mean(-1)).mean() > 5, (b, k)
            if k in (len(BASE_COLUMNS), len(BASE_COLUMNS) + 2, len(BASE_COLUMNS) + 3):
                assert np.abs(p - image).mean() > 5, (b, k)  # not the EM image again
