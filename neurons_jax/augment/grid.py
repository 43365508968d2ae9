"""Sampling coordinates of the fused warp: the exact float32 arithmetic both backends share.

For an output voxel ``o`` the warp first applies the exact symmetry (flips, transposes, rot90):
``k_i = P_i - 1 - o[perm_i]`` if ``flip_i`` else ``o[perm_i]`` (the canonical index). Then, all in
float32 and in this order (``kernels/augment_warp.cu`` repeats it with ``__fmul_rn``/``__fadd_rn``
so no fused multiply-add changes a rounding, which keeps nearest-neighbour labels bitwise equal):

    q_i = float(k_i) - pc_i                       pc = (P - 1) / 2, c = (C - 1) / 2
    a_i = (A[i,0] * q_z + A[i,1] * q_y) + A[i,2] * q_x
    s_i = ((c_i + a_i) + d_i) + t_i               d: elastic, t: misalignment (y, x only)

``d`` is a cubic B-spline of the coarse control grid ``G (3, gz, gy, gx)``, evaluated
separably: along x, then y, then z, each sum ``w0*g0 + w1*g1 + w2*g2 + w3*g3`` left to right.
Images are sampled bilinearly (trilinearly off-plane), labels and masks at ``rint(s)`` (round
half to even, what ``cv2.remap`` INTER_NEAREST does).

Example:
    >>> import numpy as np
    >>> w, i = spline_table(5, 4, 4.0)
    >>> np.allclose(w.sum(1), 1), i.tolist()
    (True, [0, 0, 0, 0, 0])
"""

from __future__ import annotations

import functools
import math

import numpy as np

F32 = np.float32


def grid_intervals(n_out: int, spacing: float) -> int:
    """Number of B-spline intervals covering ``n_out`` voxels at ``spacing`` voxels."""
    return max(1, math.ceil((n_out - 1) / spacing - 1e-9))


def grid_shape(patch_shape, spacing_vox) -> tuple[int, int, int]:
    """Control-grid shape (intervals + 3 per axis) for a patch and spacings in voxels."""
    return tuple(grid_intervals(p, s) + 3 for p, s in zip(patch_shape, spacing_vox))  # type: ignore


@functools.lru_cache(maxsize=64)
def spline_table(n_out: int, n_ctrl: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Cubic B-spline weights ``(n_out, 4)`` float32 and first control index ``(n_out,)`` int32.

    Control point ``j`` sits at voxel ``(j - 1) * spacing - off``, centred on the patch."""
    n = n_ctrl - 3
    off = (n * spacing - (n_out - 1)) / 2.0
    t = (np.arange(n_out, dtype=np.float64) + off) / spacing
    i = np.clip(np.floor(t), 0, n - 1)
    f = t - i
    w = np.stack(
        [(1 - f) ** 3 / 6, (3 * f**3 - 6 * f**2 + 4) / 6, (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6, f**3 / 6],
        axis=1,
    )
    w32, i32 = w.astype(F32), i.astype(np.int32)
    w32.flags.writeable = False
    i32.flags.writeable = False
    return w32, i32


def _sum4(w: np.ndarray, g0, g1, g2, g3):
    """``((w0*g0 + w1*g1) + w2*g2) + w3*g3`` in float32 with w broadcast by the caller."""
    acc = w[0] * g0
    acc += w[1] * g1
    acc += w[2] * g2
    acc += w[3] * g3
    return acc


def spline_yx(grid: np.ndarray, patch_shape, spacing) -> tuple[np.ndarray, tuple]:
    """Grid reduced along x then y: ``(C, gz, Py, Px)``, plus the z table for :func:`spline_z`."""
    pz, py, px = patch_shape
    gz, gy, gx = grid.shape[1:]
    wz = spline_table(pz, gz, float(spacing[0]))
    wy, iy = spline_table(py, gy, float(spacing[1]))
    wx, ix = spline_table(px, gx, float(spacing[2]))
    g = grid.astype(F32, copy=False)
    r = _sum4(wx.T, *(g[..., ix + t] for t in range(4)))  # (C, gz, gy, Px)
    wyb = wy.T[:, :, None]
    s = _sum4(wyb, *(r[:, :, iy + t, :] for t in range(4)))  # (C, gz, Py, Px)
    return s, wz


def spline_z(s: np.ndarray, ztable: tuple, kz) -> np.ndarray:
    """Displacement at canonical sections ``kz`` (an int or an index array) from :func:`spline_yx`."""
    wz, iz = ztable
    kz = np.asarray(kz)
    w = wz[kz].T  # (4,) or (4, n)
    i = iz[kz]
    if kz.ndim == 0:
        return _sum4(w, *(s[:, int(i) + t] for t in range(4)))
    wb = w[:, None, :, None, None]
    return _sum4(wb, *(s[:, i + t] for t in range(4)))


def elastic_field(grid: np.ndarray, patch_shape, spacing) -> np.ndarray:
    """Full displacement ``(C, Pz, Py, Px)`` in voxels (C = number of grid components)."""
    s, zt = spline_yx(grid, patch_shape, spacing)
    return spline_z(s, zt, np.arange(patch_shape[0]))


def centred(n: int) -> np.ndarray:
    """``float32(k) - (n - 1) / 2`` for k in range(n)."""
    return np.arange(n, dtype=F32) - F32((n - 1) / 2)


def affine_offsets(affine: np.ndarray, patch_shape, axes=(0, 1, 2)) -> list[np.ndarray]:
    """``a_i = (A[i,0]*q_z + A[i,1]*q_y) + A[i,2]*q_x`` broadcast to ``(Pz, Py, Px)``."""
    a = np.asarray(affine, dtype=F32)
    qz = centred(patch_shape[0])[:, None, None]
    qy = centred(patch_shape[1])[None, :, None]
    qx = centred(patch_shape[2])[None, None, :]
    return [(a[i, 0] * qz + a[i, 1] * qy) + a[i, 2] * qx for i in axes]


def source_coords(params) -> np.ndarray:
    """Source position in the context of every canonical voxel: ``(3, Pz, Py, Px)`` float32."""
    p, c = params.patch_shape, params.context_shape
    out = np.empty((3, *p), dtype=F32)
    a = affine_offsets(params.affine, p)
    d = None
    if params.elastic is not None:
        d = elastic_field(params.elastic, p, params.elastic_spacing)
    for i in range(3):
        s = F32((c[i] - 1) / 2) + a[i]
        if d is not None:
            s = s + d[i]
        if i > 0 and params.misalign is not None:
            s = s + params.misalign[:, i - 1].astype(F32)[:, None, None]
        out[i] = np.broadcast_to(s, p)
    return out


def source_sections(params):
    """``source_coords(params)[:, k]`` for k = 0, 1, ... one section at a time (bitwise equal).

    Memory stays at one section's coordinates; the elastic field is reduced along x and y once
    and finished per section, as the planar path does.
    """
    p, c = params.patch_shape, params.context_shape
    a = np.asarray(params.affine, dtype=F32)
    qz = centred(p[0])
    qy = centred(p[1])[:, None]
    qx = centred(p[2])[None, :]
    spl = None
    if params.elastic is not None:
        spl = spline_yx(params.elastic, p, params.elastic_spacing)
    for k in range(p[0]):
        d = None if spl is None else spline_z(spl[0], spl[1], k)
        out = np.empty((3, p[1], p[2]), dtype=F32)
        for i in range(3):
            s = F32((c[i] - 1) / 2) + ((a[i, 0] * qz[k] + a[i, 1] * qy) + a[i, 2] * qx)
            if d is not None:
                s = s + d[i]
            if i > 0 and params.misalign is not None:
                s = s + F32(params.misalign[k, i - 1])
            out[i] = np.broadcast_to(s, p[1:])
        yield out


def sym_axes(perm) -> tuple[int, int, int]:
    """``np.transpose`` axes that realise ``out[o] = W[o[perm_0], o[perm_1], o[perm_2]]``."""
    return tuple(int(a) for a in np.argsort(np.asarray(perm)))  # type: ignore[return-value]


def apply_sym(w, perm, flip, batched: bool = False):
    """Output of the canonical array ``w`` under the symmetry (a view; NumPy or CuPy)."""
    lead = 1 if batched else 0
    for i in range(3):
        if flip[i]:
            w = w[(slice(None),) * (lead + i) + (slice(None, None, -1),)]
    axes = sym_axes(perm)
    if tuple(axes) != (0, 1, 2):
        w = w.transpose(*(range(lead)), *(lead + a for a in axes))
    return w
