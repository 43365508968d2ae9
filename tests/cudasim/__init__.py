"""cudasim: a strict CPU stand-in for the CuPy subset neurons_jax uses (test support only).

``tests/conftest.py`` installs it as ``cupy`` when no CUDA device is usable, so every
``gpu``-marked test body runs in CI on it, and on a real GPU against real CuPy unchanged. The
package never imports it. What it models, strictly where hardware is strict:

* ``ndarray``: NumPy memory that belongs to one device (``NJ_CUDASIM_DEVICES``, default 2);
  ``np.asarray(a)`` raises as in CuPy; ``empty``/``empty_like``/``ndarray(shape)`` are filled
  with 0xFF bytes (NaN, -1, max), so an unwritten output shows.
* ``Device`` (thread-local current device) and per-device ``Stream`` s with pending work: an op
  or launch on an array of another device raises ``DeviceMismatchError``; reading data on another
  stream, on the host, or exporting it by DLPack from a device that is not current before its
  writes are ordered raises ``OrderingError``.
* ``RawModule(code=, options=, name_expressions=)`` builds the real ``kernels/*.cu`` text with g++
  behind ``shim.h``; a launch runs the real grid and block, every block and thread in shuffled
  order, with ``__syncthreads``, static ``__shared__`` memory and atomics (``interleave_atomics``
  switches threads before each atomic, so CAS loops contend), and checks every argument as the
  driver reads it (see ``_kernel``).
* ``counters``: kernel launches, library ops, host syncs (with a log of what synced), host↔device
  bytes; ``counters.reset()``.

What it cannot catch: device compile errors (NVRTC rejects what g++ accepts: the NVRTC compile
test covers that), device numerics (FTZ, fast-math intrinsics, the exact expf/powf), races under
the weak memory model (threads run one at a time and switch only at barriers and, when asked,
atomics), warp-level behaviour (shuffles, warp-synchronous code), out-of-bounds accesses
(no bounds checks on raw pointers), dynamic shared memory, speed and memory limits.

Example:
    >>> import numpy as np, cudasim as cp
    >>> with cp.cuda.Device(1):
    ...     a = cp.asarray(np.arange(3))
    >>> np.asarray(a)
    Traceback (most recent call last):
    ...
    TypeError: Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly.
"""

from __future__ import annotations

import sys
import types

import numpy as np

from . import _array, _device
from ._array import ndarray, op
from ._device import Counters, DeviceMismatchError, OrderingError, counters
from ._kernel import CompileException, RawKernel, RawModule, interleave_atomics

__all__ = [
    "Counters", "DeviceMismatchError", "OrderingError", "RawKernel", "RawModule", "counters",
    "cuda", "install", "interleave_atomics", "ndarray",
]
__version__ = "14.0.0+cudasim"
IS_CUDASIM = True

for _t in ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64", "complex64", "complex128", "intp", "uintp", "int_",
           "dtype", "generic", "integer", "floating", "signedinteger", "unsignedinteger",
           "iinfo", "finfo", "newaxis", "nan", "inf", "pi", "e"):
    globals()[_t] = getattr(np, _t)
bool = np.bool_  # noqa: A001 - cupy.bool


# ---------------------------------------------------------------- creation and transfer
def _alloc(shape, dtype, order="C") -> ndarray:
    return ndarray(shape, dtype, order=order)


def empty(shape, dtype=float, order="C") -> ndarray:
    return _alloc(shape, dtype, order)


def empty_like(a, dtype=None, order="K", subok=None, shape=None) -> ndarray:
    return _alloc(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def _filled(shape, dtype, value) -> ndarray:
    out = _alloc(shape, dtype)
    s = _device.get_current_stream()
    out._a.fill(value)
    _array.mark_written(out, s, s.enqueue())
    _device.counters.ops += 1
    return out


def zeros(shape, dtype=float, order="C") -> ndarray:
    return _filled(shape, dtype, 0)


def ones(shape, dtype=float, order="C") -> ndarray:
    return _filled(shape, dtype, 1)


def full(shape, fill_value, dtype=None, order="C") -> ndarray:
    return _filled(shape, np.result_type(fill_value) if dtype is None else dtype, fill_value)


def zeros_like(a, dtype=None, order="K", subok=None, shape=None) -> ndarray:
    return zeros(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def ones_like(a, dtype=None, order="K", subok=None, shape=None) -> ndarray:
    return ones(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None) -> ndarray:
    return full(a.shape if shape is None else shape, fill_value, a.dtype if dtype is None else dtype)


def asarray(a, dtype=None, order=None, *, blocking=False) -> ndarray:
    """A device array: device arrays pass through (cast if asked), host data is copied up."""
    if isinstance(a, ndarray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    host = np.asarray(a, dtype=dtype)
    _device.counters.h2d_bytes += host.nbytes
    return _array.asarray_host(host)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False) -> ndarray:
    if isinstance(obj, ndarray):
        out = obj.astype(obj.dtype if dtype is None else dtype) if copy else asarray(obj, dtype)
        return out
    return asarray(obj, dtype)


def ascontiguousarray(a, dtype=None) -> ndarray:
    a = asarray(a, dtype)
    return a if a.flags.c_contiguous else a.copy()


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    return np.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


class ElementwiseKernel:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            "cudasim models RawModule kernels only: put the kernel in kernels/*.cu"
        )


ReductionKernel = ElementwiseKernel


# ---------------------------------------------------------------- everything else: NumPy as device ops
def __getattr__(name: str):
    f = getattr(np, name, None)
    if f is None or name.startswith("_"):
        raise AttributeError(f"module 'cupy' (cudasim) has no attribute {name!r}")
    if not callable(f) or isinstance(f, type):
        return f

    def device_op(*args, **kwargs):
        return op(f, args, kwargs, f"cupy.{name}", syncs=name in _array.SYNCING)

    device_op.__name__ = name
    return device_op


# ---------------------------------------------------------------- cupy.cuda
cuda = types.ModuleType("cupy.cuda")
cuda.Device = _device.Device
cuda.Stream = _device.Stream
cuda.Event = _device.Event
cuda.get_current_stream = _device.get_current_stream
cuda.runtime = types.ModuleType("cupy.cuda.runtime")
cuda.runtime.getDeviceCount = lambda: _device.DEVICE_COUNT
cuda.runtime.CUDARuntimeError = _device.CUDARuntimeError
cuda.runtime.is_hip = False


def _device_synchronize() -> None:
    _device.Device().synchronize()


cuda.runtime.deviceSynchronize = _device_synchronize
cuda.runtime.getDevice = _device.current_device_id
cuda.compiler = types.ModuleType("cupy.cuda.compiler")
cuda.compiler.CompileException = CompileException
cuda.is_available = lambda: _device.DEVICE_COUNT > 0


class _Pool:
    def free_all_blocks(self) -> None:
        pass

    def used_bytes(self) -> int:
        return 0


_POOL = _Pool()
get_default_memory_pool = lambda: _POOL  # noqa: E731
get_default_pinned_memory_pool = lambda: _POOL  # noqa: E731


def consume_dlpack(obj, consumer_stream: int = 1) -> np.ndarray:
    """What a DLPack consumer (JAX) does with ``obj``: ask its device, then export on its stream.

    Returns the host view of the memory (the stand-in's memory is host memory)."""
    kind, dev = obj.__dlpack_device__()
    cap = obj.__dlpack__(stream=consumer_stream)
    assert kind == 2 and cap.array._buf.device == dev
    return cap.array._a


def install() -> None:
    """Make ``import cupy`` give this stand-in (for tests)."""
    mod = sys.modules[__name__]
    sys.modules["cupy"] = mod
    sys.modules["cupy.cuda"] = cuda
    sys.modules["cupy.cuda.runtime"] = cuda.runtime
    sys.modules["cupy.cuda.compiler"] = cuda.compiler


def reset() -> None:
    """Counters to zero; every stream's work ordered (a fresh start for a test)."""
    counters.reset()
    for s in (*_device._NULL, *_device._STREAMS):
        s.done = s.seq
