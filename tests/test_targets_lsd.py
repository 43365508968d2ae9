"""local_shape_descriptors: lsds' definition (its own code where importable, a self-contained
transcription of it always), on FIB-25 crops, both backends."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import neurons_jax as nj
from neurons_jax.backend import to_numpy


def lsd_reference(seg, sigma, voxel_size):
    """lsds' get_local_shape_descriptors (mode gaussian, downsample 1, every component), channels
    first, transcribed from lsd/train/local_shape_descriptor.py of lsds 0.1.3 (its per-label
    loop included)."""
    dims = seg.ndim
    sigma = tuple(float(s) for s in sigma)
    grid = np.meshgrid(*[np.arange(0, n * v, v) for n, v in zip(seg.shape, voxel_size)], indexing="ij")
    coords = np.array(grid, dtype=np.float32)
    sv = tuple(s / v for s, v in zip(sigma, voxel_size))
    desc = np.zeros((10 if dims == 3 else 6, *seg.shape), np.float32)

    def agg(a):
        return gaussian_filter(a, sigma=sv, mode="constant", cval=0.0, truncate=3.0)

    def outer(a):
        return np.einsum("i...,j...->ij...", a, a).reshape((dims**2, *seg.shape))

    entries = [0, 4, 8, 1, 2, 5] if dims == 3 else [0, 3, 1]
    pairs = [(0, 1), (0, 2), (1, 2)] if dims == 3 else [(0, 1)]
    for label in np.unique(seg):
        if label == 0:
            continue
        mask = (seg == label).astype(np.float32)
        mc = coords * mask
        count = agg(mask)
        count[count == 0] = 1
        mean = np.array([agg(mc[d]) for d in range(dims)])
        mean /= count
        cov = np.array([agg(outer(mc)[d]) for d in entries])
        cov /= count
        cov -= outer(mean)[entries]
        var, pe = cov[:dims], cov[dims:]  # copies, as lsds' fancy indexing makes
        var = var.copy()
        pe = pe.copy()
        var[var < 1e-3] = 1e-3
        for k, (i, j) in enumerate(pairs):
            pe[k] /= np.sqrt(var[i] * var[j])
        for k in range(dims):
            var[k] /= sigma[k] ** 2
        desc += np.concatenate((mean - coords, var, pe, count[None])) * mask
    md = np.array(sigma, np.float32)[(slice(None), *(None,) * dims)]
    mo, pc = list(range(dims)), [6, 7, 8] if dims == 3 else [4]
    desc[mo] = desc[mo] / md * 0.5 + 0.5
    desc[pc] = desc[pc] * 0.5 + 0.5
    desc[mo + pc] *= seg != 0
    np.clip(desc, 0.0, 1.0, out=desc)
    return desc


def run(xp, ids, sigma, vs):
    d = nj.targets.local_shape_descriptors(xp.asarray(ids), sigma, vs)
    assert isinstance(d, xp.ndarray) and d.dtype == np.float32
    return to_numpy(d)


CASES = [((10, 10, 10), (80, 80, 80)), ((40, 8, 8), (120, 48, 64))]


@pytest.mark.parametrize("vs,sigma", CASES)
def test_fib25_crops_match_the_lsds_definition(vs, sigma, load_shared):
    seg = load_shared("fib25_sample2.npz")["groundtruth"][100:112, 40:88, 60:100]
    got = run(np, seg, sigma, vs)
    want = np.moveaxis(lsd_reference(seg, sigma, vs), 0, -1)
    assert got.shape == (*seg.shape, 10)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert (got == want).mean() > 0.999  # the same float32 arithmetic: bitwise nearly everywhere
    assert 0.05 < got[..., 9][seg != 0].mean() < 1 and got[seg == 0][:, [0, 1, 2, 6, 7, 8]].max(initial=0) == 0


def test_matches_the_lsds_package_where_installed(load_shared):
    lsd = pytest.importorskip(
        "lsd.train.local_shape_descriptor",
        reason="lsds (and gunpowder, which it imports) are benchmark peers, not dependencies: "
               "benchmarks/bench_targets.py compares against them; the transcription above always runs")
    seg = load_shared("fib25_sample2.npz")["groundtruth"][:10, :40, :40]
    want = lsd.get_local_shape_descriptors(seg, (80, 80, 80), voxel_size=(10, 10, 10))
    np.testing.assert_allclose(run(np, seg, (80, 80, 80), (10, 10, 10)), np.moveaxis(want, 0, -1),
                               rtol=0, atol=1e-4)


def test_the_transcription_is_lsds_on_a_known_shape():
    # a cube seen from its centre: mean offset 0 (0.5 encoded), no correlation (0.5), and the
    # size channel is the Gaussian's weight on the cube; a corner sees the cube on one side only
    ids = np.zeros((9, 9, 9), np.uint8)
    ids[2:7, 2:7, 2:7] = 1
    d = np.moveaxis(lsd_reference(ids, (2, 2, 2), (1, 1, 1)), 0, -1)
    np.testing.assert_allclose(d[4, 4, 4, [0, 1, 2, 6, 7, 8]], 0.5, atol=1e-6)
    assert (d[2, 2, 2, :3] > 0.5).all() and d[4, 4, 4, 9] > d[2, 2, 2, 9]
    np.testing.assert_array_equal(run(np, ids, (2, 2, 2), (1, 1, 1)), d)


def test_batches_and_2d(xp, load_shared):
    seg = load_shared("fib25_sample2.npz")["groundtruth"][:6, :20, :24].reshape(2, 3, 20, 24)
    got = run(xp, seg, (60, 40, 40), (30, 10, 10))
    for b in range(2):
        np.testing.assert_allclose(got[b], np.moveaxis(lsd_reference(seg[b], (60, 40, 40), (30, 10, 10)), 0, -1),
                                   rtol=0, atol=1e-4)
    img = seg[0, 0]
    got2 = run(xp, img, (40, 40), (10, 10))
    assert got2.shape == (20, 24, 6)
    np.testing.assert_allclose(got2, np.moveaxis(lsd_reference(img, (40, 40), (10, 10)), 0, -1),
                               rtol=0, atol=1e-4)


@pytest.mark.gpu
def test_gpu_equals_cpu(load_shared):
    import cupy

    seg = load_shared("fib25_sample2.npz")["groundtruth"][:8, :24, :24].reshape(2, 4, 24, 24)
    cpu = nj.targets.local_shape_descriptors(seg, (80, 40, 40), (40, 10, 10))
    gpu = nj.targets.local_shape_descriptors(cupy.asarray(seg), (80, 40, 40), (40, 10, 10)).get()
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-4)


def test_the_spec_and_errors():
    spec = nj.targets.LSD(sigma_nm=80)
    assert spec.margin((40, 8, 8)) == (6, 30, 30) and spec.channels == 10
    assert spec(np.ones((3, 4, 5), np.uint8), voxel_size=(40, 8, 8))["target"].shape == (3, 4, 5, 10)
    with pytest.raises(ValueError, match="sigma_nm must be 3 positive sizes"):
        nj.targets.local_shape_descriptors(np.ones((3, 3, 3), np.uint8), (1, 2), (1, 1, 1))
