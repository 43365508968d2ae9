"""``boundaries``: the contour of every instance, touching instances separated.

A voxel ``v`` is a boundary voxel when a voxel ``u`` within ``width`` steps of the
6-neighbourhood (``|u - v|_1 <= width``; 4-neighbourhood in 2D) carries an id other than
``ids[v]``, background included; voxels outside the array are no neighbours. ``mode="thick"``
marks both sides of every label change (skimage's ``find_boundaries(mode="thick")``, used by
torch-em's boundary transform, and PyTorch Connectomics' instance contour with its default of
counting background); ``mode="inner"`` only the labelled side (``ids[v] != 0``;
``find_boundaries(mode="inner")``), so every contour lies inside its instance. Two touching
instances always get separated, since each marks its own side. ``planar=True`` looks only
within each section (dz = 0), as PyTorch Connectomics does for anisotropic data.

A NumPy input runs on the CPU (one shifted comparison per neighbour offset), a CuPy input on its
GPU (``kernels/targets_boundaries.cu``). Output: uint8 0/1 of ids' shape.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> ids = np.array([[1, 1, 2, 2], [1, 1, 2, 0]], np.uint8)
    >>> nj.targets.boundaries(ids).tolist()
    [[0, 1, 1, 1], [0, 1, 1, 1]]
    >>> nj.targets.boundaries(ids, mode="inner").tolist()
    [[0, 1, 1, 1], [0, 1, 1, 0]]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..backend import is_cupy_array, on_device_of
from ..ops import _kernels
from . import spec as _spec
from ._common import as_batch, positive_int

_FUNC = "boundaries"
MODES = ("thick", "inner")


def boundaries(ids, width: int = 1, mode: str = "thick", planar: bool = False):
    """uint8 boundary map of ``ids`` (``(Y, X)``, ``(Z, Y, X)`` or ``(B, Z, Y, X)``).

    Args:
        ids: instance ids (integer or bool), NumPy or CuPy.
        width: neighbourhood radius in 6-neighbourhood steps (1: face neighbours).
        mode: ``"thick"`` (both sides of a label change) or ``"inner"`` (labelled side only).
        planar: only neighbours in the same section (no z steps).
    """
    ids, ids4 = as_batch(ids, "ids", _FUNC)
    width = positive_int(width, "width", _FUNC)
    if mode not in MODES:
        raise ValueError(f"{_FUNC}: mode must be one of {', '.join(MODES)}; got {mode!r}")
    planar = bool(planar) or ids.ndim == 2
    if is_cupy_array(ids):
        with on_device_of(ids):
            out = _boundaries_gpu(ids4, width, mode == "inner", planar)
    else:
        out = _boundaries_cpu(ids4, width, mode == "inner", planar)
    return out.reshape(ids.shape)


@functools.cache
def ball(width: int, planar: bool) -> tuple[tuple[int, int, int], ...]:
    """The offsets ``u - v`` with ``0 < |u - v|_1 <= width`` (dz = 0 when planar), half of them:
    one of each pair ``(o, -o)`` (the comparison is symmetric)."""
    wz = 0 if planar else width
    out = []
    for dz in range(-wz, wz + 1):
        for dy in range(-width, width + 1):
            for dx in range(-width, width + 1):
                o = (dz, dy, dx)
                if 0 < abs(dz) + abs(dy) + abs(dx) <= width and o > (0, 0, 0):
                    out.append(o)
    return tuple(out)


def _boundaries_cpu(ids4: np.ndarray, width: int, inner: bool, planar: bool) -> np.ndarray:
    from .affinities import _pair_slices

    differ = np.zeros(ids4.shape, bool)
    for o in ball(width, planar):  # neighbour offsets, not labels
        here, there = _pair_slices(ids4.shape[1:], np.array(o))
        d = ids4[here] != ids4[there]
        differ[here] |= d
        differ[there] |= d
    if inner:
        differ &= ids4 != 0
    return differ.view(np.uint8)


def _boundaries_gpu(ids4, width: int, inner: bool, planar: bool):
    import cupy

    B, Z, Y, X = ids4.shape
    total = ids4.size
    out = cupy.empty(ids4.shape, cupy.uint8)
    if total == 0:
        return out
    lab = _kernels.unsigned_view(cupy.ascontiguousarray(ids4)).reshape(-1)
    f = _kernels.get_function("targets_boundaries.cu",
                              f"target_boundaries<{_kernels.ctype(lab.dtype)}>")
    _kernels.launch(f, total, (lab, out, np.int32(width), np.int32(planar), np.int32(inner),
                               np.int64(Z), np.int64(Y), np.int64(X), np.int64(total)))
    return out


@dataclass(frozen=True)
class Boundaries(_spec.Deterministic):
    """The ``boundaries`` target: ``target`` (..., 1) uint8; margin ``width`` (0 in z if planar)."""

    width: int = 1
    mode: str = "thick"
    planar: bool = False
    outputs = ("target",)
    channels = 1

    def __post_init__(self):
        positive_int(self.width, "width", "Boundaries")
        if self.mode not in MODES:
            raise ValueError(f"Boundaries: mode must be one of {', '.join(MODES)}; got {self.mode!r}")

    def margin(self, voxel_size=None) -> tuple[int, int, int]:
        return (0 if self.planar else self.width, self.width, self.width)

    def __call__(self, ids, semantic=None, mask=None, voxel_size=None, params=None) -> dict:
        return {"target": _spec.with_channel(boundaries(ids, self.width, self.mode, self.planar))}


_spec.register("boundaries", Boundaries)
