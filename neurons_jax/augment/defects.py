"""EM defects on the CPU (image only): missing / low-contrast sections, lines, charging,
missing parts, motion blur; plus the per-voxel pass that also applies the intensity ops.

``pointwise`` is the NumPy reference of that pass: the table runs ``_cpu_image``'s fused numba
loop instead (the same values; tests/test_augment_image.py compares them).

The per-voxel pass follows ``kernels/augment_image.cu`` step by step: read the source section
(``zsrc``: a missing section filled from a neighbour), low contrast ``m + (v - m) * f`` around the
section mean of the warped image, contrast/brightness/gamma, blank sections, dark lines
``v * (1 - s * exp(-d^2 / 2w^2))``, charging ``v + s * exp(-|d| / w)`` (``d`` the signed distance
to the line), then blobs (ellipses, exact float32 test) set to a constant.

Example:
    >>> import numpy as np
    >>> motion_taps(3, 0.0).tolist()
    [[0, -1], [0, 0], [0, 1]]
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .intensity import affine_gamma

F32 = np.float32


def section_means(img) -> object:
    """Mean of each section of ``(..., Z, Y, X)`` in float64, returned as float32 (NumPy or CuPy)."""
    return img.mean(axis=(-2, -1), dtype=np.float64).astype(F32)


def _yx(py: int, px: int):
    return np.arange(py, dtype=F32)[:, None], np.arange(px, dtype=F32)[None, :]


def line_value(v: np.ndarray, row: np.ndarray, yy, xx) -> np.ndarray:
    """Apply one line-table row (``params.LINE_COLS``) to a section."""
    _, cy, cx, ny, nx, w, s, kind = (F32(t) for t in row)
    d = (yy - cy) * ny + (xx - cx) * nx
    if kind == 0:
        g = d / w
        return v * (F32(1) - s * np.exp(F32(-0.5) * g * g))
    return v + s * np.exp(-np.abs(d) / w)


def blob_inside(row: np.ndarray, yy, xx) -> np.ndarray:
    """Boolean ellipse test of one blob row, ``((a dy) dy + (b2 dy) dx) + (c dx) dx <= 1``."""
    _, cy, cx, a, b2, c, _ = (F32(t) for t in row)
    dy, dx = yy - cy, xx - cx
    return ((a * dy) * dy + (b2 * dy) * dx) + (c * dx) * dx <= F32(1)


def pointwise(params, img: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
    """Sections, intensity, lines and blobs in one pass over the warped image (new array)."""
    pz, py, px = img.shape
    zsrc = np.arange(pz) if params.zsrc is None else params.zsrc.astype(np.int64)
    v = img[zsrc] if params.zsrc is not None else img.copy()
    if params.low_contrast is not None:
        if means is None:
            means = section_means(img)
        f = params.low_contrast[zsrc]
        for z in np.flatnonzero(f != 1):
            m = means[zsrc[z]]
            v[z] = m + (v[z] - m) * f[z]
    v = affine_gamma(params, v, zsrc)
    if params.blank is not None:
        v[params.blank] = F32(params.missing_value)
    if params.lines is not None or params.blobs is not None:
        yy, xx = _yx(py, px)
        for row in () if params.lines is None else params.lines:
            z = int(row[0])
            v[z] = line_value(v[z], row, yy, xx)
        for row in () if params.blobs is None else params.blobs:
            z = int(row[0])
            v[z][blob_inside(row, yy, xx)] = F32(row[6])
    return v


@functools.lru_cache(maxsize=512)
def _taps(length: int, angle32: float) -> np.ndarray:
    h = (length - 1) // 2
    t = np.arange(-h, h + 1, dtype=np.float64)
    sy, sx = math.sin(angle32), math.cos(angle32)
    step = 1.0 / max(abs(sy), abs(sx))  # one voxel along the dominant axis: distinct taps
    taps = np.stack([np.rint(t * sy * step), np.rint(t * sx * step)], axis=1)
    out = taps.astype(np.int32)
    out.flags.writeable = False
    return out


def motion_taps(length, angle) -> np.ndarray:
    """Integer (dy, dx) offsets of a motion-blur line of ``length`` taps at ``angle`` (radians).

    Taps advance one voxel along the dominant axis, so every tap is a different voxel."""
    return _taps(int(length), float(F32(angle)))


def motion_blur(params, img: np.ndarray) -> np.ndarray:
    """Average ``length`` shifted copies (edge-clamped) of each listed section, in place."""
    if params.motion is None:
        return img
    _, py, px = img.shape
    for z, length, angle in params.motion:
        taps = motion_taps(length, angle)
        r = int(np.abs(taps).max()) if taps.size else 0
        sec = np.pad(img[int(z)], r, mode="edge")
        acc = None
        for dy, dx in taps:
            s = sec[r + dy : r + dy + py, r + dx : r + dx + px]
            acc = s.copy() if acc is None else acc + s
        img[int(z)] = acc / F32(len(taps))
    return img
