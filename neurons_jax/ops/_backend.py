"""Array-module dispatch: NumPy arrays run on the CPU, CuPy arrays on their GPU.

CuPy is never imported at package import time; it is looked up only when an array that is not
a NumPy array arrives, or when a caller asks whether a GPU exists.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops._backend import array_module
    >>> array_module(np.zeros(3)) is np
    True
"""

from __future__ import annotations

import functools
import sys
from types import ModuleType

import numpy as np


def is_cupy_array(a: object) -> bool:
    """True for a ``cupy.ndarray`` (without importing CuPy when it is not loaded)."""
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(a, cp.ndarray)


def array_module(*arrays: object) -> ModuleType:
    """``numpy`` or ``cupy``, following the inputs; mixing the two is an error."""
    kinds = {is_cupy_array(a) for a in arrays if a is not None}
    if len(kinds) > 1:
        raise TypeError("inputs mix NumPy and CuPy arrays: pass all on the CPU or all on one GPU")
    if kinds == {True}:
        import cupy

        return cupy
    return np


@functools.cache
def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def to_numpy(a) -> np.ndarray:
    """A NumPy view/copy of a NumPy or CuPy array."""
    return a.get() if is_cupy_array(a) else np.asarray(a)
