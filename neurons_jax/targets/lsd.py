"""``local_shape_descriptors``: the 10 LSD channels of Sheridan et al. 2022 (the ``lsds`` package).

For a voxel ``v`` of instance ``l`` the descriptor summarises the part of ``l`` seen through a
Gaussian window around ``v`` (``sigma_nm``, truncated at 3 sigma as ``scipy.ndimage`` does), in nm:
with ``G`` the window and ``x`` the coordinates, ``S_f(v) = sum_{u: ids[u] == l} G(v - u) f(u)``.
Channels (last axis), exactly as ``lsd.train.local_shape_descriptor.get_local_shape_descriptors``
(mode ``"gaussian"``, ``downsample=1``, every component) computes them:

* 0-2: mean offset ``S_x / S_1 - x_v`` for z, y, x, as ``offset / sigma * 0.5 + 0.5``;
* 3-5: variances zz, yy, xx of the windowed coordinates, divided by ``sigma**2``;
* 6-8: Pearson coefficients zy, zx, yx (variances floored at 1e-3 nm^2), as ``p * 0.5 + 0.5``;
* 9: size ``S_1`` (the window's weight on the instance, in (0, 1]);

all clipped to [0, 1]; channels 0-2 and 6-8 are 0 on background (3-5 and 9 are 0 there anyway).
A 2D image gives lsds' six 2D channels (mean y, x; variance yy, xx; Pearson yx; size).

lsds filters the whole volume once per label (Python loop). Here every label is filtered over its
bounding box grown by the window radius only (the window of a voxel of ``l`` sees nothing of
``l`` outside it, and zeros add nothing), all labels in one compiled pass: on the CPU a Numba
kernel parallel over labels, on the GPU CUDA kernels over every (label, box voxel) pair of the
batch at once (``kernels/targets_lsd.cu``); both repeat scipy's arithmetic (separable z, y, x
passes summing ``(a[-j] + a[j]) * w[j]`` from the outermost tap in double, float32 between
passes, then lsds' float32 post-processing), so they match lsds to float32 rounding.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> ids = np.zeros((4, 6, 6), np.uint32); ids[:, 1:5, 1:5] = 7
    >>> d = nj.targets.local_shape_descriptors(ids, sigma_nm=(8, 8, 8), voxel_size=(4, 4, 4))
    >>> d.shape, d.dtype, float(d[0, 0, 0].max()), round(float(d[2, 2, 2, 1]), 4)
    ((4, 6, 6, 10), dtype('float32'), 0.0, 0.5899)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..backend import is_cupy_array, on_device_of
from ..ops import _kernels
from . import spec as _spec
from ._common import as_batch, voxel_size3

_FUNC = "local_shape_descriptors"
TRUNCATE = 3.0
CHANNELS_2D = (1, 2, 4, 5, 8, 9)  # of the 3D channels, for one section


def local_shape_descriptors(ids, sigma_nm, voxel_size):
    """float32 LSDs of ``ids`` (``(Y, X)``, ``(Z, Y, X)`` or ``(B, Z, Y, X)``), channels last.

    Args:
        ids: instance ids (integer or bool), NumPy or CuPy; 0 is background.
        sigma_nm: the Gaussian's sigma in nm, one per spatial axis (or one number for all).
        voxel_size: nm per voxel along each spatial axis.

    Returns:
        ``ids.shape + (10,)`` float32 (``+ (6,)`` for 2D ids) on ids' backend.
    """
    ids, ids4 = as_batch(ids, "ids", _FUNC)
    vs = voxel_size3(voxel_size, ids.ndim, _FUNC)
    sigma = _sigma3(sigma_nm, ids.ndim)
    plan = _plan(sigma, vs, ids.ndim == 2)
    if is_cupy_array(ids):
        with on_device_of(ids):
            sums = _sums_gpu(ids4, plan)
            out = _finish(sums, ids4, plan)
    else:
        out = _finish(_sums_cpu(ids4, plan), ids4, plan)
    if ids.ndim == 2:
        out = out[..., list(CHANNELS_2D)]
    return out.reshape(*ids.shape, out.shape[-1])


def _sigma3(sigma_nm, ndim: int) -> tuple[float, float, float]:
    n = 2 if ndim == 2 else 3
    s = (sigma_nm,) * n if np.isscalar(sigma_nm) else tuple(sigma_nm)
    try:
        return voxel_size3(s, ndim, _FUNC)
    except (TypeError, ValueError):
        raise ValueError(
            f"{_FUNC}: sigma_nm must be {n} positive sizes in nm (or one number); got {sigma_nm!r}"
        ) from None


@dataclass(frozen=True)
class _Plan:
    sigma: tuple[float, float, float]  # nm
    vs: tuple[float, float, float]
    radius: tuple[int, int, int]
    weights: tuple[np.ndarray, np.ndarray, np.ndarray]  # float64, scipy's taps (2r + 1 each)


def _kernel1d(sigma_vox: float) -> np.ndarray:
    """scipy.ndimage.gaussian_filter1d's taps (truncate 3), reversed as it correlates them."""
    radius = int(TRUNCATE * sigma_vox + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma_vox * sigma_vox) * x**2)
    return (phi / phi.sum())[::-1].copy()


@functools.cache
def _plan(sigma: tuple, vs: tuple, two_d: bool) -> _Plan:
    ws = []
    for k in range(3):
        if k == 0 and two_d:
            ws.append(np.ones(1))  # no z pass for one section
        else:
            ws.append(_kernel1d(sigma[k] / vs[k]))
    return _Plan(sigma, vs, tuple((len(w) - 1) // 2 for w in ws), tuple(ws))


def margin_voxels(sigma_nm, voxel_size) -> tuple[int, int, int]:
    """The window radius in voxels along (z, y, x): the context an exact LSD needs."""
    return _plan(_sigma3(sigma_nm, 3), voxel_size3(voxel_size, 3, "LSD"), False).radius


def coordinates(n: int, size: float) -> np.ndarray:
    """lsds' coordinates along one axis: ``float32(arange(0, n * size, size))``."""
    return np.arange(0, n * size, size)[:n].astype(np.float32)


# ----------------------------------------------------------------------------- the window sums
def compact(ids3: np.ndarray) -> tuple[np.ndarray, int]:
    """``ids3`` renumbered to int32 0..n-1 with 0 kept at 0 (fastremap), and n."""
    import fastremap

    lab = _kernels.unsigned_view(np.ascontiguousarray(ids3))
    inv, _ = fastremap.renumber(lab, preserve_zero=True, in_place=False)
    inv = inv.astype(np.int32, copy=False)
    return inv, int(inv.max(initial=0)) + 1


def _sums_cpu(ids4: np.ndarray, plan: _Plan) -> np.ndarray:
    """(B, Z, Y, X, 10) float32 window sums S_1, S_z, S_y, S_x, S_zz, S_yy, S_xx, S_zy, S_zx,
    S_yx, each voxel's from its own label (background voxels: 0)."""
    from . import _lsd_numba

    B, Z, Y, X = ids4.shape
    out = np.zeros((B, Z, Y, X, 10), np.float32)
    if ids4.size == 0:
        return out
    cz, cy, cx = (coordinates(n, s) for n, s in zip((Z, Y, X), plan.vs))
    for b in range(B):  # samples, not labels
        inv, n = compact(ids4[b])
        fg = np.ones(n, np.uint8)
        fg[0] = 0  # index 0 is background (fastremap keeps 0 at 0)
        _lsd_numba.window_sums(inv, n, fg, cz, cy, cx, *plan.weights, out[b])
    return out


# ----------------------------------------------------------------------------- lsds' post-processing
def _finish(sums, ids4, plan: _Plan):
    """lsds' float32 arithmetic from the window sums to the clipped descriptors."""
    from ..backend import array_module

    xp = array_module(sums)
    B, Z, Y, X = ids4.shape
    s = xp.moveaxis(sums, -1, 0)  # (10, B, Z, Y, X)
    coords = [xp.asarray(coordinates(n, v)) for n, v in zip((Z, Y, X), plan.vs)]
    grid = [coords[0][:, None, None], coords[1][None, :, None], coords[2][None, None, :]]
    count = s[0].copy()
    count[count == 0] = 1
    mean = s[1:4] / count
    mean_offset = xp.stack([mean[d] - grid[d] for d in range(3)])
    pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
    cov = s[4:10] / count
    cov = xp.stack([cov[k] - mean[i] * mean[j] for k, (i, j) in enumerate(pairs)])
    variance = cov[0:3].copy()
    pearson = cov[3:6].copy()
    variance[variance < 1e-3] = 1e-3
    pearson[0] /= xp.sqrt(variance[0] * variance[1])
    pearson[1] /= xp.sqrt(variance[0] * variance[2])
    pearson[2] /= xp.sqrt(variance[1] * variance[2])
    for k in range(3):
        variance[k] /= np.float32(plan.sigma[k] ** 2)
    fg = (ids4 != 0)
    maxd = np.array(plan.sigma, np.float32)
    d0 = xp.stack([mean_offset[k] / maxd[k] * np.float32(0.5) + np.float32(0.5) for k in range(3)])
    d6 = pearson * np.float32(0.5) + np.float32(0.5)
    desc = xp.concatenate([d0 * fg, variance * fg, d6 * fg, (s[0] * fg)[None]])
    desc = xp.clip(desc, np.float32(0), np.float32(1)).astype(np.float32)
    return xp.ascontiguousarray(xp.moveaxis(desc, 0, -1))


# ----------------------------------------------------------------------------- GPU
def _sums_gpu(ids4, plan: _Plan):
    from . import _lsd_gpu

    return _lsd_gpu.window_sums(ids4, plan)


@dataclass(frozen=True)
class LSD(_spec.Deterministic):
    """The ``local_shape_descriptors`` target: ``target`` (..., 10) float32.

    ``sigma_nm``: the Gaussian's sigma in nm (one number or (z, y, x)); the margin is the window
    radius (3 sigma) in voxels."""

    sigma_nm: float | tuple[float, float, float] = 80.0
    outputs = ("target",)
    channels = 10

    def __post_init__(self):
        _sigma3(self.sigma_nm, 3)

    def margin(self, voxel_size) -> tuple[int, int, int]:
        return margin_voxels(self.sigma_nm, voxel_size)

    def __call__(self, ids, semantic=None, mask=None, voxel_size=None, params=None) -> dict:
        if voxel_size is None:
            raise ValueError("LSD: voxel_size (nm) is required")
        if ids.ndim == 2:
            raise ValueError("LSD: the target takes (Z, Y, X) or (B, Z, Y, X) ids (10 channels)")
        return {"target": local_shape_descriptors(ids, self.sigma_nm, voxel_size)}


_spec.register("lsd", LSD)
