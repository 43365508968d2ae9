"""EM defects and intensity ops, each checked against an independent reference."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage

from neurons_jax import augment
from neurons_jax.augment import AugmentConfig, _cpu_image, defects, intensity
from neurons_jax.augment.apply import image_ops
from neurons_jax.augment.params import identity
from neurons_jax.backend import to_numpy

SHAPE = (6, 40, 48)


def run(xp, img, **fields):
    p = dataclasses.replace(identity(img.shape), **fields)
    return to_numpy(augment.apply(p, xp.asarray(img))[0])


@pytest.fixture
def img():
    return np.random.default_rng(0).random(SHAPE, dtype=np.float32) * 0.6 + 0.2


def test_missing_sections_blank_and_copy(xp, img):
    zsrc = np.arange(6, dtype=np.int32)
    zsrc[2] = 3
    blank = np.zeros(6, bool)
    blank[4] = True
    out = run(xp, img, zsrc=zsrc, blank=blank, missing_value=0.25)
    assert np.array_equal(out[2], img[3]) and np.all(out[4] == np.float32(0.25))
    keep = [0, 1, 3, 5]
    assert np.array_equal(out[keep], img[keep])


def test_low_contrast_scales_deviation_around_the_section_mean(xp, img):
    f = np.ones(6, np.float32)
    f[1] = 0.3
    out = run(xp, img, low_contrast=f)
    m = img[1].astype(np.float64).mean()
    np.testing.assert_allclose(out[1], m + (img[1] - m) * 0.3, atol=1e-6)
    assert np.array_equal(np.delete(out, 1, 0), np.delete(img, 1, 0))


def test_contrast_brightness_gamma_formula(xp, img):
    scale = np.linspace(0.8, 1.3, 6).astype(np.float32)
    shift = np.linspace(-0.1, 0.2, 6).astype(np.float32)
    out = run(xp, img, intensity=True, section_scale=scale, section_shift=shift, gamma=0.8)
    ref = np.clip((img.astype(np.float64) - 0.5) * scale[:, None, None] + 0.5 + shift[:, None, None], 0, 1) ** 0.8
    np.testing.assert_allclose(out, ref, atol=2e-6)


def test_dark_line_and_charging_band(xp):
    flat = np.full(SHAPE, 0.5, np.float32)
    th = math.radians(30)
    line = [2, 20.0, 24.0, math.cos(th), math.sin(th), 1.5, 0.8, 0]
    out = run(xp, flat, lines=np.array([line], np.float32))
    yy, xx = np.mgrid[:40, :48].astype(np.float64)
    d = (yy - 20) * math.cos(th) + (xx - 24) * math.sin(th)
    np.testing.assert_allclose(out[2], 0.5 * (1 - 0.8 * np.exp(-0.5 * (d / 1.5) ** 2)), atol=1e-6)
    assert out[2][np.abs(d) < 0.5].max() < 0.15 and np.array_equal(out[3], flat[3])
    band = [4, 10.0, 10.0, 1.0, 0.0, 8.0, 0.3, 1]
    out = run(xp, flat, lines=np.array([band], np.float32))
    np.testing.assert_allclose(out[4], 0.5 + 0.3 * np.exp(-np.abs(yy - 10) / 8.0), atol=1e-6)


def test_missing_part_is_an_ellipse_of_constant_value(xp, img):
    ry, rx, psi = 9.0, 5.0, 0.4
    c, s = math.cos(psi), math.sin(psi)
    a = c * c / ry**2 + s * s / rx**2
    b = c * s * (1 / ry**2 - 1 / rx**2)
    cc = s * s / ry**2 + c * c / rx**2
    out = run(xp, img, blobs=np.array([[1, 20.0, 24.0, a, 2 * b, cc, 0.9]], np.float32))
    yy, xx = np.mgrid[:40, :48].astype(np.float64)
    u1 = c * (yy - 20) + s * (xx - 24)
    u2 = -s * (yy - 20) + c * (xx - 24)
    inside = (u1 / ry) ** 2 + (u2 / rx) ** 2 <= 1
    got = out[1] == np.float32(0.9)
    assert (got != inside).sum() <= 2  # float32 vs float64 on the rim
    assert abs(got.sum() - math.pi * ry * rx) < 0.1 * math.pi * ry * rx
    assert np.array_equal(out[1][~got], img[1][~got])


def test_motion_blur_spreads_a_dot_along_its_direction(xp):
    dot = np.zeros(SHAPE, np.float32)
    dot[3, 20, 24] = 1.0
    out = run(xp, dot, motion=np.array([[3, 5, 0.0]], np.float32))
    assert np.allclose(out[3, 20, 22:27], 0.2) and np.isclose(out[3].sum(), 1.0)
    out = run(xp, dot, motion=np.array([[3, 7, math.pi / 2]], np.float32))
    assert np.allclose(out[3, 17:24, 24], 1 / 7) and np.isclose(out[3].sum(), 1.0)
    taps = defects.motion_taps(7, math.pi / 4)
    assert taps.tolist() == [[-3, -3], [-2, -2], [-1, -1], [0, 0], [1, 1], [2, 2], [3, 3]]


def test_gaussian_blur_matches_scipy(xp, img):
    out = run(xp, img, blur_sigma=1.2)
    w = intensity.gaussian_weights(1.2).astype(np.float64)
    assert len(w) == 2 * 4 + 1 and np.isclose(w.sum(), 1)
    ref = ndimage.correlate1d(ndimage.correlate1d(img.astype(np.float64), w, axis=1, mode="mirror"), w, axis=2, mode="mirror")
    np.testing.assert_allclose(out, ref, atol=1e-6)


def _lowbias32(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_noise_is_deterministic_hashed_and_normal(xp):
    zero = np.zeros((4, 64, 64), np.float32)
    a = run(xp, zero, noise_sigma=0.1, noise_seed=12345)
    b = run(xp, zero, noise_sigma=0.1, noise_seed=12345)
    c = run(xp, zero, noise_sigma=0.1, noise_seed=12346)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(a.mean()) < 0.005 and abs(a.std() - 0.1) < 0.005
    assert abs(np.corrcoef(a.ravel(), c.ravel())[0, 1]) < 0.03
    # each value is the table entry the pure-Python hash picks
    key = _lowbias32((12345 ^ 0x9E3779B9) & 0xFFFFFFFF)
    table = intensity.normal_table()
    for i in (0, 1, 777, a.size - 1):
        h = _lowbias32(_lowbias32(i) ^ key)
        assert a.ravel()[i] == np.float32(0.1) * table[h >> 16]
    xs = np.array([0, 1, 2, 2**31, 2**32 - 1], np.uint32)
    assert intensity.hash_u32(xs).tolist() == [_lowbias32(int(x)) for x in xs]


def test_full_default_config_on_uint8(xp):
    rng = np.random.default_rng(3)
    cfg = AugmentConfig(missing_section_prob=0.5, line_prob=0.5, charging_prob=0.5, motion_blur_prob=0.5,
                        missing_part_prob=0.5, low_contrast_prob=0.5, blur_prob=0.5)
    fired = set()
    for _ in range(6):
        p = augment.draw(cfg, rng, (8, 48, 48), (30, 6, 6))
        fired.update(p.applied)
        img = rng.integers(0, 256, p.context_shape, dtype=np.uint8)
        out = to_numpy(augment.apply(p, xp.asarray(img))[0])
        assert out.shape == (8, 48, 48) and out.dtype == np.float32 and np.isfinite(out).all()
        assert -0.5 < out.min() and out.max() < 1.5
    assert len(fired) > 15


def _numpy_chain(p, img):
    """The NumPy references in table order: defects.pointwise, motion blur, blur, noise."""
    if p.zsrc is not None or p.blank is not None or p.low_contrast is not None or p.intensity \
            or p.lines is not None or p.blobs is not None:
        img = defects.pointwise(p, img)
    img = defects.motion_blur(p, img)
    img = intensity.gaussian_blur(p, img)
    return intensity.add_noise(p, img)


def test_fused_pass_equals_the_numpy_references():
    """One numba pass (noise fused when nothing sits between): the NumPy references' values,
    bitwise except the lines' exp (libm vs NumPy's SIMD float32 exp, about one ulp)."""
    from augment_cases import everything

    rng = np.random.default_rng(4)
    fused = exact = 0
    for cfg in (everything(), AugmentConfig(missing_section_prob=0.6, low_contrast_prob=0.6)):
        for _ in range(30):
            p = augment.draw(cfg, rng, (6, 30, 26), (40, 4, 4))
            w = rng.random(p.patch_shape, dtype=np.float32)
            got = image_ops(p, w.copy())
            ref = _numpy_chain(p, w.copy())
            np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0, err_msg=str(p.applied))
            if p.lines is None:
                assert np.array_equal(got, ref), p.applied
                exact += 1
            fused += _cpu_image.noise_fused(p)
    assert fused >= 5 and exact >= 30


def test_missing_sections_copied_in_a_cycle_read_the_unmodified_sections(img):
    zsrc = np.array([0, 1, 3, 2, 5, 4], np.int32)  # 2 <-> 3 and 4 <-> 5 swapped
    p = dataclasses.replace(identity(SHAPE), zsrc=zsrc, intensity=True, section_scale=np.full(6, 1.1, np.float32),
                            section_shift=np.linspace(0, 0.1, 6).astype(np.float32))
    got = _cpu_image.pointwise_entry(p, img.copy())
    assert np.array_equal(got, defects.pointwise(p, img.copy()))
    assert np.array_equal(got[2], defects.pointwise(p, img.copy())[2]) and not np.array_equal(got[2], got[3])


def test_noise_runs_after_a_transform_registered_before_it():
    from neurons_jax.augment import table

    def draw(d):
        if d.rng.random() < d.cfg.double_prob:
            d.params.extra["double"] = True

    double = table.transform("double", fields={"double_prob": 0.0}, draw=draw, active=lambda p: "double" in p.extra,
                             cpu=lambda p, x: x * np.float32(2), gpu=None)
    p = dataclasses.replace(identity(SHAPE), intensity=True, section_scale=np.ones(6, np.float32),
                            section_shift=np.zeros(6, np.float32), noise_sigma=0.1, noise_seed=3)
    w = np.full(SHAPE, 0.25, np.float32)
    assert _cpu_image.noise_fused(p)
    with table.registered(double, before="blur"):
        p.extra["double"] = True
        assert not _cpu_image.noise_fused(p)
        got = image_ops(p, w.copy())
    noise = np.float32(0.1) * intensity.standard_normal(3, SHAPE)
    assert np.array_equal(got, np.float32(0.5) + noise)  # doubled first, the noise after
