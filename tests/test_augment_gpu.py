"""CuPy backend parity (needs a GPU): outputs equal the NumPy path bitwise for labels and masks
and within 1e-5 for images, for every transform alone and for full random configs."""

from __future__ import annotations

import numpy as np
import pytest
from augment_host_kernels import assert_parity, parity_cases

from neurons_jax import augment

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


def test_apply_batch_matches_numpy_for_every_transform(cp):
    for name, params, img, lab, mask in parity_cases():
        ref = augment.apply_batch(params, img, lab, mask)
        got = augment.apply_batch(params, cp.asarray(img), cp.asarray(lab), cp.asarray(mask))
        assert all(isinstance(g, cp.ndarray) for g in got), name
        assert_parity(ref, tuple(g.get() for g in got), name)


def test_apply_single_sample_matches_numpy(cp):
    rng = np.random.default_rng(0)
    cfg = augment.AugmentConfig(blur_prob=0.5, motion_blur_prob=0.5, line_prob=0.5)
    for vs, patch in (((40, 4, 4), (8, 64, 64)), ((10, 10, 10), (16, 16, 16))):
        for _ in range(5):
            p = augment.draw(cfg, rng, patch, vs)
            img = rng.integers(0, 256, p.context_shape, dtype=np.uint8)
            lab = rng.integers(0, 2**40, p.context_shape, dtype=np.uint64)
            ref = augment.apply(p, img, lab)
            got = augment.apply(p, cp.asarray(img), cp.asarray(lab))
            assert got[2] is None
            np.testing.assert_allclose(got[0].get(), ref[0], atol=1e-5)
            assert np.array_equal(got[1].get(), ref[1])


def test_real_fib25_batch_matches_numpy(cp, load_shared):
    d = load_shared("fib25_sample2.npz")
    cfg = augment.AugmentConfig()
    patch, vs = (16, 64, 64), (10, 10, 10)
    rng = np.random.default_rng(4)
    params = [augment.draw(cfg, rng, patch, vs) for _ in range(8)]
    c = params[0].context_shape
    starts = rng.integers(0, 250 - np.array(c) + 1, (8, 3))
    img = np.stack([d["image"][tuple(slice(s, s + n) for s, n in zip(st, c))] for st in starts])
    lab = np.stack([d["groundtruth"][tuple(slice(s, s + n) for s, n in zip(st, c))] for st in starts])
    ref = augment.apply_batch(params, img, lab)
    got = augment.apply_batch(params, cp.asarray(img), cp.asarray(lab))
    np.testing.assert_allclose(got[0].get(), ref[0], atol=1e-5)
    assert np.array_equal(got[1].get(), ref[1])
