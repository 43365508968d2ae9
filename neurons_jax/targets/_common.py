"""Input checks and layouts shared by the target functions (NumPy and CuPy inputs fail alike).

Every target takes instance ids as ``(Y, X)``, ``(Z, Y, X)`` or a batch ``(B, Z, Y, X)``
(integer or bool; 0 is background) and works internally on ``(B, Z, Y, X)``: a 2D image is one
section of one sample. Voxel sizes and offsets have one entry per spatial axis of the input (two
for 2D, three otherwise) and become 3D ones here (z = 1 voxel for a 2D image, never used).

Example:
    >>> import numpy as np
    >>> from neurons_jax.targets._common import as_batch, voxel_size3, offsets3
    >>> as_batch(np.zeros((5, 6), np.uint8), "ids", "f")[1].shape
    (1, 1, 5, 6)
    >>> voxel_size3((4, 4), 2, "f"), offsets3([(0, -1)], 2, "f").tolist()
    ((1.0, 4.0, 4.0), [[0, 0, -1]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..backend import is_cupy_array
from ..ops._checks import check_batch_shape, check_labels


def as_batch(ids, name: str, func: str):
    """``(ids checked as integer labels, the same ids viewed as (B, Z, Y, X))``."""
    ids = check_labels(ids, name, func)
    if ids.ndim not in (2, 3, 4):
        raise ValueError(
            f"{func}: {name} must be 2D (Y, X), 3D (Z, Y, X) or 4D (B, Z, Y, X); "
            f"got shape {tuple(ids.shape)}"
        )
    check_batch_shape(tuple(ids.shape), func, name)
    shape4 = {2: (1, 1, *ids.shape), 3: (1, *ids.shape), 4: tuple(ids.shape)}[ids.ndim]
    return ids, ids.reshape(shape4)


def spatial_ndim(ndim: int) -> int:
    """Spatial axes of an input of ``ndim`` dimensions (2D: 2, 3D and batches: 3)."""
    return 2 if ndim == 2 else 3


def voxel_size3(voxel_size, ndim: int, func: str) -> tuple[float, float, float]:
    """``voxel_size`` (one positive finite size per spatial axis) as a 3D ``(z, y, x)`` tuple."""
    n = spatial_ndim(ndim)
    try:
        vs = tuple(float(v) for v in voxel_size)
    except TypeError:
        raise TypeError(
            f"{func}: voxel_size must be a sequence of {n} sizes in nm; got {voxel_size!r}"
        ) from None
    if len(vs) != n or not all(math.isfinite(v) and v > 0 for v in vs):
        raise ValueError(
            f"{func}: voxel_size must hold {n} positive finite sizes (nm) for {ndim}D ids; "
            f"got {voxel_size!r}"
        )
    return vs if n == 3 else (1.0, *vs)


def offsets3(offsets: Sequence[Sequence[int]], ndim: int, func: str) -> np.ndarray:
    """``offsets`` (one integer per spatial axis each, at least one) as a ``(C, 3)`` int64
    array of ``(dz, dy, dx)``."""
    n = spatial_ndim(ndim)
    try:
        arr = np.array(offsets)
    except ValueError:
        arr = np.zeros((0,))
    if arr.ndim != 2 or arr.shape[1] != n or len(arr) == 0 or arr.dtype.kind not in "iu":
        raise ValueError(
            f"{func}: offsets must be a non-empty list of {n}-tuples of integers "
            f"({'(dz, dy, dx)' if n == 3 else '(dy, dx)'}) for {ndim}D ids; got {offsets!r}"
        )
    arr = arr.astype(np.int64)
    if n == 2:
        arr = np.concatenate([np.zeros((len(arr), 1), np.int64), arr], 1)
    return arr


def check_mask(mask, shape: tuple[int, ...], name: str, func: str):
    """``mask`` as uint8 0/1 of ``shape`` (None stays None); same backend as given."""
    if mask is None:
        return None
    if not (is_cupy_array(mask) or isinstance(mask, np.ndarray)):
        mask = np.asarray(mask)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"{func}: {name} must have the shape of ids {tuple(shape)}; got {tuple(mask.shape)}"
        )
    if mask.dtype.kind not in "biuf":
        raise TypeError(f"{func}: {name} must be a bool or numeric array; got dtype {mask.dtype}")
    return (mask != 0).astype(np.uint8)


def positive_int(v, name: str, func: str) -> int:
    """``v`` as an int >= 1, else a ValueError naming ``name``."""
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or int(v) < 1:
        raise ValueError(f"{func}: {name} must be an integer >= 1; got {v!r}")
    return int(v)
