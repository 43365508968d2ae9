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

import contextlib
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


_PROBE: tuple[bool, str] | None = None  # (usable, why not), once per process


def _probe() -> tuple[bool, str]:
    """Import CuPy, find a device, compile and run one of our kernels on it and check the result."""
    try:
        import cupy
    except Exception as e:  # noqa: BLE001 - any import failure means "no GPU"
        return False, f"CuPy is not installed or does not import ({type(e).__name__}: {e})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001
        return False, f"CuPy finds no CUDA driver or device ({type(e).__name__}: {e})"
    if n < 1:
        return False, "CuPy sees no CUDA device"
    try:
        from . import _kernels

        with cupy.cuda.Device(0):
            lab = cupy.asarray(np.array([0, 5, 9, 200], np.uint8))
            out = cupy.empty(4, cupy.uint8)
            f = _kernels.get_function("remap.cu", "union_remap<unsigned char>")
            edges = cupy.asarray(np.array([1, 9], np.uint8))
            cls = cupy.asarray(np.array([0, 1, 2], np.uint8))
            _kernels.launch(f, 4, (lab, out, edges, cls, np.int32(2), np.int64(4)))
            got = out.get().tolist()
    except Exception as e:  # noqa: BLE001 - NVRTC/headers missing, driver too old, ...
        return False, f"CuPy cannot compile or run a kernel ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    if got != [0, 1, 2, 2]:
        return False, f"a test kernel gave {got} instead of [0, 1, 2, 2]"
    return True, ""


def gpu_available() -> bool:
    """True when CuPy imports, sees a CUDA device and one of our kernels compiles and runs there
    (checked once per process)."""
    global _PROBE
    if _PROBE is None:
        _PROBE = _probe()
    return _PROBE[0]


def gpu_unavailable_reason() -> str:
    """Why ``gpu_available()`` is False ('' when it is True)."""
    gpu_available()
    return _PROBE[1]


def on_device_of(a):
    """Context manager that makes ``a``'s GPU current (a no-op for NumPy arrays), so outputs are
    allocated and kernels launched where the input lives."""
    return a.device if is_cupy_array(a) else contextlib.nullcontext()


def to_numpy(a) -> np.ndarray:
    """A NumPy view/copy of a NumPy or CuPy array."""
    return a.get() if is_cupy_array(a) else np.asarray(a)
