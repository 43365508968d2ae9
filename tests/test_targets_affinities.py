"""affinities: gunpowder's definition (brute force and its seg_to_affgraph slicing), both backends."""

from __future__ import annotations

import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax.backend import to_numpy

OFFSETS = [[(-1, 0, 0), (0, -1, 0), (0, 0, -1)], [(1, 0, 0), (0, 2, -3), (-2, 1, 1)],
           list(nj.targets.LONG_RANGE)]


def brute_force(ids: np.ndarray, offsets, mask=None):
    """Voxel by voxel: aff[v, c] = ids[v] == ids[v + o] != 0; mask: v + o inside and both known."""
    C = len(offsets)
    aff = np.zeros((*ids.shape, C), np.uint8)
    am = np.zeros((*ids.shape, C), np.uint8)
    known = np.ones(ids.shape, bool) if mask is None else mask != 0
    for v in np.ndindex(ids.shape):
        for c, o in enumerate(offsets):
            u = tuple(a + b for a, b in zip(v, o))
            if all(0 <= q < n for q, n in zip(u, ids.shape)):
                aff[(*v, c)] = ids[v] == ids[u] and ids[v] != 0
                am[(*v, c)] = known[v] and known[u]
    return aff, am


def seg_to_affgraph(seg: np.ndarray, nhood) -> np.ndarray:
    """gunpowder.add_affinities.seg_to_affgraph (3D), channels first, as gunpowder writes it."""
    nhood = np.array(nhood)
    shape = seg.shape
    aff = np.zeros((len(nhood), *shape), np.int32)
    for e in range(len(nhood)):
        sl_a = tuple(slice(max(0, -nhood[e, k]), min(shape[k], shape[k] - nhood[e, k])) for k in range(3))
        sl_b = tuple(slice(max(0, nhood[e, k]), min(shape[k], shape[k] + nhood[e, k])) for k in range(3))
        aff[(e, *sl_a)] = (seg[sl_a] == seg[sl_b]) * (seg[sl_a] > 0) * (seg[sl_b] > 0)
    return aff


def run(xp, ids, offsets, mask=None):
    aff, am = nj.targets.affinities(xp.asarray(ids), offsets, None if mask is None else xp.asarray(mask))
    assert isinstance(aff, xp.ndarray) and aff.dtype == np.uint8 and am.dtype == np.uint8
    return to_numpy(aff), to_numpy(am)


@pytest.mark.parametrize("offsets", OFFSETS)
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint64])
def test_random_volumes_match_brute_force(xp, offsets, dtype):
    rng = np.random.default_rng(len(offsets))
    ids = rng.integers(0, 3, (5, 11, 30)).astype(dtype)
    mask = rng.random(ids.shape) > 0.2
    for m in (None, mask):
        aff, am = run(xp, ids, offsets, m)
        ref, ref_m = brute_force(ids, offsets, m)
        np.testing.assert_array_equal(aff, ref)
        np.testing.assert_array_equal(am, ref_m)
    assert am[:, :, :1, 2].max() == 0 or offsets[2][2] >= 0  # the x border is masked for dx < 0


def test_masks_at_borders_and_masked_voxels(xp):
    ids = np.ones((3, 4, 5), np.uint32)
    mask = np.ones(ids.shape, bool)
    mask[1, 2, 3] = False
    aff, am = run(xp, ids, [(0, 0, -1), (0, 2, 0)], mask)
    assert (am[:, :, 0, 0] == 0).all() and (am[:, 2:, :, 1] == 0).all()  # the offset leaves the array
    assert am[1, 2, 3].tolist() == [0, 0] and am[1, 2, 4, 0] == 0 and am[1, 0, 3, 1] == 0
    assert aff[:, :, 1:, 0].all() and aff[:, :, 0, 0].max() == 0  # outside: affinity 0 too


def test_fib25_labels_match_gunpowder(xp, load_shared):
    seg = load_shared("fib25_sample2.npz")["groundtruth"][:24, :96, :96]
    aff, am = run(xp, seg, nj.targets.LONG_RANGE)
    ref = seg_to_affgraph(seg, nj.targets.LONG_RANGE)
    np.testing.assert_array_equal(np.moveaxis(aff, -1, 0), ref)
    ones = seg_to_affgraph(np.ones_like(seg), nj.targets.LONG_RANGE)  # gunpowder's mask, no labels_mask
    np.testing.assert_array_equal(np.moveaxis(am, -1, 0), ones)
    assert 0.3 < ref.mean() < 0.99


def test_batches_and_2d_are_per_sample(xp):
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 2, (3, 4, 6, 7)).astype(np.uint16)
    offs = [(-1, 0, 0), (0, 0, 2)]
    aff, am = run(xp, ids, offs)
    for b in range(3):
        ref, ref_m = brute_force(ids[b], offs)
        np.testing.assert_array_equal(aff[b], ref)
        np.testing.assert_array_equal(am[b], ref_m)
    img = ids[0, 0]
    aff2, am2 = run(xp, img, [(0, -1), (-3, 0)])
    ref, ref_m = brute_force(img, [(0, -1), (-3, 0)])
    np.testing.assert_array_equal(aff2, ref)
    np.testing.assert_array_equal(am2, ref_m)


@pytest.mark.gpu
def test_gpu_equals_cpu_bitwise(load_shared):
    import cupy

    seg = load_shared("fib25_sample2.npz")["groundtruth"][:2, :40, :40]
    mask = np.random.default_rng(0).random(seg.shape) > 0.1
    cpu = nj.targets.affinities(seg, nj.targets.LONG_RANGE, mask)
    gpu = nj.targets.affinities(cupy.asarray(seg), nj.targets.LONG_RANGE, cupy.asarray(mask))
    for a, b in zip(cpu, gpu):
        np.testing.assert_array_equal(a, b.get())


def test_the_spec_and_errors():
    spec = nj.targets.Affinities(offsets=nj.targets.LONG_RANGE)
    assert spec.channels == 8 and spec.margin((40, 8, 8)) == (2, 27, 27) and spec.draw(None) is None
    ids = np.ones((2, 3, 4, 5), np.uint8)
    out = spec(ids)
    assert set(out) == set(spec.outputs) and out["target"].shape == (2, 3, 4, 5, 8)
    with pytest.raises(ValueError, match="offsets must be a non-empty list of 3-tuples"):
        nj.targets.affinities(ids[0], [(0, 1)])
    with pytest.raises(ValueError, match="mask must have the shape of ids"):
        nj.targets.affinities(ids[0], [(0, 0, 1)], mask=np.ones((3, 4), bool))
    with pytest.raises(TypeError, match="integer or bool"):
        nj.targets.affinities(np.ones((3, 4, 5), np.float32), [(0, 0, 1)])
