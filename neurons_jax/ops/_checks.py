"""Input checks shared by the label ops, so NumPy and CuPy inputs fail with the same error.

Every label op accepts integer arrays (uint8…uint64, int8…int64) and bool masks (seen as
uint8), and rejects float and the rest before choosing a backend. Shapes are ``(Y, X)`` (2D,
connectivity 4 or 8; 6, 18 and 26 map to 4, 8 and 8 as in cc3d), ``(Z, Y, X)`` (3D,
connectivity 6, 18 or 26) or ``(B, Z, Y, X)`` (a batch of 3D volumes, each labelled on its
own). Internally every layout becomes ``(B, Z, Y, X)`` with a 3D connectivity: 2D
4-connectivity is 3D 6-connectivity on one section, 8 is 26 (``neurons_jax.backend``).

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops._checks import check_labels, layout
    >>> check_labels(np.zeros((2, 3), bool), "labels", "connected_components").dtype
    dtype('uint8')
    >>> layout((5, 6), 8, "connected_components")
    ((1, 1, 5, 6), 26, False)
    >>> layout((5, 6), 6, "connected_components")  # cc3d's 2D reading of 6
    ((1, 1, 5, 6), 6, False)
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


def layout(shape: tuple[int, ...], connectivity: int, func: str) -> tuple[tuple, int, bool]:
    """``(B, Z, Y, X)`` shape, 3D connectivity and whether the input is batched.

    Raises ValueError for an unsupported number of dimensions or a connectivity that the
    dimensions do not allow.
    """
    ndim = len(shape)
    if ndim not in CONNECTIVITIES:
        raise ValueError(
            f"{func}: labels must be 2D (Y, X), 3D (Z, Y, X) or 4D (B, Z, Y, X); "
            f"got shape {tuple(shape)}"
        )
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
