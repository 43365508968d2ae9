"""Where array work runs: dispatch, the GPU probe, device choice, connectivities, per-device caches.

What every backend-aware part of neurons_jax shares, in one place:

* dispatch: ``array_module``, ``is_cupy_array``, ``to_numpy`` and ``on_device_of``: NumPy arrays
  run on the CPU, CuPy arrays on their GPU. CuPy is never imported at package import time; it
  is looked up only when an array that is not a NumPy array arrives, or when a caller asks
  whether a GPU exists.
* the GPU probe: ``gpu_available`` / ``gpu_unavailable_reason`` import CuPy, find a device and
  compile and run one of our kernels there, once per process (the result is cached in the
  module variable ``_PROBE``, which tests may set).
* device choice: ``resolve_device("auto" | "cpu" | "gpu", who)`` -> ``"cpu"`` or ``"gpu"``.
* connectivities: ``CONNECTIVITIES`` by number of dimensions, ``check_connectivity`` (2D input
  also takes 6, 18 and 26, mapped as cc3d maps them), ``to_3d``, ``stencil`` and ``reach``.
* ``per_device``: memoize a function per current CUDA device (compiled modules, device tables).

Example:
    >>> import numpy as np
    >>> from neurons_jax import backend
    >>> backend.array_module(np.zeros(3)) is np
    True
    >>> backend.check_connectivity(6, 2, "connected_components"), backend.to_3d(8)
    (4, 26)
    >>> backend.stencil(6).tolist()
    [[-1, 0, 0], [0, -1, 0], [0, 0, -1], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    >>> backend.resolve_device("cpu", "device")
    'cpu'
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------- dispatch


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


def on_device_of(a):
    """Context manager that makes ``a``'s GPU current (a no-op for NumPy arrays), so outputs are
    allocated and kernels launched where the input lives."""
    return a.device if is_cupy_array(a) else contextlib.nullcontext()


def to_numpy(a) -> np.ndarray:
    """A NumPy view/copy of a NumPy or CuPy array."""
    return a.get() if is_cupy_array(a) else np.asarray(a)


# ----------------------------------------------------------------------------- the GPU probe

_PROBE: tuple[bool, str] | None = None  # (usable, why not), once per process
INSTALL_HINT = "pip install 'neurons-jax[gpu]'"


def _probe() -> tuple[bool, str]:
    """Import CuPy, find a device, compile and run one of our kernels on it and check the result."""
    try:
        import cupy
    except Exception as e:  # noqa: BLE001 - any import failure means "no GPU"
        return False, (
            f"CuPy is not installed or does not import ({type(e).__name__}: {e}); {INSTALL_HINT}"
        )
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001
        return False, f"CuPy finds no CUDA driver or device ({type(e).__name__}: {e})"
    if n < 1:
        return False, "CuPy sees no CUDA device"
    try:
        from .ops import _kernels

        with cupy.cuda.Device(0):
            lab = cupy.asarray(np.array([0, 5, 9, 200], np.uint8))
            out = cupy.empty(4, cupy.uint8)
            f = _kernels.get_function("remap.cu", "union_remap<unsigned char>")
            edges = cupy.asarray(np.array([1, 9], np.uint8))
            cls = cupy.asarray(np.array([0, 1, 2], np.uint8))
            _kernels.launch(f, 4, (lab, out, edges, cls, np.int32(2), np.int64(4)))
            got = out.get().tolist()
    except Exception as e:  # noqa: BLE001 - NVRTC/headers missing, driver too old, ...
        first = str(e).splitlines()[0] if str(e) else ""
        return False, f"CuPy cannot compile or run a kernel ({type(e).__name__}: {first})"
    if got != [0, 1, 2, 2]:
        return False, f"a test kernel gave {got} instead of [0, 1, 2, 2]"
    return True, ""


def _probed() -> tuple[bool, str]:
    global _PROBE
    if _PROBE is None:
        _PROBE = _probe()
    return _PROBE


def gpu_available() -> bool:
    """True when CuPy imports, sees a CUDA device and one of our kernels compiles and runs there
    (checked once per process)."""
    return _probed()[0]


def gpu_unavailable_reason() -> str:
    """Why ``gpu_available()`` is False ('' when it is True)."""
    return _probed()[1]


# ----------------------------------------------------------------------------- device choice

DEVICES = ("auto", "cpu", "gpu")


class GpuUnavailableError(RuntimeError):
    """``device="gpu"`` was asked for where no CUDA GPU is usable (the message says why)."""


def check_device(device: object, who: str) -> str:
    """``device`` if it is one of ``DEVICES``; else a ValueError naming ``who`` and what came."""
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"{who} must be one of {', '.join(DEVICES)}; got {device!r}")
    return device


def resolve_device(device: str, who: str) -> str:
    """``"cpu"`` or ``"gpu"`` for a requested ``device``.

    ``"auto"`` is the GPU when ``gpu_available()``, else the CPU; ``"gpu"`` without a usable GPU
    raises ``GpuUnavailableError`` with the probe's reason. ``who`` names the argument as the
    caller's user wrote it (``"--device"``, ``"blockwise_connected_components: device"``).
    """
    check_device(device, who)
    if device == "cpu":
        return "cpu"
    if gpu_available():
        return "gpu"
    if device == "auto":
        return "cpu"
    raise GpuUnavailableError(
        f"{who} gpu: no CUDA GPU found ({gpu_unavailable_reason()}); use cpu or auto"
    )


# ----------------------------------------------------------------------------- connectivities

CONNECTIVITIES = {2: (4, 8), 3: (6, 18, 26), 4: (6, 18, 26)}
"""Connectivities by number of dimensions (4D is a batch of 3D volumes)."""

CC3D_2D = {6: 4, 18: 8, 26: 8}
"""3D connectivities accepted for 2D input, mapped as ``cc3d`` maps them."""

_TO_3D = {4: 6, 8: 26, 6: 6, 18: 18, 26: 26}
_REACH = {6: 1, 18: 2, 26: 3}


def check_connectivity(
    connectivity: object, ndim: int, who: str, shape: tuple | None = None
) -> int:
    """The connectivity for ``ndim``-D input in that dimension's terms (2D: 4 or 8).

    2D input also accepts 6 (-> 4), 18 and 26 (-> 8), as cc3d does. Anything else is a
    ValueError naming ``who``, the allowed values and what came.
    """
    if ndim not in CONNECTIVITIES:
        raise ValueError(f"{who}: no connectivity for {ndim}D input")
    allowed = CONNECTIVITIES[ndim]
    alias = f" (or {', '.join(map(str, CC3D_2D))} as cc3d maps them)" if ndim == 2 else ""
    where = f"{ndim}D input" + (f" (shape {tuple(shape)})" if shape is not None else "")
    if isinstance(connectivity, bool | np.bool_) or not isinstance(connectivity, int | np.integer):
        raise ValueError(
            f"{who}: connectivity must be one of {allowed}{alias} for {where}; got {connectivity!r}"
        )
    c = int(connectivity)
    if ndim == 2:
        c = CC3D_2D.get(c, c)
    if c not in allowed:
        raise ValueError(
            f"{who}: connectivity must be one of {allowed}{alias} for {where}; got {connectivity}"
        )
    return c


def to_3d(connectivity: int) -> int:
    """The 3D connectivity that labels a 2D image as one section (4 -> 6, 8 -> 26; 3D: itself)."""
    return _TO_3D[int(connectivity)]


def reach(connectivity: int) -> int:
    """The most axes one neighbour offset moves along: 1 for 6, 2 for 18, 3 for 26."""
    return _REACH[to_3d(connectivity)]


@functools.cache
def _stencil(conn: int) -> np.ndarray:
    d = np.array([(z, y, x) for z in (-1, 0, 1) for y in (-1, 0, 1) for x in (-1, 0, 1)])
    s = np.abs(d).sum(1)
    out = d[(s >= 1) & (s <= _REACH[conn])]
    out.flags.writeable = False
    return out


def stencil(connectivity: int) -> np.ndarray:
    """All (dz, dy, dx) neighbour offsets of a connectivity (2D ones as one section), C order,
    as a read-only (k, 3) int array; the kernels' ``in_stencil`` (kernels/stencil.cuh) agrees."""
    return _stencil(to_3d(connectivity))


# ----------------------------------------------------------------------------- per-device caches


def current_device_id() -> int:
    """The id of CuPy's current CUDA device."""
    import cupy

    return int(cupy.cuda.Device().id)


def per_device(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Memoize ``fn(*args)`` per current CUDA device (CuPy modules and arrays belong to one
    device). Arguments must be hashable; ``wrapper.cache_clear()`` empties the cache.

    Example (GPU only):
        >>> @per_device  # doctest: +SKIP
        ... def table():
        ...     return cupy.asarray(np.arange(4))
    """
    cache: dict[tuple, Any] = {}
    lock = threading.Lock()

    @functools.wraps(fn)
    def wrapper(*args):
        key = (current_device_id(), *args)
        try:
            return cache[key]
        except KeyError:
            pass
        value = fn(*args)
        with lock:
            return cache.setdefault(key, value)

    wrapper.cache_clear = cache.clear  # type: ignore[attr-defined]
    return wrapper
