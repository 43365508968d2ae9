"""``connected_components``: multilabel connected components, numbered like cc3d.

Neighbouring voxels join when they carry the same non-zero value (0 is background). The ids
are uint32, 1..n in C-raster order of each component's first voxel: bitwise the output of
``cc3d.connected_components(labels, connectivity=c, out_dtype=np.uint32)`` on C-ordered input.
A NumPy array runs on the CPU (cc3d), a CuPy array on its GPU (union-find kernels in
``kernels/ccl.cu``, one launch per stage for the whole batch; the only host read is n).

Layouts: ``(Y, X)`` with connectivity 4 or 8 (6 means 4, 18 and 26 mean 8, as in cc3d);
``(Z, Y, X)`` with 6, 18 or 26; ``(B, Z, Y, X)`` is a batch of B volumes, each labelled on its
own and numbered from 1, and n is then a NumPy int64 array of the B counts. A batch of 2D
images is ``(B, 1, Y, X)`` with connectivity 6 (4 in the plane) or 26 (8 in the plane). A 4D
array that is a volume with a trailing channel axis, ``(Z, Y, X, C)`` with C of 1 to 4, is
refused with an error naming its shape (``ops._checks.check_batch_shape``). bool
masks are labelled as uint8; uint64 ids above 2**63 are exact. A Fortran-ordered array is
labelled where it lies (no transposing copy) and renumbered to C-raster order in place.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> ids, n = nj.ops.connected_components(np.array([[1, 1, 0, 1], [2, 0, 0, 1]], np.uint8), 4)
    >>> ids.tolist(), n
    ([[1, 1, 0, 2], [3, 0, 0, 2]], 3)
"""

from __future__ import annotations

import numpy as np

from ..backend import CC3D_2D, is_cupy_array, on_device_of
from . import _kernels
from ._checks import check_labels, layout
from ._raster import c_raster_renumber

_FUNC = "connected_components"
INT32_LIMIT = 2**31 - 2**26  # grid-stride loops must not overflow int indices


def connected_components(labels, connectivity: int = 6):
    """Multilabel connected components of ``labels``.

    Args:
        labels: integer or bool array (uint8…uint64, int8…int64; bool is uint8), NumPy or CuPy,
            2D, 3D or a 4D batch.
        connectivity: 4 or 8 in 2D (6, 18 and 26 mean 4, 8 and 8 there, as in cc3d); 6, 18 or
            26 in 3D and for batches.

    Returns:
        ``(ids, n)``: uint32 ids of the input's shape and backend, numbered 1..n in C-raster
        order of each component's first voxel; n is an ``int``, or for a 4D batch a NumPy
        int64 array of per-sample counts. A Fortran-ordered NumPy input gives Fortran-ordered
        ids (labelled in place of a transposing copy).
    """
    labels = check_labels(labels, "labels", _FUNC)
    shape4, conn, batched = layout(labels.shape, connectivity, _FUNC)
    if is_cupy_array(labels):
        with on_device_of(labels):
            ids, counts = components_gpu(labels.reshape(shape4), conn)
        ids = ids.reshape(labels.shape)
    else:
        ids, counts = _components_cpu(labels, conn, batched)
    return ids, (counts if batched else int(counts[0]))


def _components_cpu(labels: np.ndarray, conn: int, batched: bool):
    """cc3d on each sample; ``conn`` is the 3D connectivity of ``layout``."""
    if labels.size == 0:
        return np.zeros(labels.shape, np.uint32), np.zeros(len(labels) if batched else 1, np.int64)
    if not batched:
        ids, n = label_volume(labels, conn)
        return ids, np.array([n], np.int64)
    ids = np.empty(labels.shape, np.uint32)
    counts = np.zeros(len(labels), np.int64)
    for b in range(len(labels)):  # samples, not labels: each is one cc3d call
        ids[b], counts[b] = label_volume(labels[b], conn)
    return ids, counts


def label_volume(labels: np.ndarray, conn: int) -> tuple[np.ndarray, int]:
    """cc3d on one 2D or 3D NumPy array (``conn``: its 3D connectivity) -> (uint32 ids, n).

    uint64 ids are viewed as int64 (equality is unchanged, and cc3d's single-row and
    single-voxel fast paths overflow on ids >= 2**63). C-ordered input is labelled as it is;
    Fortran-ordered input too, then renumbered to C-raster order in place (``_raster``);
    other strides are copied to C order first.
    """
    import cc3d

    if labels.dtype == np.uint64:
        labels = labels.view(np.int64)
    if labels.ndim == 2:
        conn = CC3D_2D[conn]  # one section: 6 -> 4, 26 -> 8
    fortran = labels.flags.f_contiguous and not labels.flags.c_contiguous
    if not fortran:
        labels = np.ascontiguousarray(labels)
    ids, n = cc3d.connected_components(
        labels, connectivity=conn, out_dtype=np.uint32, return_N=True
    )
    if fortran:  # numbered in cc3d's (memory) order: renumber, whatever that order was
        ids = c_raster_renumber(np.asfortranarray(ids), int(n))
    return ids, int(n)


def component_ids(labels, connectivity: int = 6):
    """The ids of ``connected_components`` without the count: on a GPU this never waits for the
    device (the training stage uses it; n would cost a host sync)."""
    labels = check_labels(labels, "labels", _FUNC)
    shape4, conn, batched = layout(labels.shape, connectivity, _FUNC)
    if not is_cupy_array(labels):
        return _components_cpu(labels, conn, batched)[0]
    with on_device_of(labels):
        return components_device(labels.reshape(shape4), conn)[0].reshape(labels.shape)


def components_gpu(labels4, conn: int):
    """CuPy path on a ``(B, Z, Y, X)`` array with a 3D connectivity -> (ids, counts (B,))."""
    ids, ends = components_device(labels4, conn)
    ends = ends.get() if ends is not None else np.zeros(len(labels4), np.int64)
    counts = np.diff(ends, prepend=0).astype(np.int64)
    if counts.max(initial=0) > 2**32 - 1:
        raise ValueError(f"{_FUNC}: {int(counts.max())} components do not fit uint32 ids")
    return ids, counts


def components_device(labels4, conn: int):
    """Kernels only, on the current device: ``(ids (B, Z, Y, X) uint32, ends)`` with ``ends`` the
    device array of running component totals at the end of each sample (None when empty)."""
    import cupy

    B, Z, Y, X = labels4.shape
    total = labels4.size
    if total == 0:
        return cupy.zeros(labels4.shape, cupy.uint32), None
    lab = _kernels.unsigned_view(cupy.ascontiguousarray(labels4)).reshape(-1)
    idx = np.int32 if total <= INT32_LIMIT else np.int64
    t_lab, t_idx = _kernels.ctype(lab.dtype), _kernels.ctype(idx)
    n_, z_, y_, x_ = (idx(v) for v in (total, Z, Y, X))

    parent = cupy.empty(total, idx)
    init = _kernels.get_function("ccl.cu", f"ccl_init<{t_lab}, {t_idx}>")
    _kernels.launch(init, total, (lab, parent, n_))
    merge = _kernels.get_function("ccl.cu", f"ccl_merge<{t_lab}, {t_idx}, {conn}>")
    _kernels.launch(merge, total, (lab, parent, z_, y_, x_, n_))
    flag = cupy.empty(total, idx)
    flatten = _kernels.get_function("ccl.cu", f"ccl_flatten<{t_idx}>")
    _kernels.launch(flatten, total, (parent, flag, n_))
    csum = cupy.cumsum(flag, dtype=idx)
    del flag
    out = cupy.empty(total, cupy.uint32)
    finalize = _kernels.get_function("ccl.cu", f"ccl_finalize<{t_idx}>")
    _kernels.launch(finalize, total, (parent, csum, out, idx(Z * Y * X), n_))
    ends = csum[Z * Y * X - 1 :: Z * Y * X].astype(cupy.int64)
    return out.reshape(labels4.shape), ends
