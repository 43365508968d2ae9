"""Input checks shared by the label ops, so NumPy and CuPy inputs fail with the same error.

Every label op accepts integer arrays (uint8…uint64, int8…int64) and rejects bool, float and
the rest before choosing a backend. Shapes are ``(Y, X)`` (2D, connectivity 4 or 8),
``(Z, Y, X)`` (3D, connectivity 6, 18 or 26) or ``(B, Z, Y, X)`` (a batch of 3D volumes, each
labelled on its own). Internally every layout becomes ``(B, Z, Y, X)`` with a 3D
connectivity: 2D 4-connectivity is 3D 6-connectivity on one section, 8 is 26.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops._checks import check_labels, layout
    >>> check_labels(np.zeros((2, 3), np.uint16), "labels", "connected_components").dtype
    dtype('uint16')
    >>> layout((5, 6), 8, "connected_components")
    ((1, 1, 5, 6), 26, False)
"""

from __future__ import annotations

import numpy as np

from ._backend import is_cupy_array

CONNECTIVITIES = {2: (4, 8), 3: (6, 18, 26), 4: (6, 18, 26)}
"""Allowed connectivities by number of dimensions (4D is a batch of 3D volumes)."""

_TO_3D = {4: 6, 8: 26, 6: 6, 18: 18, 26: 26}


def as_array(a, name: str, func: str):
    """A NumPy or CuPy array from ``a`` (array-likes become NumPy arrays)."""
    if is_cupy_array(a) or isinstance(a, np.ndarray):
        return a
    if a is None:
        raise TypeError(f"{func}: {name} must be an array; got None")
    return np.asarray(a)


def check_labels(a, name: str, func: str):
    """``a`` as an array, if its dtype is an integer type; else a TypeError naming what came."""
    a = as_array(a, name, func)
    dt = np.dtype(a.dtype)
    if dt.kind not in "ui" or dt.itemsize > 8:
        hint = " (convert a mask with .astype(np.uint8))" if dt.kind == "b" else ""
        raise TypeError(
            f"{func}: {name} must be an integer array (uint8…uint64 or int8…int64); "
            f"got dtype {dt}{hint}"
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
    allowed = CONNECTIVITIES[ndim]
    if isinstance(connectivity, bool) or not isinstance(connectivity, int | np.integer):
        raise ValueError(
            f"{func}: connectivity must be one of {allowed} for {ndim}D input; got {connectivity!r}"
        )
    if int(connectivity) not in allowed:
        raise ValueError(
            f"{func}: connectivity must be one of {allowed} for {ndim}D input "
            f"(shape {tuple(shape)}); got {connectivity}"
        )
    conn = _TO_3D[int(connectivity)]
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

