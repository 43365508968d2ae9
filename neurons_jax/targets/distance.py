"""``distance``: distance in nm from each labelled voxel to the nearest voxel of another id.

For a voxel ``v`` with ``ids[v] != 0`` the value is the Euclidean distance, with the voxel size's
anisotropy, from ``v``'s centre to the centre of the nearest voxel ``u`` of the same sample with
``ids[u] != ids[v]`` (background included); background voxels get 0. Voxels outside the array do
not count (``edt``'s ``black_border=False``), so an instance that fills its whole sample is +inf
away from anything. This is ``edt.edt(ids, anisotropy=voxel_size, black_border=False)``, the
multi-label EDT of the field, which the CPU path calls (float32). The GPU path is our own exact
separable EDT (``kernels/targets_distance.cu``, one launch per axis for the whole batch), equal
to edt within float32 rounding.

Options: ``clip`` (nm) caps the distance (also +inf); ``normalize=True`` then divides each
instance's distances by that instance's maximum (per sample), giving values in (0, 1] inside
every instance (an instance at +inf everywhere gets 1); no Python loop over labels: a segment
maximum (``np.maximum.at`` over fastremap's compact ids on the CPU, an atomicMax kernel on
the GPU).

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> ids = np.array([[1, 1, 1, 2, 0]], np.uint8)
    >>> nj.targets.distance(ids, (4, 4)).tolist()
    [[12.0, 8.0, 4.0, 4.0, 0.0]]
    >>> [round(v, 3) for v in nj.targets.distance(ids, (4, 4), normalize=True)[0].tolist()]
    [1.0, 0.667, 0.333, 1.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import array_module, is_cupy_array, on_device_of
from ..ops import _kernels
from . import spec as _spec
from ._common import as_batch, voxel_size3

_FUNC = "distance"


def distance(ids, voxel_size, clip: float | None = None, normalize: bool = False):
    """float32 distance map of ``ids`` (``(Y, X)``, ``(Z, Y, X)`` or ``(B, Z, Y, X)``).

    Args:
        ids: instance ids (integer or bool), NumPy or CuPy; 0 is background.
        voxel_size: nm per voxel along each spatial axis (``(z, y, x)``; ``(y, x)`` for 2D ids).
        clip: optional cap in nm (> 0).
        normalize: divide by each instance's maximum (after clipping).
    """
    ids, ids4 = as_batch(ids, "ids", _FUNC)
    vs = voxel_size3(voxel_size, ids.ndim, _FUNC)
    if clip is not None and not (float(clip) > 0):
        raise ValueError(f"{_FUNC}: clip must be a positive distance in nm or None; got {clip!r}")
    if is_cupy_array(ids):
        with on_device_of(ids):
            d = distance_gpu(ids4, vs)
            d = _finish(d, ids4, clip, normalize)
    else:
        d = _distance_cpu(ids4, vs, ids.ndim == 2)
        d = _finish(d, ids4, clip, normalize)
    return d.reshape(ids.shape)


def _distance_cpu(ids4: np.ndarray, vs, two_d: bool) -> np.ndarray:
    import edt

    out = np.empty(ids4.shape, np.float32)
    lab = _kernels.unsigned_view(ids4)
    for b in range(len(ids4)):  # samples, not labels: one edt call each
        if two_d:
            out[b, 0] = edt.edt(np.ascontiguousarray(lab[b, 0]), anisotropy=vs[1:],
                                black_border=False, parallel=1)
        else:
            out[b] = edt.edt(np.ascontiguousarray(lab[b]), anisotropy=vs, black_border=False,
                             parallel=1)
    return out


def distance_gpu(ids4, vs):
    """The exact EDT of a CuPy ``(B, Z, Y, X)`` id array, on the current device."""
    import cupy

    B, Z, Y, X = ids4.shape
    total = ids4.size
    if total == 0:
        return cupy.zeros(ids4.shape, cupy.float32)
    lab = _kernels.unsigned_view(cupy.ascontiguousarray(ids4)).reshape(-1)
    f = _kernels.get_function("targets_distance.cu", f"edt_pass<{_kernels.ctype(lab.dtype)}>")
    a = cupy.empty(total, cupy.float32)
    b = cupy.empty(total, cupy.float32)
    axes = [(X, 1, vs[2]), (Y, X, vs[1])] + ([(Z, Y * X, vs[0])] if Z > 1 else [])
    src = a  # unread in the first pass (has_in = 0)
    for k, (n, stride, size) in enumerate(axes):
        dst = b if src is a else a
        _kernels.launch(f, total, (lab, src, np.int32(k > 0), dst, np.int64(n), np.int64(stride),
                                   np.float32(size * size), np.int32(k == len(axes) - 1),
                                   np.int64(total)))
        src = dst
    return src.reshape(ids4.shape)


def _finish(d, ids4, clip, normalize: bool):
    """Clip, then divide by the per-instance (per-sample) maximum."""
    xp = array_module(d)
    if clip is not None:
        d = xp.minimum(d, np.float32(clip))
    if not normalize:
        return d
    mx = _instance_max_gpu(d, ids4) if is_cupy_array(d) else _instance_max_cpu(d, ids4)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = xp.where(ids4 == 0, np.float32(0), d / mx)
    return xp.where(xp.isinf(mx) & (ids4 != 0), np.float32(1), out).astype(np.float32)


def _instance_max_cpu(d: np.ndarray, ids4: np.ndarray) -> np.ndarray:
    """Each voxel's instance maximum of ``d`` (per sample), as an array of d's shape."""
    from .lsd import compact

    out = np.empty(d.shape, np.float32)
    for b in range(len(ids4)):  # samples, not labels
        inv, n = compact(ids4[b])
        mx = np.zeros(n, np.float32)
        np.maximum.at(mx, inv.reshape(-1), d[b].reshape(-1))  # a segment maximum
        out[b] = mx[inv]
    return out


def _instance_max_gpu(d, ids4):
    import cupy

    B = len(ids4)
    flat = _kernels.unsigned_view(cupy.ascontiguousarray(ids4)).reshape(B, -1)
    keys, inv = cupy.unique(flat, return_inverse=True)
    seg = (cupy.arange(B, dtype=cupy.int64)[:, None] * len(keys)
           + inv.reshape(B, -1).astype(cupy.int64)).reshape(-1)
    bits = cupy.zeros(B * len(keys), cupy.uint32)
    f = _kernels.get_function("targets_distance.cu", "segment_max")
    vals = cupy.ascontiguousarray(d.reshape(-1))
    _kernels.launch(f, vals.size, (vals, seg, bits, np.int64(vals.size)))
    return bits.view(cupy.float32)[seg].reshape(d.shape)


@dataclass(frozen=True)
class Distance(_spec.Deterministic):
    """The ``distance`` target: ``target`` (..., 1) float32 in nm (or normalised).

    The margin is ``clip`` in voxels along each axis: with a clip, a distance inside the patch
    depends only on labels within ``clip`` of it. Without a clip no finite context makes the
    values exact (the margin is then 0: distances near the patch border are to the border's
    labels only)."""

    clip: float | None = None
    normalize: bool = False
    outputs = ("target",)
    channels = 1

    def __post_init__(self):
        if self.clip is not None and not (float(self.clip) > 0):
            raise ValueError(f"Distance: clip must be a positive distance in nm; got {self.clip!r}")

    def margin(self, voxel_size) -> tuple[int, int, int]:
        return (0, 0, 0) if self.clip is None else _spec.voxels(float(self.clip), voxel_size)

    def __call__(self, ids, semantic=None, mask=None, voxel_size=None, params=None) -> dict:
        if voxel_size is None:
            raise ValueError("Distance: voxel_size (nm) is required")
        vs = tuple(voxel_size)[-2:] if ids.ndim == 2 else voxel_size
        return {"target": _spec.with_channel(distance(ids, vs, self.clip, self.normalize))}


_spec.register("distance", Distance)
