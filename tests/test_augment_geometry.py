"""The fused warp: image/label alignment (rendered and real EM), ids, masks, shapes, crops, symmetries."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from augment_cases import border_params, path_params, random_image, tap_box

from neurons_jax import augment
from neurons_jax.augment import AugmentConfig, _cpu_warp, draw, geometry, grid
from neurons_jax.augment.params import identity
from neurons_jax.backend import to_numpy
from neurons_jax.datasets import _common
from neurons_jax.stage import to_float_image

GEOMETRY = AugmentConfig.off(
    flip_prob=(0.5, 0.5, 0.5), rot90_prob=0.5, transpose_xy_prob=0.5, transpose_z_prob=0.5,
    rotate_prob=0.8, scale_prob=0.8, elastic_prob=0.8, misalign_prob=0.5, rotate_3d_prob=0.5,
    elastic_sigma_nm=(8.0, 20.0),
)


def boundaries(lab: np.ndarray) -> np.ndarray:
    """In-plane 4-neighbour label boundaries."""
    b = np.zeros(lab.shape, bool)
    dy, dx = lab[:, 1:] != lab[:, :-1], lab[:, :, 1:] != lab[:, :, :-1]
    b[:, 1:] |= dy
    b[:, :-1] |= dy
    b[:, :, 1:] |= dx
    b[:, :, :-1] |= dx
    return b


def voronoi(shape, n, seed, scale=(1.0, 1.0, 1.0)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 1, (n, 3)) * np.array(shape)
    zz, yy, xx = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij")
    d = [((zz - p[0]) * scale[0]) ** 2 + ((yy - p[1]) * scale[1]) ** 2 + ((xx - p[2]) * scale[2]) ** 2 for p in pts]
    return (np.argmin(np.stack(d), axis=0) * 7 + 3).astype(np.uint32)  # ids 3, 10, 17, ...


def rendered(lab: np.ndarray) -> np.ndarray:
    """An image drawn from its labels: 0.8 inside, 0.2 within one voxel of a boundary."""
    b = boundaries(lab)
    b[:, 1:] |= b[:, :-1].copy()
    b[:, :, 1:] |= b[:, :, :-1].copy()
    return np.where(b, 0.2, 0.8).astype(np.float32)


def contrast(img: np.ndarray, lab: np.ndarray) -> tuple[float, float]:
    b = boundaries(lab)
    return float(img[b].mean()), float(img[~b].mean())


@pytest.mark.parametrize("vs", [(40, 4, 4), (10, 10, 10)])
def test_alignment_on_an_image_rendered_from_labels(xp, vs):
    patch = (8, 48, 48) if vs[0] == 40 else (16, 32, 32)
    ctx = augment.context_shape(GEOMETRY, patch, vs)
    lab = voronoi(ctx, 40, 0, scale=(vs[0] / vs[1], 1, 1))
    img = rendered(lab)
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(8):
        p = draw(GEOMETRY, rng, patch, vs)
        seen.update(p.applied)
        out, olab, _ = (to_numpy(a) if a is not None else None for a in augment.apply(p, xp.asarray(img), xp.asarray(lab)))
        bd, inside = contrast(out, olab)
        assert bd < 0.4 and inside > 0.7, (p.applied, bd, inside)
        assert set(np.unique(olab)) <= set(np.unique(lab))
    assert {"rotate", "elastic", "scale"} <= seen
    # the criterion fails for labels off by two voxels
    p = draw(GEOMETRY, np.random.default_rng(2), patch, vs)
    out, olab, _ = augment.apply(p, img, lab)
    bd, _ = contrast(out, np.roll(olab, 2, axis=2))
    assert bd > 0.45


def test_alignment_on_real_fib25(load_shared, xp):
    d = load_shared("fib25_sample2.npz")
    cfg = GEOMETRY.replace(rotate_3d_prob=0.0, transpose_z_prob=0.0)
    patch, vs = (16, 88, 88), (10, 10, 10)
    ctx = augment.context_shape(cfg, patch, vs)
    assert ctx[0] <= 40 and ctx[1] <= 160
    box = tuple(slice(125 - c // 2, 125 - c // 2 + c) for c in ctx)
    img, lab = d["image"][box], d["groundtruth"][box]
    c0 = tuple(slice(m, m + p) for m, p in zip(augment.margins(cfg, patch, vs), patch))
    bd0, in0 = contrast(img[c0] / np.float32(255), lab[c0])
    assert in0 - bd0 > 0.15  # membranes are dark in this volume
    rng = np.random.default_rng(0)
    for _ in range(4):
        p = draw(cfg, rng, patch, vs)
        out, olab, _ = augment.apply(p, xp.asarray(img), xp.asarray(lab))
        out, olab = to_numpy(out), to_numpy(olab)
        bd, inside = contrast(out, olab)
        assert abs(bd - bd0) < 0.02 and inside - bd > 0.15, (p.applied, bd, bd0, inside)
        assert set(np.unique(olab)) <= set(np.unique(lab))
        # labels three voxels off fail the same criterion
        assert contrast(out, np.roll(olab, 3, axis=2))[0] - bd0 > 0.025


LABEL_CASES = [
    (np.uint8, 200), (np.uint16, 60000), (np.uint32, 2**32 - 1), (np.uint64, 52_045_091_350),
    (np.int32, 2**31 - 1), (np.int64, 2**62),
]


@pytest.mark.parametrize("dtype, top", LABEL_CASES)
def test_labels_keep_values_and_masks_stay_binary(xp, dtype, top):
    rng = np.random.default_rng(0)
    cfg = GEOMETRY
    for patch, vs in [((6, 33, 47), (40, 4, 4)), ((1, 40, 40), (30, 6, 6)), ((9, 17, 17), (10, 10, 10))]:
        p = draw(cfg, rng, patch, vs)
        ids = np.array([0, 1, 2, 5, 7, top // 3, top - 1, top], dtype=dtype)  # 1, 2, 5: float32 denormals
        lab = ids[rng.integers(0, len(ids), p.context_shape)]
        mask = rng.random(p.context_shape) < 0.5
        img = rng.integers(0, 256, p.context_shape, dtype=np.uint8)
        out, olab, omask = augment.apply(p, xp.asarray(img), xp.asarray(lab), xp.asarray(mask))
        out, olab, omask = to_numpy(out), to_numpy(olab), to_numpy(omask)
        assert out.shape == olab.shape == omask.shape == patch
        assert out.dtype == np.float32 and olab.dtype == dtype and omask.dtype == bool
        assert set(np.unique(olab)) <= set(ids.tolist())
        m8 = (rng.random(p.context_shape) < 0.5).astype(np.uint8)
        assert set(np.unique(to_numpy(augment.apply(p, None, None, xp.asarray(m8))[2]))) <= {0, 1}


def test_output_shape_is_patch_shape_for_every_config():
    rng = np.random.default_rng(5)
    cfgs = [AugmentConfig(), AugmentConfig.off(), GEOMETRY, AugmentConfig(rotate_3d_prob=1.0, rotate_max_deg=90)]
    for cfg in cfgs:
        for patch, vs in [((1, 64, 64), (40, 4, 4)), ((5, 31, 18), (30, 6, 6)), ((7, 13, 13), (10, 10, 10)),
                          ((3, 1, 9), (40, 8, 8)), ((2, 8, 8), (8, 8, 8))]:
            p = draw(cfg, rng, patch, vs)
            img = rng.random(p.context_shape, dtype=np.float32)
            lab = rng.integers(0, 5, p.context_shape).astype(np.uint16)
            out, olab, _ = augment.apply(p, img, lab)
            assert out.shape == patch and olab.shape == patch, (cfg, patch)
            assert np.isfinite(out).all()


def test_zero_displacement_warp_is_a_crop_of_the_context_centre(xp):
    rng = np.random.default_rng(0)
    for patch, ctx in [((4, 20, 30), (4, 40, 50)), ((5, 7, 9), (9, 11, 19)), ((1, 16, 16), (1, 16, 16))]:
        img = rng.integers(0, 256, ctx, dtype=np.uint8)
        lab = rng.integers(0, 2**40, ctx, dtype=np.uint64)
        p = identity(patch, ctx)
        out, olab, _ = augment.apply(p, xp.asarray(img), xp.asarray(lab))
        crop = tuple(slice((c - s) // 2, (c - s) // 2 + s) for c, s in zip(ctx, patch))
        assert np.array_equal(to_numpy(out), img[crop] / np.float32(255))
        assert np.array_equal(to_numpy(olab), lab[crop])
    # drawn params with every probability 0 are an identity too, and the context is the patch
    p = draw(AugmentConfig.off(), rng, (6, 30, 30), (40, 4, 4))
    img = rng.random((6, 30, 30), dtype=np.float32)
    assert np.array_equal(augment.apply(p, img)[0], img)


def _gather_sym(w: np.ndarray, perm, flip) -> np.ndarray:
    """Reference: out[o] = w[k(o)], k_i = P_i - 1 - o[perm_i] if flip_i else o[perm_i]."""
    o = np.indices(w.shape)
    k = [(w.shape[i] - 1 - o[perm[i]]) if flip[i] else o[perm[i]] for i in range(3)]
    return w[tuple(k)]


def test_symmetries_match_the_index_formula():
    rng = np.random.default_rng(0)
    cfg = AugmentConfig.off(flip_prob=(0.5, 0.5, 0.5), rot90_prob=0.5, transpose_xy_prob=0.5, transpose_z_prob=0.5)
    w = rng.random((6, 6, 6))
    seen = set()
    for _ in range(60):
        p = draw(cfg, rng, (6, 6, 6), (10, 10, 10))
        seen.add((p.perm, p.flip))
        assert np.array_equal(grid.apply_sym(w, p.perm, p.flip), _gather_sym(w, p.perm, p.flip))
        assert np.array_equal(augment.apply(p, w.astype(np.float32))[0], _gather_sym(w, p.perm, p.flip).astype(np.float32))
    assert len(seen) > 20


def _reference(p, img, lab):
    """The warp's tap rules in NumPy from ``grid.source_coords`` (float64 bilinear / trilinear,
    nearest at rint, each tap clamped to the context), then the symmetry as an array view."""
    s = grid.source_coords(p).astype(np.float64)
    c = p.context_shape
    f = to_float_image(img).astype(np.float64)

    def cl(v, a):
        return np.clip(v, 0, c[a] - 1).astype(np.int64)

    fy, fx = np.floor(s[1]), np.floor(s[2])
    ty, tx = s[1] - fy, s[2] - fx
    y0, y1, x0, x1 = cl(fy, 1), cl(fy + 1, 1), cl(fx, 2), cl(fx + 1, 2)

    def bil(z):
        return (f[z, y0, x0] * (1 - tx) + f[z, y0, x1] * tx) * (1 - ty) + (f[z, y1, x0] * (1 - tx) + f[z, y1, x1] * tx) * ty

    if p.planar:
        out = bil(cl(np.trunc(s[0]), 0))
        nz = cl(np.trunc(s[0]), 0)
    else:
        fz = np.floor(s[0])
        out = bil(cl(fz, 0)) * (1 - (s[0] - fz)) + bil(cl(fz + 1, 0)) * (s[0] - fz)
        nz = cl(np.rint(s[0]), 0)
    olab = lab[nz, cl(np.rint(s[1]), 1), cl(np.rint(s[2]), 2)]
    return grid.apply_sym(out, p.perm, p.flip), grid.apply_sym(olab, p.perm, p.flip)


def test_one_pass_warp_follows_the_tap_rules_on_every_path():
    """Every path (planar, planar + z transpose, off-plane, elastic, misalignment, symmetries):
    the kernel's positions are grid.source_coords bit for bit, images follow the tap rules within
    1e-5, labels bitwise; a z-transposed planar warp is one pass too (no copy afterwards)."""
    rng = np.random.default_rng(0)
    seen = set()
    for p in path_params(36):
        c = np.empty((3, *p.patch_shape), np.float32)
        _cpu_warp.warp(p, None, None, None, None, coords=c)
        assert np.array_equal(c, grid.source_coords(p)), p.applied
        img = random_image(rng, (np.uint8, np.int16, np.float32, np.uint32)[len(seen) % 4], p.context_shape)
        lab = rng.integers(0, 2**63, p.context_shape, dtype=np.uint64)
        out, olab, _ = geometry.warp(p, img, lab)
        ref, rlab = _reference(p, img, lab)
        assert out.flags.c_contiguous and olab.flags.c_contiguous
        np.testing.assert_allclose(out, ref, atol=1e-5, err_msg=str(p.applied))
        assert np.array_equal(olab, rlab), p.applied
        seen.add(("planar" if p.planar else "off-plane", p.perm[0] != 0, p.elastic is not None))
    assert {("planar", True, False), ("planar", False, True), ("off-plane", False, True)} <= seen, seen


def test_images_equal_cv2_remap_bitwise():
    """The bilinear arithmetic is cv2.remap INTER_LINEAR's (the former CPU path): planar sections
    and the z lerp of two remapped sections equal OpenCV's output bit for bit."""
    rng = np.random.default_rng(1)
    n = 0
    for p in path_params(24, seed=1):
        if p.perm[0] != 0:
            continue
        img = rng.random(p.context_shape, dtype=np.float32)
        out = geometry.warp(p, img)[0]
        ref = np.empty(p.patch_shape, np.float32)  # canonical order
        s = grid.source_coords(p)
        cz = p.context_shape[0]
        for k in range(p.patch_shape[0]):
            def remap(z, img=img, my=s[1, k], mx=s[2, k]):
                return cv2.remap(img[z], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

            if p.planar:
                ref[k] = remap(int(np.clip(int(s[0, k, 0, 0]), 0, cz - 1)))
            else:
                fz = np.floor(s[0, k])
                z0 = np.clip(fz.astype(np.int64), 0, cz - 1)
                z1 = np.clip(fz.astype(np.int64) + 1, 0, cz - 1)
                sec = {z: remap(z) for z in np.unique(np.concatenate([z0.ravel(), z1.ravel()]))}
                a = np.choose(np.searchsorted(sorted(sec), z0), [sec[z] for z in sorted(sec)])
                b = np.choose(np.searchsorted(sorted(sec), z1), [sec[z] for z in sorted(sec)])
                f = s[0, k] - fz
                ref[k] = a * (np.float32(1) - f) + b * f
        assert np.array_equal(out, grid.apply_sym(ref, p.perm, p.flip)), p.applied
        n += 1
    assert n >= 12


def test_a_box_holding_every_tap_gives_the_full_context_output():
    rng = np.random.default_rng(2)
    grown = 0
    for i, p in enumerate(path_params(30, seed=2)):
        img = random_image(rng, (np.uint8, np.float32, np.uint16)[i % 3], p.context_shape)
        lab = rng.integers(0, 2**40, p.context_shape, dtype=np.uint64)
        mask = rng.random(p.context_shape) < 0.5
        full = geometry.warp(p, img, lab, mask)
        for r in (None, rng):
            o, n = tap_box(p, r)
            box = tuple(slice(a, a + b) for a, b in zip(o, n))
            got = geometry.warp(p, img[box], lab[box], mask[box], origin=o)
            assert all(np.array_equal(g, f) for g, f in zip(got, full)), (p.applied, o, n)
            # the table's entry takes the origin the same way
            got = augment.table.warp_transform().cpu(p, img[box], None, mask[box], origin=tuple(o))
            assert np.array_equal(got[0], full[0]) and np.array_equal(got[2], full[2])
            grown += int(np.prod(n) < np.prod(p.context_shape))
    assert grown > 20  # real boxes, smaller than the context


def test_bad_origins_are_errors():
    p = draw(AugmentConfig(), 0, (4, 16, 16), (40, 4, 4))
    img = np.zeros((4, 8, 8), np.uint8)
    with pytest.raises(ValueError, match=r"origin: expected 3 integers >= 0 with origin \+ \(4, 8, 8\)"):
        geometry.warp(p, img, origin=(0, p.context_shape[1] - 4, 0))
    with pytest.raises(ValueError, match="origin: expected 3 integers"):
        geometry.warp(p, img, origin=(-1, 0, 0))
    with pytest.raises(ValueError, match=r"label: expected the box shape \(4, 8, 8\)"):
        geometry.warp(p, img, np.zeros((4, 8, 9), np.uint32), origin=(0, 0, 0))


def test_coordinates_just_below_zero_replicate_the_border(xp):
    img = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    p, q = border_params()
    out = to_numpy(augment.apply(p, xp.asarray(img))[0])
    np.testing.assert_allclose(out[:, 0, 0], img[:, 0, 0], atol=1e-6)  # y = x = -0.5
    np.testing.assert_allclose(out[:, 0, 1:], (img[:, 0, :-1] + img[:, 0, 1:]) / 2, atol=1e-6)
    out = to_numpy(augment.apply(q, xp.asarray(img))[0])
    np.testing.assert_allclose(out[0, :4], img[0, :4], atol=1e-6)  # z in (-0.4, 0): section 0
    f = np.float32(0.1) * (np.arange(4, 8, dtype=np.float32) - np.float32(3.5))
    np.testing.assert_allclose(out[0, 4:], img[0, 4:] * (1 - f[:, None]) + img[1, 4:] * f[:, None], atol=1e-6)


def test_wrong_context_shape_is_an_error(xp):
    p = draw(AugmentConfig(), 0, (4, 32, 32), (40, 4, 4))
    with pytest.raises(ValueError, match=r"image: expected shape .*context_shape.*got \(4, 32, 32\)"):
        augment.apply(p, xp.zeros((4, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="mask: expected shape"):
        augment.apply(p, None, None, xp.zeros((4, 32, 32), np.uint8))
    with pytest.raises(TypeError, match="label"):
        augment.apply(p, None, np.zeros(p.context_shape, np.float32))


# every image dtype the readers accept, plus what stage.to_float_image also takes
IMAGE_DTYPES = (*_common.IMAGE_DTYPES, "int64", "uint64", "float16", "bool")


@pytest.mark.parametrize("dtype", IMAGE_DTYPES)
def test_every_image_dtype_is_scaled_like_the_unaugmented_path(xp, dtype):
    """int16 etc. passed the readers and the unaugmented path but failed at the first augmented batch."""
    rng = np.random.default_rng(0)
    if dtype == "bool":
        img = rng.random((4, 20, 20)) < 0.5
    else:
        img = random_image(rng, dtype, (4, 20, 20))
    # a zero-displacement warp is the crop, scaled exactly as stage.to_float_image scales it
    out = to_numpy(augment.apply(identity((2, 10, 10), (4, 20, 20)), xp.asarray(img))[0])
    crop = img[1:3, 5:15, 5:15]
    assert out.dtype == np.float32 and np.array_equal(out, to_float_image(crop)), dtype
    # and the whole default augmentation runs on a batch of it
    params = [draw(AugmentConfig(), rng, (4, 24, 24), (40, 4, 4)) for _ in range(3)]
    batch = random_image(rng, "uint8" if dtype == "bool" else dtype, (3, *params[0].context_shape))
    if dtype == "bool":
        batch = batch > 127
    got = to_numpy(augment.apply_batch(params, xp.asarray(batch))[0])
    assert got.shape == (3, 4, 24, 24) and got.dtype == np.float32 and np.isfinite(got).all()


def test_unsupported_image_dtype_is_an_error(xp):
    p = identity((2, 4, 4))
    with pytest.raises(TypeError, match=r"image.*expected an integer, float or bool dtype, got complex64"):
        augment.apply(p, xp.zeros((2, 4, 4), np.complex64))
