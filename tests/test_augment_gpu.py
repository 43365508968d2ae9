"""CuPy backend parity: outputs equal the NumPy path bitwise for labels and masks and within 1e-5
for images, for every transform alone and for full random configs (on a GPU, or in CI on the
cudasim stand-in, which runs the real kernels with their real grids)."""

from __future__ import annotations

import numpy as np
import pytest
from augment_cases import (
    IMAGE_DTYPES,
    assert_parity,
    border_params,
    everything,
    parity_cases,
    path_params,
    random_image,
    tap_box,
)

from neurons_jax import augment
from neurons_jax.augment import _gpu, geometry, table
from neurons_jax.augment.apply import image_ops

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


def test_apply_batch_matches_numpy_for_every_transform(cp):
    count, names, dtypes = 0, set(), set()
    for name, params, img, lab, mask in parity_cases():
        ref = augment.apply_batch(params, img, lab, mask)
        got = augment.apply_batch(params, cp.asarray(img), cp.asarray(lab), cp.asarray(mask))
        assert all(isinstance(g, cp.ndarray) for g in got), name
        assert_parity(ref, tuple(g.get() for g in got), name)
        count += 1
        names.add(name.split("-")[0])
        dtypes.add(img.dtype)
    assert count >= 60
    # every op of the table fired alone, every image dtype came
    assert names == {n for n, _ in table.solo_cases()} | {"all"}
    assert dtypes == {np.dtype(d) for d in IMAGE_DTYPES}


@pytest.mark.parametrize("dtype", [np.dtype(d).name for d in IMAGE_DTYPES] + ["int64", "uint64", "bool"])
def test_every_image_dtype_matches_numpy(cp, dtype):
    """int16 and the other reader dtypes: the warp kernel reads them with to_float_image's scaling."""
    rng = np.random.default_rng(9)
    cfg = everything()
    for vs, patch in (((40, 4, 4), (4, 24, 24)), ((10, 10, 10), (10, 10, 10))):
        params = [augment.draw(cfg, rng, patch, vs) for _ in range(3)]
        shape = (3, *params[0].context_shape)
        img = rng.random(shape) < 0.5 if dtype == "bool" else random_image(rng, dtype, shape)
        lab = rng.integers(0, 9, shape, dtype=np.uint32)
        mask = rng.random(shape) < 0.5
        ref = augment.apply_batch(params, img, lab, mask)
        got = augment.apply_batch(params, cp.asarray(img), cp.asarray(lab), cp.asarray(mask))
        assert_parity(ref, tuple(g.get() for g in got), f"{dtype}-{vs}")


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


def test_batch_position_does_not_change_a_sample(cp):
    cfg = augment.AugmentConfig(blur_prob=0.5, motion_blur_prob=0.5, line_prob=0.5, missing_part_prob=0.5)
    rng = np.random.default_rng(0)
    params = [augment.draw(cfg, rng, (4, 24, 24), (40, 4, 4)) for _ in range(4)]
    img = cp.asarray(rng.random((4, *params[0].context_shape), dtype=np.float32))
    whole = augment.apply_batch(params, img)[0].get()
    for i in range(4):
        alone = augment.apply_batch(params[i : i + 1], img[i : i + 1])[0].get()
        assert np.array_equal(alone[0], whole[i])


def test_labels_only_and_noise_bitwise(cp):
    rng = np.random.default_rng(1)
    p = augment.draw(augment.AugmentConfig.off(noise_prob=1.0, rotate_prob=1.0), rng, (3, 20, 20), (40, 4, 4))
    lab = rng.integers(0, 2**60, (1, *p.context_shape), dtype=np.uint64)
    out = augment.apply_batch([p], None, cp.asarray(lab), None)
    assert out[0] is None and out[2] is None
    assert np.array_equal(out[1][0].get(), augment.apply(p, None, lab[0])[1])
    zero = np.zeros((1, 3, 20, 20), np.float32)
    q = augment.params.identity((3, 20, 20))
    q.noise_sigma, q.noise_seed = 0.5, 99
    got = augment.apply_batch([q], cp.asarray(zero))[0].get()
    assert np.array_equal(got[0], augment.apply(q, zero[0])[0])


def test_coordinates_just_below_zero_match_the_numpy_path(cp):
    img = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    lab = np.arange(img.size, dtype=np.uint32).reshape(img.shape)
    for p in border_params():
        ref = augment.apply_batch([p], img, lab)
        got = augment.apply_batch([p], cp.asarray(img), cp.asarray(lab))
        np.testing.assert_allclose(got[0].get(), ref[0], atol=1e-6)
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


def test_boxes_of_per_sample_contexts_match_numpy(cp):
    """origins: each row holds a box of its own sample's context (own context_shape) at its low
    corner, padding after it; one launch; equal to the CPU warp of the same box (+ image ops)."""
    rng = np.random.default_rng(5)
    pool = [p for p in path_params(24, seed=5) if p.patch_shape == (6, 14, 10)]
    for cfg in (augment.AugmentConfig(), everything()):
        pool += [augment.draw(cfg, rng, (6, 14, 10), (10, 10, 10)) for _ in range(2)]
    assert len({p.context_shape for p in pool}) > 2  # samples with different context shapes
    boxes = [tap_box(p, rng) for p in pool]
    row = tuple(int(n) for n in np.max([b[1] for b in boxes], axis=0))
    b = len(pool)
    img = random_image(rng, np.uint8, (b, *row))  # padding beyond each box: random, never read
    lab = rng.integers(0, 2**40, (b, *row), dtype=np.uint64)
    mask = rng.random((b, *row)) < 0.5
    ref = []
    for i, (p, (o, n)) in enumerate(zip(pool, boxes)):
        box = (i, *(slice(0, k) for k in n))
        out = geometry.warp(p, img[box], lab[box], mask[box], origin=o)
        ref.append((image_ops(p, out[0]), out[1], out[2]))
    ref = tuple(np.stack([r[j] for r in ref]) for j in range(3))
    origins, shapes = np.array([o for o, _ in boxes]), np.array([n for _, n in boxes])
    for kw in ({"shapes": shapes}, {}):  # exact box shapes, or the default min(row, C - origin)
        got = _gpu.apply_batch(pool, cp.asarray(img), cp.asarray(lab), cp.asarray(mask), origins=origins, **kw)
        assert_parity(ref, tuple(g.get() for g in got), f"boxes {kw.keys()}")
    with pytest.raises(ValueError, match="shapes: expected"):
        _gpu.apply_batch(pool, cp.asarray(img), origins=origins, shapes=shapes + 100)
