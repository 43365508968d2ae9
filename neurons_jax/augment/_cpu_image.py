"""The fused CPU image pass (numba): pointwise defects, intensity and the hashed noise, in place.

One float32 loop over the warped patch applies, per voxel and in ``kernels/augment_image.cu``'s
order: the source section (a missing section filled from a neighbour), low contrast
``m + (v - m) f`` (``m`` the float64 mean of the warped source section, as float32), contrast /
brightness ``((v - .5) s + .5) + b``, clip to [0, 1], gamma (NumPy's float32 power in place
between two passes of the loop, the values of ``intensity.affine_gamma``), blank sections, dark lines
``v (1 - s exp((-.5 g) g))`` and charging ``v + s exp(-|d| / w)``, blobs set to a constant, and
``v + sigma N`` with ``N = NORMAL_TABLE[lowbias32(lowbias32(i) ^ key) >> 16]`` (``i`` the voxel's flat
index, the GPU's hash bit for bit) when the noise comes next for the sample: the table runs
``pointwise -> motion_blur -> blur -> noise``, so the noise is fused only when neither blur nor a
registered transform in between is active for the sample (``noise_fused``); otherwise the noise
entry runs the same loop alone after them. Every step is float32 without fused multiply-add
(numba without fastmath), so the values equal the NumPy references bit for bit except the
lines' ``exp``, libm's ``expf`` here (NumPy's SIMD float32 ``exp`` differs from it by about one ulp).

Example:
    >>> import numpy as np
    >>> from neurons_jax.augment.params import identity
    >>> p = identity((2, 4, 4))
    >>> p.noise_sigma, p.noise_seed = 0.1, 7
    >>> img = np.zeros((2, 4, 4), np.float32)
    >>> from neurons_jax.augment import intensity
    >>> bool((noise_entry(p, img.copy()) == intensity.standard_normal(7, (2, 4, 4)) * np.float32(0.1)).all())
    True
"""

from __future__ import annotations

import numba
import numpy as np

from . import intensity

F32 = np.float32
_NO_ROWS = {n: np.zeros((0, n), F32) for n in (7, 8)}
_NO_SEC = np.zeros(1, F32)


_M32 = np.uint64(0xFFFFFFFF)


@numba.njit(cache=True, nogil=True)
def _lowbias32(x):
    """``intensity.hash_u32`` of one value, in uint64 arithmetic masked to 32 bits."""
    x = np.uint64(x) & _M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & _M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & _M32
    x ^= x >> np.uint64(16)
    return x


@numba.njit(cache=True, nogil=True)
def _pass(img, saved, slot, zsrc, low, means, scale, shift, flags, gamma, blank, missing, lines,
          blobs, sigma, key, table):
    """In place over ``img (Z, Y, X)``; ``flags``: intensity, gamma, noise (see the module).

    Row by row: each row is read once into a buffer, every active step runs over the buffer
    (simple loops the compiler vectorizes), the row is written back once."""
    pz, py, px = img.shape
    do_int, do_gamma, do_noise = flags[0], flags[1], flags[2]
    half, zero, one = F32(0.5), F32(0.0), F32(1.0)
    nl, nb = lines.shape[0], blobs.shape[0]
    v = np.empty(px, F32)
    xs = np.arange(px).astype(F32)
    for z in range(pz):
        zs = zsrc[z]
        src = img[z] if slot[z] < 0 else saved[slot[z]]
        f, m = low[zs], means[zs]
        sc, sh = scale[zs], shift[zs]
        bl = blank[z]
        mine_l = 0
        for k in range(nl):
            mine_l += np.int64(lines[k, 0]) == z
        mine_b = 0
        for k in range(nb):
            mine_b += np.int64(blobs[k, 0]) == z
        for y in range(py):
            row = src[y]
            for x in range(px):
                v[x] = row[x]
            if f != one:
                for x in range(px):
                    v[x] = m + (v[x] - m) * f
            if do_int:
                for x in range(px):
                    t = ((v[x] - half) * sc + half) + sh
                    v[x] = zero if t < zero else (one if t > one else t)
                if do_gamma:  # (not used by ``run``: NumPy's SIMD power between two passes)
                    for x in range(px):
                        v[x] = v[x] ** gamma
            if bl:
                for x in range(px):
                    v[x] = missing
            yf = F32(y)
            if mine_l:
                for k in range(nl):
                    if np.int64(lines[k, 0]) != z:
                        continue
                    cy, cx, ny, nx = lines[k, 1], lines[k, 2], lines[k, 3], lines[k, 4]
                    w, s = lines[k, 5], lines[k, 6]
                    dy = (yf - cy) * ny
                    if lines[k, 7] == zero:
                        for x in range(px):
                            g = (dy + (xs[x] - cx) * nx) / w
                            v[x] = v[x] * (one - s * np.exp((F32(-0.5) * g) * g))
                    else:
                        for x in range(px):
                            v[x] = v[x] + s * np.exp(-np.abs(dy + (xs[x] - cx) * nx) / w)
            if mine_b:
                for k in range(nb):
                    if np.int64(blobs[k, 0]) != z:
                        continue
                    qa, qb, qc, val = blobs[k, 3], blobs[k, 4], blobs[k, 5], blobs[k, 6]
                    dy = yf - blobs[k, 1]
                    ay = (qa * dy) * dy
                    by = qb * dy
                    for x in range(px):
                        dx = xs[x] - blobs[k, 2]
                        if (ay + by * dx) + (qc * dx) * dx <= one:
                            v[x] = val
            if do_noise:
                base = np.uint64((z * py + y) * px)
                for x in range(px):
                    h = _lowbias32(_lowbias32(base + np.uint64(x)) ^ key)
                    v[x] = v[x] + sigma * table[h >> np.uint64(16)]
            out = img[z, y]
            for x in range(px):
                out[x] = v[x]


def _rows_of(lines: np.ndarray | None, z_keep: int) -> np.ndarray:
    return _NO_ROWS[z_keep] if lines is None else np.ascontiguousarray(lines, F32)


def run(params, img: np.ndarray, *, pointwise: bool, noise: bool) -> np.ndarray:
    """The fused pass on ``img`` (float32 ``params.patch_shape``), in place; returns ``img``."""
    if img.dtype != F32 or not img.flags.c_contiguous or img.ndim != 3:
        img = np.ascontiguousarray(img, F32)
    pz = img.shape[0]
    ident = np.arange(pz, dtype=np.int64)
    zsrc = ident if (not pointwise or params.zsrc is None) else params.zsrc.astype(np.int64)
    moved = np.flatnonzero(zsrc != ident)
    srcs = np.unique(zsrc[moved])
    slot = np.full(pz, -1, np.int64)
    slot[moved] = np.searchsorted(srcs, zsrc[moved])
    saved = img[srcs].copy() if len(srcs) else np.zeros((1, 1, 1), F32)  # read before overwritten
    low = np.ones(pz, F32)
    means = np.zeros(pz, F32)
    if pointwise and params.low_contrast is not None:
        low = np.ascontiguousarray(params.low_contrast, F32)
        need = np.unique(zsrc[low[zsrc] != 1])
        for u in need:  # the warped source section's mean (equals defects.section_means bitwise)
            means[u] = F32(img[u].mean(dtype=np.float64))
    do_int = bool(pointwise and params.intensity)
    scale = np.ascontiguousarray(params.section_scale, F32) if do_int else np.ones(pz, F32)
    shift = np.ascontiguousarray(params.section_shift, F32) if do_int else np.zeros(pz, F32)
    blank = np.zeros(pz, np.bool_) if (not pointwise or params.blank is None) else np.asarray(params.blank, np.bool_)
    do_noise = bool(noise and params.noise_sigma > 0)
    lines = _rows_of(params.lines if pointwise else None, 8)
    blobs = _rows_of(params.blobs if pointwise else None, 7)
    key = np.uint64(intensity.noise_key(params.noise_seed) if do_noise else 0)
    sigma, table = F32(params.noise_sigma), intensity.normal_table()
    if do_int and params.gamma != 1.0:
        # gamma through NumPy's SIMD float32 power (4x libm's scalar powf, and NumPy's values):
        # pass 1 up to the clip, the power in place, pass 2 from the blank sections on
        _pass(img, saved, slot, zsrc, low, means, scale, shift, np.array([True, False, False]),
              F32(1), np.zeros(pz, np.bool_), F32(0), _NO_ROWS[8], _NO_ROWS[7], sigma, key, table)
        np.power(img, F32(params.gamma), out=img)
        if blank.any() or len(lines) or len(blobs) or do_noise:
            _pass(img, saved, np.full(pz, -1, np.int64), ident, np.ones(pz, F32), means, scale,
                  shift, np.array([False, False, do_noise]), F32(1), blank,
                  F32(params.missing_value), lines, blobs, sigma, key, table)
        return img
    _pass(img, saved, slot, zsrc, low, means, scale, shift, np.array([do_int, False, do_noise]),
          F32(params.gamma), blank, F32(params.missing_value), lines, blobs, sigma, key, table)
    return img


def noise_fused(params) -> bool:
    """True when the noise of ``params`` runs inside the pointwise entry's pass: both active and
    no image transform between them in the table (motion blur, blur, registered ones) active."""
    from . import table

    if not params.noise_sigma > 0:
        return False
    ts = table.image_transforms()
    names = [t.name for t in ts]
    if "pointwise" not in names or "noise" not in names:
        return False
    i, j = names.index("pointwise"), names.index("noise")
    return i < j and ts[i].active(params) and not any(t.active(params) for t in ts[i + 1 : j])


def pointwise_entry(params, img: np.ndarray) -> np.ndarray:
    """The table's ``pointwise`` CPU function: the fused pass (with the noise when it is next)."""
    return run(params, img, pointwise=True, noise=noise_fused(params))


def noise_entry(params, img: np.ndarray) -> np.ndarray:
    """The table's ``noise`` CPU function: the hashed noise alone, unless already fused."""
    if noise_fused(params):
        return img
    return run(params, img, pointwise=False, noise=True)
