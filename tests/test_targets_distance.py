"""distance: edt's multi-label anisotropic EDT, scipy's EDT on binary input, both backends."""

from __future__ import annotations

import edt
import numpy as np
import pytest
from scipy import ndimage

import neurons_jax as nj
from neurons_jax.backend import to_numpy


def run(xp, ids, voxel_size, **kw):
    d = nj.targets.distance(xp.asarray(ids), voxel_size, **kw)
    assert isinstance(d, xp.ndarray) and d.dtype == np.float32 and d.shape == ids.shape
    return to_numpy(d)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=0)


@pytest.mark.parametrize("voxel_size", [(1, 1, 1), (40, 8, 8), (7, 3, 5)])
def test_multilabel_anisotropic_matches_edt(xp, voxel_size):
    rng = np.random.default_rng(sum(voxel_size))
    ids = ndimage.zoom(rng.integers(0, 5, (3, 4, 4)), (3, 4, 5), order=0).astype(np.uint32)
    ids[rng.random(ids.shape) < 0.01] = 9
    close(run(xp, ids, voxel_size), edt.edt(ids, anisotropy=voxel_size, black_border=False))


def test_binary_input_matches_scipy(xp):
    rng = np.random.default_rng(1)
    mask = ndimage.binary_opening(rng.random((10, 24, 26)) > 0.3).astype(np.uint8)
    close(run(xp, mask, (30, 4, 6)), ndimage.distance_transform_edt(mask, sampling=(30, 4, 6)))
    img = mask[3]
    close(run(xp, img, (4, 6)), ndimage.distance_transform_edt(img, sampling=(4, 6)))


def test_fib25_batch_clip_and_normalize(xp, load_shared):
    seg = load_shared("fib25_sample2.npz")["groundtruth"][:8, :40, :40].reshape(2, 4, 40, 40)
    vs = (40, 10, 10)
    ref = np.stack([edt.edt(s, anisotropy=vs, black_border=False) for s in seg])
    close(run(xp, seg, vs), ref)
    close(run(xp, seg, vs, clip=50.0), np.minimum(ref, 50))
    norm = run(xp, seg, vs, clip=50.0, normalize=True)
    clipped = np.minimum(ref, 50)
    for b in range(2):  # the reference loops over labels
        for lab in np.unique(seg[b]):
            sel = seg[b] == lab
            want = 0 if lab == 0 else clipped[b][sel] / clipped[b][sel].max()
            np.testing.assert_allclose(norm[b][sel], want, rtol=1e-4, atol=1e-7)


def test_an_instance_alone_is_infinitely_far(xp):
    ids = np.full((2, 3, 4), 5, np.uint16)
    assert np.isinf(run(xp, ids, (1, 1, 1))).all()
    assert (run(xp, ids, (1, 1, 1), clip=3.0) == 3).all()
    assert (run(xp, ids, (1, 1, 1), normalize=True) == 1).all()
    assert np.isinf(edt.edt(ids, black_border=False)).all()


@pytest.mark.gpu
def test_gpu_equals_cpu(load_shared):
    import cupy

    seg = load_shared("fib25_sample2.npz")["groundtruth"][:6, :30, :30]
    for kw in ({}, {"clip": 40.0, "normalize": True}):
        cpu = nj.targets.distance(seg, (40, 8, 8), **kw)
        close(nj.targets.distance(cupy.asarray(seg), (40, 8, 8), **kw).get(), cpu)


def test_the_spec_and_errors():
    spec = nj.targets.Distance(clip=50.0, normalize=True)
    assert spec.margin((40, 8, 8)) == (2, 7, 7) and nj.targets.Distance().margin((4, 4, 4)) == (0, 0, 0)
    assert spec(np.ones((3, 4, 5), np.uint8), voxel_size=(1, 1, 1))["target"].shape == (3, 4, 5, 1)
    with pytest.raises(ValueError, match="voxel_size must hold 3 positive finite sizes"):
        nj.targets.distance(np.ones((3, 3, 3), np.uint8), (1, 1))
    with pytest.raises(ValueError, match="clip must be a positive distance"):
        nj.targets.distance(np.ones((3, 3), np.uint8), (1, 1), clip=0)
