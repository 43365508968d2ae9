"""Input checks shared by the label ops, so NumPy and CuPy inputs fail with the same error.

Every label op accepts integer arrays (uint8…uint64, int8…int64) and bool masks (seen as
uint8), and rejects float and the rest before choosing a backend. Shapes are ``(Y, X)`` (2D,
connectivity 4 or 8; 6, 18 and 26 map to 4, 8 and 8 as in cc3d), ``(Z, Y, X)`` (3D,
connectivity 6, 18 or 26) or ``(B, Z, Y, X)`` (a batch of 3D volumes, each labelled on its
own). Internally every layout becomes ``(B, Z, Y, X)`` with a 3D connectivity: 2D
4-connectivity is 3D 6-connectivity on one section, 8 is 26 (``neurons_jax.backend``).

A 4D array whose last axis is a handful of voxels (1 to 4) next to sections at least four times
wider, such as ``(Z, Y, X, 1)``, is a volume with a channel axis passed by mistake, not a batch:
it is refused (labelling it as B = Z separate volumes would give wrong ids without a word).

``check_label_dtype`` and ``check_label_values`` are the input checks of label *files*: the
``neurons-relabel`` command (in memory) and the blockwise ops (each block) share them, so both
refuse the same inputs (float or other dtypes; negative ids) with the same message.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops._checks import check_labels, layout
    >>> check_labels(np.zeros((2, 3), bool), "labels", "connected_components").dtype
    dtype('uint8')
    >>> layout((5, 6), 8, "connected_components")
    ((1, 1, 5, 6), 26, False)
    >>> layout((5, 6), 6, "connected_components")  # cc3d's 2D reading of 6
    ((1, 1, 5, 6), 6, False)
    >>> layout((64, 64, 64, 1), 6, "connected_components")
    Traceback (most recent call last):
    ...
    ValueError: connected_components: labels of shape (64, 64, 64, 1) look like (Z, Y, X, C) with a channel axis of 1; 4D input means a batch (B, Z, Y, X); pass labels[..., 0] (one channel) or a (Z, Y, X) array
    >>> check_label_values(np.array([[0, -2]], np.int8), "seg.h5:labels")
    Traceback (most recent call last):
    ...
    ValueError: seg.h5:labels: negative label ids are not supported (found minimum -2)
"""

from __future__ import annotations

import numpy as np

from ..backend import CONNECTIVITIES, check_connectivity, is_cupy_array, to_3d


def as_array(a, name: str, func: str):
    """A NumPy or CuPy array from ``a`` (array-likes become NumPy arrays)."""
    if is_cupy_array(a) or isinstance(a, np.ndarray):
        return a
    if a is None:
        raise TypeError(f"{func}: {name} must be an array; got None")
    return np.asarray(a)


def check_labels(a, name: str, func: str):
    """``a`` as an array if its dtype is an integer type (bool is viewed as uint8); else a
    TypeError naming what came."""
    a = as_array(a, name, func)
    dt = np.dtype(a.dtype)
    if dt.kind == "b":
        return a.view(np.uint8)
    if dt.kind not in "ui" or dt.itemsize > 8:
        raise TypeError(
            f"{func}: {name} must be an integer or bool array (uint8…uint64, int8…int64); "
            f"got dtype {dt}"
        )
    return a


def check_label_dtype(dtype, where: object) -> np.dtype:
    """Integer (or bool) label ids only: a TypeError naming ``where`` for float and the rest."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        raise TypeError(f"{where}: float labels are not supported (found {dtype}); label ids must be integers")
    if dtype.kind not in "uib" or dtype.itemsize > 8:
        raise TypeError(f"{where}: unsupported dtype {dtype}; expected unsigned/signed integer or bool labels")
    return dtype


def check_label_values(a: np.ndarray, where: object) -> np.ndarray:
    """``a`` as unsigned ids: bool -> uint8, signed -> the unsigned type of the same width (a
    view); negative ids are refused with a ValueError naming ``where`` and the minimum."""
    check_label_dtype(a.dtype, where)
    if a.dtype == np.bool_:
        return a.view(np.uint8)
    if a.dtype.kind == "i":
        lo = int(a.min()) if a.size else 0
        if lo < 0:
            raise ValueError(f"{where}: negative label ids are not supported (found minimum {lo})")
        return a.view(a.dtype.str.replace("i", "u"))
    return a


def check_batch_shape(shape: tuple[int, ...], func: str, name: str = "labels") -> None:
    """Refuse a 4D ``(Z, Y, X, C)`` volume (a channel axis of 1 to 4 voxels last, sections at
    least four times wider) passed where 4D means a batch ``(B, Z, Y, X)``."""
    if len(shape) != 4:
        return
    c = int(shape[3])
    if 1 <= c <= 4 and min(int(shape[1]), int(shape[2])) >= 4 * c and int(shape[0]) > 1:
        raise ValueError(
            f"{func}: {name} of shape {tuple(shape)} look like (Z, Y, X, C) with a channel axis "
            f"of {c}; 4D input means a batch (B, Z, Y, X); pass {name}[..., 0] (one channel) or a "
            "(Z, Y, X) array"
        )


def layout(shape: tuple[int, ...], connectivity: int, func: str) -> tuple[tuple, int, bool]:
    """``(B, Z, Y, X)`` shape, 3D connectivity and whether the input is batched.

    Raises ValueError for an unsupported number of dimensions, a 4D shape that is a volume with a
    channel axis (``check_batch_shape``) or a connectivity that the dimensions do not allow.
    """
    ndim = len(shape)
    if ndim not in CONNECTIVITIES:
        raise ValueError(
            f"{func}: labels must be 2D (Y, X), 3D (Z, Y, X) or 4D (B, Z, Y, X); "
            f"got shape {tuple(shape)}"
        )
    check_batch_shape(tuple(shape), func)
    conn = to_3d(check_connectivity(connectivity, ndim, func, shape))
    if ndim == 2:
        return (1, 1, *shape), conn, False
    if ndim == 3:
        return (1, *shape), conn, False
    return tuple(shape), conn, True


def check_class_value(v, name: str, func: str) -> int:
    """An integer class value (``interior`` / ``boundary``)."""
    if isinstance(v, bool) or not isinstance(v, int | np.integer):
        raise TypeError(f"{func}: {name} must be an integer class value; got {v!r}")
    return int(v)
