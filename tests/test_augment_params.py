"""AugmentConfig / draw: context shapes, determinism, pickling, probabilities, anisotropy rules."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from neurons_jax import augment
from neurons_jax.augment import AugmentConfig, context_shape, draw, grid

ANISO = [(30, 6, 6), (40, 4, 4), (40, 8, 8)]
ISO = (10, 10, 10)
EVERYTHING = AugmentConfig(
    rotate_3d_prob=0.5, missing_section_prob=0.5, low_contrast_prob=0.5, line_prob=0.5,
    charging_prob=0.5, motion_blur_prob=0.5, missing_part_prob=0.5, blur_prob=0.5, misalign_prob=0.5,
)


def test_context_shape_is_fixed_by_config_and_contains_every_draw():
    cfg = EVERYTHING
    for patch, vs in [((8, 48, 64), (40, 4, 4)), ((12, 40, 40), ISO), ((1, 33, 47), (30, 6, 6))]:
        ctx = context_shape(cfg, patch, vs)
        assert all((c - p) % 2 == 0 and c >= p for c, p in zip(ctx, patch))
        for seed in range(30):
            p = draw(cfg, np.random.default_rng(seed), patch, vs)
            assert p.context_shape == ctx and p.patch_shape == patch
            s = grid.source_coords(p)
            # the warp reads real context, never padding
            assert s.min() >= -1e-3
            assert np.all(s.max(axis=(1, 2, 3)) <= np.array(ctx) - 1 + 1e-3)


def test_context_shape_margins():
    off = AugmentConfig.off()
    assert context_shape(off, (7, 31, 33), (40, 4, 4)) == (7, 31, 33)
    for vs in ANISO:
        assert context_shape(AugmentConfig(), (32, 256, 256), vs)[0] == 32  # no z margin
    # a 45 degree rotation of a square needs about sqrt(2) times the side
    c = context_shape(AugmentConfig.off(rotate_prob=1.0), (1, 101, 101), (40, 4, 4))
    assert c[0] == 1 and 142 <= c[1] <= 146 and c[1] == c[2]
    # elastic displacement up to 3 sigma = 36 nm = 9 voxels at 4 nm
    c = context_shape(AugmentConfig.off(elastic_prob=1.0), (4, 20, 20), (40, 4, 4))
    assert c == (4, 38, 38)
    iso = context_shape(AugmentConfig(rotate_3d_prob=0.5), (16, 64, 64), ISO)
    assert iso[0] > 16


def test_draw_is_deterministic_and_params_pickle():
    for vs in (ANISO[0], ISO):
        a = draw(EVERYTHING, np.random.default_rng(123), (12, 40, 40), vs)
        b = draw(EVERYTHING, np.random.default_rng(123), (12, 40, 40), vs)
        c = draw(EVERYTHING, np.random.default_rng(124), (12, 40, 40), vs)
        assert a == b and a != c
        assert pickle.loads(pickle.dumps(a)) == a
        ctx = np.random.default_rng(0).integers(0, 255, a.context_shape, dtype=np.uint8)
        lab = np.random.default_rng(1).integers(0, 9, a.context_shape, dtype=np.uint32)
        o1 = augment.apply(a, ctx, lab)
        o2 = augment.apply(pickle.loads(pickle.dumps(b)), ctx, lab)
        assert np.array_equal(o1[0], o2[0]) and np.array_equal(o1[1], o2[1])
    # an int seed is accepted and equals a fresh generator
    assert draw(EVERYTHING, 5, (4, 32, 32), ISO) == draw(EVERYTHING, np.random.default_rng(5), (4, 32, 32), ISO)


PROBS = {
    "rot90_prob": "rot90", "transpose_xy_prob": "transpose_xy", "rotate_prob": "rotate",
    "scale_prob": "scale", "elastic_prob": "elastic", "misalign_prob": "misalign",
    "missing_section_prob": "missing_section", "low_contrast_prob": "low_contrast", "line_prob": "line",
    "charging_prob": "charging", "motion_blur_prob": "motion_blur", "missing_part_prob": "missing_part",
    "contrast_prob": "contrast", "brightness_prob": "brightness", "gamma_prob": "gamma",
    "section_intensity_prob": "section_intensity", "blur_prob": "blur", "noise_prob": "noise",
    "rotate_3d_prob": "rotate_3d", "transpose_z_prob": "transpose_z",
}


@pytest.mark.parametrize("field", sorted(PROBS))
def test_each_probability_is_honoured(field):
    name = PROBS[field]
    n = 400
    for prob in (0.0, 0.3):
        cfg = AugmentConfig.off(**{field: prob})
        rng = np.random.default_rng(7)
        fired = sum(
            any(a.startswith(name) for a in draw(cfg, rng, (16, 16, 16), ISO).applied) for _ in range(n)
        )
        if prob == 0:
            assert fired == 0
        else:
            sd = np.sqrt(n * prob * (1 - prob))
            assert abs(fired - n * prob) < 4 * sd, (field, fired)


def test_flip_probability_per_axis():
    rng = np.random.default_rng(3)
    cfg = AugmentConfig.off(flip_prob=(0.0, 0.25, 0.75))
    counts = np.zeros(3)
    for _ in range(400):
        p = draw(cfg, rng, (8, 32, 32), (40, 4, 4))
        counts += np.array(p.flip)
        assert p.perm == (0, 1, 2)
    assert counts[0] == 0 and abs(counts[1] - 100) < 35 and abs(counts[2] - 300) < 35


def _z_mixes(p) -> bool:
    a = p.affine
    return bool(p.perm[0] != 0 or a[0, 1] != 0 or a[0, 2] != 0 or a[1, 0] != 0 or a[2, 0] != 0
                or a[0, 0] != 1 or (p.elastic is not None and np.any(p.elastic[0])))


def test_no_z_rotation_or_transpose_for_anisotropic_voxels():
    cfg = AugmentConfig(rotate_3d_prob=1.0, transpose_z_prob=1.0, elastic_prob=1.0)
    for vs in ANISO:
        rng = np.random.default_rng(0)
        for _ in range(100):
            p = draw(cfg, rng, (16, 16, 16), vs)  # equal extents: only the voxel size forbids it
            assert not _z_mixes(p) and p.planar
            assert "rotate_3d" not in p.applied and "transpose_z" not in p.applied


def test_z_rotation_and_transpose_allowed_for_isotropic_voxels():
    cfg = AugmentConfig(rotate_3d_prob=1.0, transpose_z_prob=1.0)
    rng = np.random.default_rng(0)
    ps = [draw(cfg, rng, (16, 16, 16), ISO) for _ in range(20)]
    assert all("rotate_3d" in p.applied and "transpose_z" in p.applied for p in ps)
    assert all(_z_mixes(p) for p in ps)
    # near-isotropic (ratio < 1.5) counts as isotropic, a flat patch cannot transpose z
    p = draw(cfg, rng, (16, 16, 16), (12, 10, 10))
    assert "rotate_3d" in p.applied
    assert "transpose_z" not in draw(cfg, rng, (8, 16, 16), ISO).applied
    # 2D slice mode: no z operations, no section defects
    p2 = draw(EVERYTHING.replace(rotate_3d_prob=1.0, misalign_prob=1.0, missing_section_prob=1.0),
              rng, (1, 32, 32), ISO)
    assert p2.context_shape[0] == 1 and p2.misalign is None and p2.zsrc is None and p2.blank is None


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="rotate_prob"):
        AugmentConfig(rotate_prob=1.5)
    with pytest.raises(ValueError, match="scale_range"):
        AugmentConfig(scale_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="patch_shape"):
        context_shape(AugmentConfig(), (0, 10, 10), (1, 1, 1))
    with pytest.raises(TypeError, match="rng"):
        draw(AugmentConfig(), "seed", (4, 8, 8), (1, 1, 1))
    assert dataclasses.replace(AugmentConfig(), rotate_prob=0.0).rotate_prob == 0.0
