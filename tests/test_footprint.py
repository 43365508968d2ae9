"""Footprint reads never miss data: on real FIB-25 context, the warp of a sample's footprint box
equals the warp of its whole worst-case context, and of any larger box, voxel for voxel; and
the Loader's footprint batches equal what reading the whole context gives."""

from __future__ import annotations

import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax.augment import AugmentConfig, apply, context_shape, draw, footprint, grid, grow

CONFIGS = {
    "default": AugmentConfig(),
    "off-plane": AugmentConfig(rotate_3d_prob=1.0, rotate_3d_max_deg=20.0),
    "strong elastic": AugmentConfig(elastic_prob=1.0, elastic_sigma_nm=(40.0, 80.0), misalign_prob=1.0),
}


@pytest.fixture(scope="module")
def fib25(load_shared):
    z = load_shared("fib25_sample2.npz")
    return z["image"], z["groundtruth"]


def _taps(p) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest context voxel the warp of ``p`` reads (from the coordinates themselves)."""
    s = grid.source_coords(p).reshape(3, -1).astype(np.float64)
    c = np.asarray(p.context_shape)
    lo, hi = np.empty(3, np.int64), np.empty(3, np.int64)
    for i in range(3):
        f = np.floor(s[i])
        taps = [f, np.rint(s[i])] + ([] if (i == 0 and p.planar) else [f + 1])
        t = np.clip(np.concatenate(taps), 0, c[i] - 1)
        lo[i], hi[i] = t.min(), t.max()
    return lo, hi


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("vs", [(10.0, 10.0, 10.0), (40.0, 10.0, 10.0)])
def test_footprint_holds_every_tap_and_changes_no_voxel(fib25, name, vs):
    img, lab = fib25
    cfg, patch = CONFIGS[name], (12, 48, 48)
    ctx = context_shape(cfg, patch, vs)
    rng = np.random.default_rng(hash((name, vs)) % 2**32)
    for s in range(6):
        p = draw(cfg, np.random.default_rng(1000 * s + 7), patch, vs)
        at = [int(rng.integers(0, n - c + 1)) for n, c in zip(img.shape, ctx)]
        region = tuple(slice(a, a + c) for a, c in zip(at, ctx))
        ci, cl = img[region], lab[region]
        o, shape = footprint(p)
        lo, hi = _taps(p)
        assert np.all(o <= lo) and np.all(o + shape - 1 >= hi), (name, vs, s, o, shape, lo, hi)
        whole = apply(p, ci, cl)
        box = tuple(slice(int(a), int(a + n)) for a, n in zip(o, shape))
        got = apply(p, ci[box], cl[box], origin=o)
        # a larger box (one more voxel on every side, clipped to the context) changes nothing
        big_o = np.maximum(o - 1, 0)
        big_e = np.minimum(o + shape + 1, ctx)
        big = tuple(slice(int(a), int(b)) for a, b in zip(big_o, big_e))
        more = apply(p, ci[big], cl[big], origin=big_o)
        for w, g, m in zip(whole, got, more):
            if w is not None:
                assert np.array_equal(w, g) and np.array_equal(w, m), (name, vs, s)


def test_grown_footprint_for_targets_holds_the_patch_footprint(fib25):
    cfg, patch, vs = AugmentConfig(), (12, 48, 48), (10.0, 10.0, 10.0)
    for s in range(8):
        p = draw(cfg, np.random.default_rng(s), patch, vs)
        p.context_shape = context_shape(cfg, (16, 52, 52), vs)
        o, shape = footprint(p)
        og, sg = footprint(grow(p, (2, 2, 2)))
        assert np.all(og <= o) and np.all(og + sg >= o + shape)


def test_loader_footprint_batches_equal_whole_context_batches(fib25, tmp_path, monkeypatch):
    """The Loader reads footprints; a Loader made to read every sample's whole context (the
    pre-issue-14 read) gives the same batches, bit for bit."""
    img, lab = fib25
    crop = (slice(0, 120), slice(0, 200), slice(0, 200))
    root = tmp_path / "fib25"
    nj.datasets.prepare("generic", img[crop], root, label=lab[crop], voxel_size=(10, 10, 10), progress=False)
    ds = nj.datasets.generic(str(root), split="train")
    patch = (12, 48, 48)

    def batches():
        with nj.pipeline.Loader({"f": (ds, 1.0)}, patch, 2, seed=5, output="numpy") as loader:
            return [next(loader) for _ in range(3)]

    got = batches()
    monkeypatch.setattr(nj.augment, "footprint",
                        lambda p: (np.zeros(3, np.int64), np.asarray(p.context_shape, np.int64)))
    want = batches()
    for g, w in zip(got, want):
        for k in ("image", "semantic", "instance", "mask", "position"):
            assert np.array_equal(g[k], w[k]), k
