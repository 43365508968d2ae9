"""boundaries: thick/inner contours against a brute-force reference (and skimage where present)."""

from __future__ import annotations

import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax.backend import to_numpy


def brute_force(ids: np.ndarray, width: int, inner: bool, planar: bool) -> np.ndarray:
    """Voxel by voxel: some u with 0 < |u - v|_1 <= width (dz = 0 if planar) has another id."""
    out = np.zeros(ids.shape, np.uint8)
    nd = ids.ndim
    r = range(-width, width + 1)
    offs = [o for o in np.ndindex(*(2 * width + 1,) * nd)]
    offs = [tuple(a - width for a in o) for o in offs]
    offs = [o for o in offs if 0 < sum(map(abs, o)) <= width and not (planar and nd == 3 and o[0])]
    del r
    for v in np.ndindex(ids.shape):
        if inner and ids[v] == 0:
            continue
        for o in offs:
            u = tuple(a + b for a, b in zip(v, o))
            if all(0 <= q < n for q, n in zip(u, ids.shape)) and ids[u] != ids[v]:
                out[v] = 1
                break
    return out


def run(xp, ids, **kw):
    out = nj.targets.boundaries(xp.asarray(ids), **kw)
    assert isinstance(out, xp.ndarray) and out.dtype == np.uint8 and out.shape == ids.shape
    return to_numpy(out)


@pytest.mark.parametrize("width", [1, 2])
@pytest.mark.parametrize("mode", ["thick", "inner"])
@pytest.mark.parametrize("planar", [False, True])
def test_random_volumes_match_brute_force(xp, width, mode, planar):
    rng = np.random.default_rng(width)
    ids = rng.integers(0, 3, (4, 9, 10)).astype(np.uint32)
    ids[ids == 2] = 7
    np.testing.assert_array_equal(run(xp, ids, width=width, mode=mode, planar=planar),
                                  brute_force(ids, width, mode == "inner", planar))


def test_touching_instances_are_separated_and_2d(xp):
    ids = np.zeros((6, 8), np.uint8)
    ids[1:5, 1:4], ids[1:5, 4:7] = 1, 2
    inner = run(xp, ids, mode="inner")
    assert inner[2, 3] == 1 and inner[2, 4] == 1 and inner[2, 2] == 0  # both sides of the touch
    assert (inner[ids == 0] == 0).all()
    np.testing.assert_array_equal(run(xp, ids), brute_force(ids, 1, False, True))


def test_fib25_and_batches(xp, load_shared):
    seg = load_shared("fib25_sample2.npz")["groundtruth"][:2, :48, :48]
    ref = np.stack([brute_force(s[None], 1, False, True)[0] for s in seg])
    np.testing.assert_array_equal(run(xp, seg[:, None], planar=True), ref[:, None])
    try:
        from skimage.segmentation import find_boundaries
    except ImportError:
        return  # scikit-image is not a dependency: the brute force above is the reference
    for mode in ("thick", "inner"):
        np.testing.assert_array_equal(run(xp, seg, mode=mode), find_boundaries(seg, 1, mode))


@pytest.mark.gpu
def test_gpu_equals_cpu_bitwise(load_shared):
    import cupy

    seg = load_shared("fib25_sample2.npz")["groundtruth"][:3, :32, :32]
    for kw in ({}, {"width": 2, "mode": "inner"}, {"planar": True}):
        cpu = nj.targets.boundaries(seg, **kw)
        np.testing.assert_array_equal(cpu, nj.targets.boundaries(cupy.asarray(seg), **kw).get())


def test_the_spec_and_errors():
    spec = nj.targets.Boundaries(width=2, planar=True)
    assert spec.margin((40, 8, 8)) == (0, 2, 2) and spec.channels == 1
    assert spec(np.ones((3, 4, 5), np.uint8))["target"].shape == (3, 4, 5, 1)
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        nj.targets.boundaries(np.ones((3, 3), np.uint8), width=0)
    with pytest.raises(ValueError, match="mode must be one of thick, inner"):
        nj.targets.boundaries(np.ones((3, 3), np.uint8), mode="outer")
