"""The CPU window sums of ``lsd.local_shape_descriptors``: a Numba kernel, parallel over labels.

``window_sums`` fills ``out[z, y, x, c]`` with ``S_c`` of the voxel's own label: each label is
filtered over its bounding box grown by the window radius, with scipy.ndimage's correlate1d
arithmetic (double accumulation from the outermost tap, ``(a[-j] + a[j]) * w[j]``, float32
between the z, y and x passes), so the sums equal ``gaussian_filter(mask * f, sigma,
mode="constant", truncate=3)`` at the label's voxels, as lsds computes them.

Example:
    >>> import numpy as np
    >>> from neurons_jax.targets import _lsd_numba
    >>> inv = np.zeros((1, 1, 3), np.int32); inv[0, 0, 1] = 1
    >>> out = np.zeros((1, 1, 3, 10), np.float32); w = np.ones(1)
    >>> c = np.arange(3, dtype=np.float32)
    >>> _lsd_numba.window_sums(inv, 2, np.array([0, 1], np.uint8), c[:1], c[:1], c, w, w, w, out)
    >>> out[0, 0, :, 3].tolist()  # S_x: the x coordinate of the one voxel of label 1
    [0.0, 1.0, 0.0]
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _moment(c, z, y, x, cz, cy, cx):
    if c == 0:
        return np.float32(1.0)
    if c == 1:
        return cz[z]
    if c == 2:
        return cy[y]
    if c == 3:
        return cx[x]
    if c == 4:
        return cz[z] * cz[z]
    if c == 5:
        return cy[y] * cy[y]
    if c == 6:
        return cx[x] * cx[x]
    if c == 7:
        return cz[z] * cy[y]
    if c == 8:
        return cz[z] * cx[x]
    return cy[y] * cx[x]


@numba.njit(cache=True)
def _boxes(inv, n):
    Z, Y, X = inv.shape
    lo = np.full((n, 3), 1 << 30, np.int64)
    hi = np.full((n, 3), -1, np.int64)
    for z in range(Z):
        for y in range(Y):
            for x in range(X):
                s = inv[z, y, x]
                lo[s, 0] = min(lo[s, 0], z)
                lo[s, 1] = min(lo[s, 1], y)
                lo[s, 2] = min(lo[s, 2], x)
                hi[s, 0] = max(hi[s, 0], z)
                hi[s, 1] = max(hi[s, 1], y)
                hi[s, 2] = max(hi[s, 2], x)
    return lo, hi


@numba.njit(cache=True, parallel=True)
def window_sums(inv, n, fg, cz, cy, cx, wz, wy, wx, out):
    """``inv`` (Z, Y, X) int32 label index 0..n-1; ``fg[s]`` 1 for labels to describe; ``cz``,
    ``cy``, ``cx`` float32 coordinates; ``wz``, ``wy``, ``wx`` float64 taps (2r + 1 each);
    ``out`` (Z, Y, X, 10) float32, written at the voxels of described labels."""
    Z, Y, X = inv.shape
    rz, ry, rx = (len(wz) - 1) // 2, (len(wy) - 1) // 2, (len(wx) - 1) // 2
    lo, hi = _boxes(inv, n)
    for s in numba.prange(n):
        if fg[s] == 0 or hi[s, 0] < 0:
            continue
        z0, z1 = max(lo[s, 0] - rz, 0), min(hi[s, 0] + rz + 1, Z)
        y0, y1 = max(lo[s, 1] - ry, 0), min(hi[s, 1] + ry + 1, Y)
        x0, x1 = max(lo[s, 2] - rx, 0), min(hi[s, 2] + rx + 1, X)
        nz, ny, nx = z1 - z0, y1 - y0, x1 - x0
        a = np.empty((nz, ny, nx), np.float32)
        b = np.empty((nz, ny, nx), np.float32)
        lz = np.zeros(nz + 2 * rz, np.float64)  # one line buffer per axis: its padding stays 0
        ly = np.zeros(ny + 2 * ry, np.float64)
        lx = np.zeros(nx + 2 * rx, np.float64)
        # rows and columns holding voxels of the label: elsewhere a pass sees only zeros (it
        # writes +0.0, what scipy's sum of zeros gives) or its result is never read
        col = np.zeros((ny, nx), np.bool_)  # (y, x) columns along z with a voxel of s
        row = np.zeros((nz, ny), np.bool_)  # (z, y) rows along x with a voxel of s
        for k in range(nz):
            for j in range(ny):
                for i in range(nx):
                    if inv[z0 + k, y0 + j, x0 + i] == s:
                        col[j, i] = True
                        row[k, j] = True
        xcol = np.zeros(nx, np.bool_)  # x positions whose (., x) columns hold a voxel of s
        for j in range(ny):
            for i in range(nx):
                xcol[i] |= col[j, i]
        for c in range(10):
            for j in range(ny):  # z pass: masked moments -> a
                for i in range(nx):
                    if not col[j, i]:
                        for k in range(nz):
                            a[k, j, i] = np.float32(0.0)
                        continue
                    for k in range(nz):
                        z, y, x = z0 + k, y0 + j, x0 + i
                        v = np.float32(0.0)
                        if inv[z, y, x] == s:
                            v = _moment(c, z, y, x, cz, cy, cx)
                        lz[rz + k] = np.float64(v)
                    for k in range(nz):
                        p = rz + k
                        o = lz[p] * wz[rz]
                        for t in range(-rz, 0):
                            o += (lz[p + t] + lz[p - t]) * wz[rz + t]
                        a[k, j, i] = np.float32(o)
            for k in range(nz):  # y pass: a -> b, on the rows the x pass reads
                for i in range(nx):
                    if not xcol[i]:
                        for j in range(ny):
                            b[k, j, i] = np.float32(0.0)
                        continue
                    for j in range(ny):
                        ly[ry + j] = np.float64(a[k, j, i])
                    for j in range(ny):
                        if not row[k, j]:
                            continue
                        p = ry + j
                        o = ly[p] * wy[ry]
                        for t in range(-ry, 0):
                            o += (ly[p + t] + ly[p - t]) * wy[ry + t]
                        b[k, j, i] = np.float32(o)
            for k in range(nz):  # x pass: b -> out, at the label's voxels
                for j in range(ny):
                    if not row[k, j]:
                        continue
                    for i in range(nx):
                        lx[rx + i] = np.float64(b[k, j, i])
                    for i in range(nx):
                        if inv[z0 + k, y0 + j, x0 + i] != s:
                            continue
                        p = rx + i
                        o = lx[p] * wx[rx]
                        for t in range(-rx, 0):
                            o += (lx[p + t] + lx[p - t]) * wx[rx + t]
                        out[z0 + k, y0 + j, x0 + i, c] = np.float32(o)
