"""The CUDA kernels of kernels/augment_*.cu built for the host (g++), driven by the real
``_gpu.run_batch`` packing code, against the NumPy path: labels/masks bitwise, images 1e-5.

This checks kernel logic and packing without a GPU; ``test_augment_gpu.py`` repeats the parity
checks on CuPy where a GPU exists.
"""

from __future__ import annotations

import numpy as np
import pytest
from augment_host_kernels import assert_parity, border_params, build, kernel_factory, parity_cases

from neurons_jax import augment
from neurons_jax.augment import _gpu, intensity


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    lib = build(tmp_path_factory.mktemp("augment_host"))
    if lib is None:
        pytest.skip("no C++ compiler (g++) to build the CUDA kernels for the host")
    return kernel_factory(lib)


def test_every_transform_and_random_configs_match_the_numpy_path(kernel):
    count = 0
    for name, params, img, lab, mask in parity_cases():
        ref = augment.apply_batch(params, img, lab, mask)
        got = _gpu.run_batch(params, img, lab, mask, np, kernel)
        assert_parity(ref, got, name)
        count += 1
    assert count >= 60


def test_batch_position_does_not_change_a_sample(kernel):
    cfg = augment.AugmentConfig(blur_prob=0.5, motion_blur_prob=0.5, line_prob=0.5, missing_part_prob=0.5)
    rng = np.random.default_rng(0)
    params = [augment.draw(cfg, rng, (4, 24, 24), (40, 4, 4)) for _ in range(4)]
    ctx = params[0].context_shape
    img = rng.random((4, *ctx), dtype=np.float32)
    whole = _gpu.run_batch(params, img, None, None, np, kernel)[0]
    for i in range(4):
        alone = _gpu.run_batch(params[i : i + 1], img[i : i + 1], None, None, np, kernel)[0]
        assert np.array_equal(alone[0], whole[i])


def test_labels_only_and_noise_bitwise(kernel):
    rng = np.random.default_rng(1)
    p = augment.draw(augment.AugmentConfig.off(noise_prob=1.0, rotate_prob=1.0), rng, (3, 20, 20), (40, 4, 4))
    lab = rng.integers(0, 2**60, (1, *p.context_shape), dtype=np.uint64)
    out = _gpu.run_batch([p], None, lab, None, np, kernel)
    assert out[0] is None and out[2] is None
    assert np.array_equal(out[1][0], augment.apply(p, None, lab[0])[1])
    zero = np.zeros((1, 3, 20, 20), np.float32)
    q = augment.params.identity((3, 20, 20))
    q.noise_sigma, q.noise_seed = 0.5, 99
    got = _gpu.run_batch([q], zero, None, None, np, kernel, table=intensity.normal_table())[0]
    assert np.array_equal(got[0], augment.apply(q, zero[0])[0])


def test_coordinates_just_below_zero_match_the_numpy_path(kernel):
    img = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    lab = np.arange(img.size, dtype=np.uint32).reshape(img.shape)
    for p in border_params():
        ref = augment.apply_batch([p], img, lab)
        got = _gpu.run_batch([p], img, lab, None, np, kernel)
        np.testing.assert_allclose(got[0], ref[0], atol=1e-6)
        assert np.array_equal(got[1], ref[1])
