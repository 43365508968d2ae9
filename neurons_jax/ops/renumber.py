"""``renumber``: compact uint32 ids 1..k in order of first appearance, and the mapping.

Like ``fastremap.renumber``: ids are numbered in C-raster order of their first voxel, 0 stays
0 (``preserve_zero=True``) and the mapping is a dict ``{old: new}`` of Python ints holding
every id present, plus ``0: 0`` whenever zero is preserved (as fastremap does). uint64 ids
above 2**32 (MICrONS) map to uint32. The CPU path is fastremap; the GPU path sorts the
distinct ids (``cupy.unique``), finds each one's first voxel with an atomic minimum, ranks
them by it and gathers, so both give the same ids and the same mapping.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> ids, mapping = nj.ops.renumber(np.array([[2**40, 0], [7, 2**40]], np.uint64))
    >>> ids.tolist(), ids.dtype.name, mapping
    ([[1, 0], [2, 1]], 'uint32', {0: 0, 1099511627776: 1, 7: 2})
"""

from __future__ import annotations

import numpy as np

from ..backend import is_cupy_array, on_device_of
from . import _kernels
from ._checks import check_labels

_FUNC = "renumber"
UINT32_MAX = 2**32 - 1


def renumber(labels, preserve_zero: bool = True):
    """Compact ``labels`` to uint32 ids in order of first appearance.

    Args:
        labels: integer or bool array (uint8…uint64, int8…int64; bool is uint8), NumPy or
            CuPy, any shape (0-d too).
        preserve_zero: keep 0 as 0 (else 0 is numbered like any other id).

    Returns:
        ``(ids, mapping)``: uint32 ids of the input's shape and backend, and ``{old: new}``.
    """
    labels = check_labels(labels, "labels", _FUNC)
    shape = labels.shape
    flat = labels.reshape(-1) if labels.ndim == 0 else labels  # fastremap needs an axis
    if is_cupy_array(flat):
        with on_device_of(flat):
            ids, mapping = _renumber_gpu(flat, bool(preserve_zero))
    else:
        ids, mapping = _renumber_cpu(flat, bool(preserve_zero))
    return ids.reshape(shape), mapping


def _renumber_cpu(labels: np.ndarray, preserve_zero: bool):
    import fastremap

    if labels.size == 0:
        return np.zeros(labels.shape, np.uint32), ({0: 0} if preserve_zero else {})
    if labels.dtype.itemsize <= 4:
        # renumber a 32-bit copy in place: it then holds the uint32 ids (fastremap returns a
        # narrowed copy, and keeping the input dtype would wrap 256 uint8 ids to 0)
        buf = np.array(labels, np.int32 if labels.dtype.kind == "i" else np.uint32, order="C")
        _, mapping = fastremap.renumber(buf, preserve_zero=preserve_zero, in_place=True)
        ids = buf.view(np.uint32)
    else:
        ids, mapping = fastremap.renumber(np.ascontiguousarray(labels), preserve_zero=preserve_zero)
        ids = ids.astype(np.uint32, copy=False)
    _check_count(len(mapping) - (1 if preserve_zero else 0))
    return ids, {int(k): int(v) for k, v in mapping.items()}


def _check_count(k: int) -> None:
    if k > UINT32_MAX:
        raise ValueError(f"{_FUNC}: {k} distinct ids do not fit uint32")


def _renumber_gpu(labels, preserve_zero: bool):
    import cupy

    if labels.size == 0:
        return cupy.zeros(labels.shape, cupy.uint32), ({0: 0} if preserve_zero else {})
    flat = cupy.ascontiguousarray(labels).reshape(-1)
    uniq = cupy.unique(flat)  # sorted distinct ids
    pos = cupy.searchsorted(uniq, flat).astype(cupy.int64, copy=False)
    first = cupy.full(uniq.size, flat.size, cupy.uint64)
    kernel = _kernels.get_function("renumber.cu", "renumber_first")
    _kernels.launch(kernel, flat.size, (pos, first, np.int64(flat.size)))
    first = first.view(cupy.int64)
    k = uniq.size
    is_zero = uniq == 0
    zero = preserve_zero and bool(is_zero.any())
    z = int(is_zero.argmax())
    if zero:
        first[z] = np.iinfo(np.int64).max  # ranks last, then takes 0
    order = cupy.argsort(first)[: k - 1 if zero else k]
    _check_count(int(order.size))
    rank = cupy.zeros(k, cupy.int64)
    rank[order] = cupy.arange(1, order.size + 1, dtype=cupy.int64)
    ids = rank.astype(cupy.uint32)[pos].reshape(labels.shape)
    mapping = dict(zip(uniq.get().tolist(), rank.get().tolist()))
    if preserve_zero:
        mapping.setdefault(0, 0)
    return ids, mapping
