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

from . import _kernels
from ._backend import array_module, is_cupy_array
from ._checks import check_class_value, check_labels, layout
from .components import _components_cpu, components_gpu

_FUNC = "boundary_separated_instances"
UINT32_MAX = np.uint32(2**32 - 1)


def boundary_separated_instances(
    semantic, interior: int = 1, boundary: int = 2, connectivity: int = 6, grow: bool = True
):
    """Instance ids from semantic labels with a boundary class between touching objects.

    Args:
        semantic: integer array (NumPy or CuPy), 2D, 3D or a 4D batch of 3D volumes.
        interior: the value of object interiors. boundary: the value of object boundaries.
        connectivity: 4 or 8 in 2D; 6, 18 or 26 in 3D; used for the components and the growth.
        grow: give boundary voxels the id of the nearest instance (else they stay 0).

    Returns:
        ``(ids, n)`` as ``connected_components``: uint32 ids, n an int (a NumPy int64 array of
        per-sample counts for a 4D batch).
    """
    semantic = check_labels(semantic, "semantic", _FUNC)
    interior = check_class_value(interior, "interior", _FUNC)
    boundary = check_class_value(boundary, "boundary", _FUNC)
    if interior == boundary:
        raise ValueError(f"{_FUNC}: interior and boundary must differ; both are {interior}")
    shape4, conn, batched = layout(semantic.shape, connectivity, _FUNC)
    gpu = is_cupy_array(semantic)
    inside = _equal(semantic, interior)
    if gpu:
        ids, counts = components_gpu(inside.view("uint8").reshape(shape4), conn)
    else:
        ids, counts = _components_cpu(inside.view(np.uint8), int(connectivity), batched)
    if grow and counts.sum() > 0:
        pending = _flatnonzero(_equal(semantic, boundary))
        if gpu:
            _grow_gpu(ids.reshape(-1), pending, shape4, conn)
        else:
            _grow_cpu(ids.reshape(-1), pending, shape4, conn)
    ids = ids.reshape(semantic.shape)
    return ids, (counts if batched else int(counts[0]))


def _equal(a, value: int):
    """``a == value`` as bool (all False when value does not fit a's dtype)."""
    info = np.iinfo(a.dtype)
    if not info.min <= value <= info.max:
        return array_module(a).zeros(a.shape, bool)
    return a == a.dtype.type(value)


def _flatnonzero(mask):
    return mask.reshape(-1).nonzero()[0].astype(np.int64, copy=False)


def stencil(conn: int) -> np.ndarray:
    """All (dz, dy, dx) offsets of a 3D connectivity (6, 18 or 26), as an (k, 3) array."""
    d = np.array([(z, y, x) for z in (-1, 0, 1) for y in (-1, 0, 1) for x in (-1, 0, 1)])
    s = np.abs(d).sum(1)
    keep = (s == 1) if conn == 6 else (s >= 1) & (s <= 2) if conn == 18 else s >= 1
    return d[keep]


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


def _grow_gpu(flat, pending, shape4: tuple, conn: int) -> None:
    import cupy

    _, Z, Y, X = shape4
    kernel = _kernels.get_function("instances.cu", f"grow_candidates<{conn}>")
    dims = (np.int64(Z), np.int64(Y), np.int64(X))
    while pending.size:
        cand = cupy.empty(pending.size, cupy.uint32)
        _kernels.launch(kernel, pending.size, (flat, pending, cand, *dims, np.int64(pending.size)))
        got = cand != 0
        if not bool(got.any()):
            return
        flat[pending[got]] = cand[got]
        pending = pending[~got]
