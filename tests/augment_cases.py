"""Augmentation parity cases shared by the CPU and GPU tests: every op of ``augment.table`` alone
(its ``solo_cases``) and full random configs, anisotropic (planar) and isotropic cubes, every
image dtype; and the comparison rule (labels and masks bitwise, images within 1e-5)."""

from __future__ import annotations

import numpy as np

# every image dtype the readers accept (datasets._common.IMAGE_DTYPES), signed ones over their full range
IMAGE_DTYPES = (np.uint8, np.float32, np.uint16, np.int16, np.int8, np.uint32, np.int32, np.float64)
LABEL_DTYPES = (np.uint64, np.uint32, np.uint16, np.uint8, np.int32, np.int64)


def everything():
    """A config where every op of the table fires with probability 0.5 (``solo`` extras kept)."""
    from neurons_jax.augment import AugmentConfig, table

    over = {}
    for _, case in table.solo_cases():
        for k, v in case.items():
            over[k] = tuple(0.5 for _ in v) if isinstance(v, tuple) else (0.5 if v == 1.0 else v)
    return AugmentConfig(**over)


def single_cases(ops=None):
    """``(case name, config)`` of every op of ``augment.table`` firing alone (``ops``: names to keep)."""
    from neurons_jax.augment import AugmentConfig, table

    keep = {op.name for op in table.ops() if ops is None or op.name in ops}
    out = []
    for op in table.ops():
        if op.name in keep:
            out += [(next(iter(c)), AugmentConfig.off(**c)) for c in op.solo_cases()]
    return out


def random_image(rng, dtype, shape):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.random(shape).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)


def parity_cases(ops=None):
    """``(name, params_list, images, labels, masks)``: each op of the table alone and full random
    configs, anisotropic (planar) and isotropic cubes (z transposes, 3D path), every image dtype.

    ``ops``: only the single cases of these op names (the full random configs always come)."""
    from neurons_jax import augment

    cases = [*single_cases(ops), *[("all", everything())] * 3]
    n = 0
    for vs, patch in (((40, 4, 4), (5, 36, 36)), ((10, 10, 10), (12, 12, 12)), ((30, 6, 6), (1, 33, 29))):
        for name, cfg in cases:
            rng = np.random.default_rng(n)
            params = [augment.draw(cfg, rng, patch, vs) for _ in range(3)]
            ctx = params[0].context_shape
            idt, ldt = IMAGE_DTYPES[n % len(IMAGE_DTYPES)], LABEL_DTYPES[n % len(LABEL_DTYPES)]
            img = random_image(rng, idt, (3, *ctx))
            top = np.iinfo(ldt).max
            ids = np.array([0, 1, 2, 3, top // 2, top - 1], dtype=ldt)
            lab = ids[rng.integers(0, len(ids), (3, *ctx))]
            mask = rng.random((3, *ctx)) < 0.5
            yield f"{name}-{vs[0]}nm-{patch}-{np.dtype(idt).name}", params, img, lab, mask
            n += 1


def assert_parity(ref, got, name: str) -> None:
    """Labels and masks bitwise, images within 1e-5."""
    img, lab, mask = (None if a is None else np.asarray(a) for a in got)
    assert img.dtype == np.float32 and img.shape == ref[0].shape, name
    assert np.abs(img - ref[0]).max() <= 1e-5, (name, float(np.abs(img - ref[0]).max()))
    assert lab.dtype == ref[1].dtype and np.array_equal(lab, ref[1]), name
    assert mask.dtype == ref[2].dtype and np.array_equal(mask, ref[2]), name


def border_params():
    """Params whose source coordinates fall just below 0 (in-plane, then in z)."""
    from neurons_jax.augment.params import identity

    p = identity((3, 8, 8))
    p.misalign = np.full((3, 2), -0.5, np.float32)  # every section half a voxel up and left
    q = identity((3, 8, 8))
    q.affine = np.array([[1, 0.1, 0], [0, 1, 0], [0, 0, 1]], np.float32)  # z = k + 0.1 (y - 3.5)
    assert p.planar and not q.planar
    return p, q


def tap_box(params, rng=None):
    """``(origin, shape)`` of the smallest box holding every tap the warp reads for ``params``
    (image: floor and floor + 1 of each position, planar z: int(z); labels: rint), each tap
    clamped to the context as the warp clamps it; ``rng``: grow it by a random margin."""
    from neurons_jax.augment import grid

    s = grid.source_coords(params).reshape(3, -1)
    ctx = np.asarray(params.context_shape)
    lo, hi = np.empty(3, np.int64), np.empty(3, np.int64)
    for a in range(3):
        if a == 0 and params.planar:
            taps = [s[0].astype(np.int64)]
        else:
            f = np.floor(s[a]).astype(np.int64)
            taps = [f, f + 1]
        taps.append(np.rint(s[a]).astype(np.int64))
        t = np.clip(np.concatenate(taps), 0, ctx[a] - 1)
        lo[a], hi[a] = t.min(), t.max() + 1
    if rng is not None:
        lo = np.maximum(0, lo - rng.integers(0, 3, 3))
        hi = np.minimum(ctx, hi + rng.integers(0, 3, 3))
    return lo, hi - lo


def path_params(n, seed=0):
    """``n`` params of every warp path (planar, planar + z transpose, off-plane, elastic,
    misalignment, flips, rot90) for anisotropic and isotropic cubic patches."""
    from neurons_jax import augment
    from neurons_jax.augment import AugmentConfig

    geo = AugmentConfig.off(
        flip_prob=(0.5, 0.5, 0.5), rot90_prob=0.5, transpose_xy_prob=0.5, transpose_z_prob=0.5,
        rotate_prob=0.7, scale_prob=0.7, elastic_prob=0.6, misalign_prob=0.5, rotate_3d_prob=0.4,
        elastic_sigma_nm=(8.0, 20.0),
    )
    cube = geo.replace(elastic_prob=0.3, rotate_3d_prob=0.3)  # planar z transposes come too
    rng = np.random.default_rng(seed)
    cases = (((40, 4, 4), (5, 24, 20), geo), ((10, 10, 10), (12, 12, 12), cube),
             ((10, 10, 10), (6, 14, 10), geo))
    return [augment.draw(c[2], rng, c[1], c[0]) for c in (cases[i % 3] for i in range(n))]
