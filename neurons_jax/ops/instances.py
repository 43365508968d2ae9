"""``boundary_separated_instances``: instances from 3-class labels (background/interior/boundary).

The interior voxels (``semantic == interior``) are split into connected components; the
boundary class separates touching objects (MitoEM2: 1 = mitochondria, 2 = their boundary).
With ``grow=True`` the boundary voxels then join the instance nearest to them: a wavefront
over boundary voxels where, at every step, each boundary voxel still without an id takes the
smallest id among its neighbours (under the same connectivity) that had one before the step.
So "nearest" is the distance through boundary voxels in the stencil's metric (city block for
6, chessboard for 26), ties go to the smallest id, and touching instances come back touching.
Boundary voxels that no wavefront reaches (not connected to any interior through boundary
voxels) stay 0; every other value is background. Ids are numbered 1..n in C-raster order of
each instance's first interior voxel (``connected_components`` of the interior).

CPU: cc3d, then NumPy steps over the list of pending boundary voxels. GPU: the CCL kernels,
then one kernel per step (``kernels/instances.cu``); both apply the same rule, bitwise equal.
Layouts and connectivities as ``connected_components`` (4D = batch, n per sample).

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> sem = np.array([[1, 1, 2, 2, 1, 1]], np.uint8)
    >>> ids, n = nj.ops.boundary_separated_instances(sem, connectivity=4)
    >>> ids.tolist(), n
    ([[1, 1, 1, 2, 2, 2]], 2)
"""

from __future__ import annotations

import numpy as np

from ..backend import array_module, is_cupy_array, on_device_of, stencil
from . import _kernels
from ._checks import check_class_value, check_labels, layout
from .components import _components_cpu, components_device

_FUNC = "boundary_separated_instances"
UINT32_MAX = np.uint32(2**32 - 1)


def boundary_separated_instances(
    semantic, interior: int = 1, boundary: int = 2, connectivity: int = 6, grow: bool = True
):
    """Instance ids from semantic labels with a boundary class between touching objects.

    Args:
        semantic: integer or bool array (NumPy or CuPy), 2D, 3D or a 4D batch of 3D volumes.
        interior: the value of object interiors. boundary: the value of object boundaries.
        connectivity: 4 or 8 in 2D (6, 18 and 26 mean 4, 8 and 8 there, as in cc3d); 6, 18 or
            26 in 3D; used for the components and the growth.
        grow: give boundary voxels the id of the nearest instance (else they stay 0).

    Returns:
        ``(ids, n)`` as ``connected_components``: uint32 ids, n an int (a NumPy int64 array of
        per-sample counts for a 4D batch).
    """
    semantic, interior, boundary, shape4, conn, batched = _check(semantic, interior, boundary, connectivity)
    if is_cupy_array(semantic):
        with on_device_of(semantic):
            ids, ends = _instances_device(semantic, interior, boundary, shape4, conn, grow)
            counts = _counts(ends, shape4[0])
        return ids.reshape(semantic.shape), (counts if batched else int(counts[0]))
    inside = _equal(semantic, interior)
    ids, counts = _components_cpu(inside.view(np.uint8), conn, batched)
    if grow and counts.sum() > 0:
        ids = np.ascontiguousarray(ids)  # the growth works on the C-order flat ids, in place
        _grow_cpu(ids.reshape(-1), _flatnonzero(_equal(semantic, boundary)), shape4, conn)
    return ids.reshape(semantic.shape), (counts if batched else int(counts[0]))


def instance_ids(semantic, interior: int = 1, boundary: int = 2, connectivity: int = 6):
    """The ids of ``boundary_separated_instances`` (grown) without the count: on a GPU one host
    sync per ``ROUND`` growth steps, none for the labelling (the training stage uses it)."""
    semantic, interior, boundary, shape4, conn, batched = _check(semantic, interior, boundary, connectivity)
    if not is_cupy_array(semantic):
        return boundary_separated_instances(semantic, interior, boundary, connectivity)[0]
    with on_device_of(semantic):
        return _instances_device(semantic, interior, boundary, shape4, conn, True)[0].reshape(semantic.shape)


def _check(semantic, interior, boundary, connectivity):
    semantic = check_labels(semantic, "semantic", _FUNC)
    interior = check_class_value(interior, "interior", _FUNC)
    boundary = check_class_value(boundary, "boundary", _FUNC)
    if interior == boundary:
        raise ValueError(f"{_FUNC}: interior and boundary must differ; both are {interior}")
    shape4, conn, batched = layout(semantic.shape, connectivity, _FUNC)
    return semantic, interior, boundary, shape4, conn, batched


def _counts(ends, b: int) -> np.ndarray:
    if ends is None:
        return np.zeros(b, np.int64)
    return np.diff(ends.get(), prepend=0).astype(np.int64)


def _instances_device(semantic, interior: int, boundary: int, shape4: tuple, conn: int, grow: bool):
    inside = _equal(semantic, interior)
    ids, ends = components_device(inside.view("uint8").reshape(shape4), conn)
    if grow and ids.size:
        _grow_gpu(ids.reshape(-1), _equal(semantic, boundary).view("uint8").reshape(-1), shape4, conn)
    return ids, ends


def _equal(a, value: int):
    """``a == value`` as bool (all False when value does not fit a's dtype)."""
    info = np.iinfo(a.dtype)
    if not info.min <= value <= info.max:
        return array_module(a).zeros(a.shape, bool)
    return a == a.dtype.type(value)


def _flatnonzero(mask):
    return mask.reshape(-1).nonzero()[0].astype(np.int64, copy=False)


def _grow_cpu(flat: np.ndarray, pending: np.ndarray, shape4: tuple, conn: int) -> None:
    """Wavefront steps in place on the flat ids (Jacobi: every step reads the previous ids)."""
    _, Z, Y, X = shape4
    x = pending % X
    t = pending // X
    y = t % Y
    z = (t // Y) % Z
    offsets = stencil(conn)
    while pending.size:
        best = np.full(pending.size, UINT32_MAX, np.uint32)
        for dz, dy, dx in offsets:
            ok = (z + dz >= 0) & (z + dz < Z) & (y + dy >= 0) & (y + dy < Y)
            ok &= (x + dx >= 0) & (x + dx < X)
            nb = np.where(ok, pending + (dz * Y * X + dy * X + dx), pending)
            v = flat[nb]
            v[~ok | (v == 0)] = UINT32_MAX
            np.minimum(best, v, out=best)
        got = best != UINT32_MAX
        if not got.any():
            return
        flat[pending[got]] = best[got]
        left = ~got
        pending, x, y, z = pending[left], x[left], y[left], z[left]


ROUND = 8  # growth steps launched between two looks at the "changed" flag (even: ends in place)


def _grow_gpu(flat, pending, shape4: tuple, conn: int) -> None:
    """Dense Jacobi steps in place on the flat ids, ``ROUND`` launches per host sync."""
    import cupy

    _, Z, Y, X = shape4
    kernel = _kernels.get_function("instances.cu", f"grow_step<{conn}>")
    dims = (np.int64(Z), np.int64(Y), np.int64(X), np.int64(flat.size))
    a, b = flat, cupy.empty_like(flat)
    changed = cupy.empty(ROUND, cupy.int32)
    while True:
        changed.fill(0)
        for j in range(ROUND):
            _kernels.launch(kernel, flat.size, (pending, a, b, changed[j : j + 1], *dims))
            a, b = b, a
        if not int(changed[ROUND - 1]):  # the one host sync of the round
            return
