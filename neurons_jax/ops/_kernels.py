"""CUDA sources in ``kernels/*.cu``, compiled with ``cupy.RawModule`` and cached per device.

The kernels ship inside the wheel as the package data of ``neurons_jax.kernels`` (pyproject maps
the repository's ``kernels/`` folder there); in a source tree they are read from ``kernels/``
next to the package. Templates are instantiated by name expression, one small module per
instantiation, so a call compiles only the variants it uses (NVRTC, then CuPy's disk cache).

Example (GPU only):
    >>> from neurons_jax.ops._kernels import get_function, ctype   # doctest: +SKIP
    >>> f = get_function("ccl.cu", f"ccl_init<{ctype('uint32')}, int, 6>")  # doctest: +SKIP
    >>> launch(f, n, (labels, parent, ...))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import numpy as np

OPTIONS = ("--std=c++14",)
THREADS = 256
MAX_BLOCKS = 1 << 16

_CTYPES = {
    "uint8": "unsigned char",
    "uint16": "unsigned short",
    "uint32": "unsigned int",
    "uint64": "unsigned long long",
    "int8": "signed char",
    "int16": "short",
    "int32": "int",
    "int64": "long long",
}


def ctype(dtype) -> str:
    """The C++ type name of a NumPy dtype used by the kernels."""
    name = np.dtype(dtype).name
    try:
        return _CTYPES[name]
    except KeyError:
        raise TypeError(f"no CUDA kernel type for dtype {name}") from None


def unsigned_view(a):
    """``a`` viewed as the unsigned integer type of the same width (equality is unchanged)."""
    dt = np.dtype(a.dtype)
    return a if dt.kind == "u" else a.view(f"uint{8 * dt.itemsize}")


def kernels_dir() -> Path:
    """Folder holding the ``*.cu`` files (package data first, then the source tree)."""
    try:
        pkg = importlib.resources.files("neurons_jax.kernels")
        if pkg.joinpath("ccl.cu").is_file():
            return Path(str(pkg))
    except ModuleNotFoundError:
        pass
    here = Path(__file__).resolve().parents[2] / "kernels"
    if (here / "ccl.cu").is_file():
        return here
    raise FileNotFoundError(
        "CUDA kernel sources not found: expected ccl.cu in the package data of "
        f"neurons_jax.kernels or in {here}"
    )


@functools.cache
def source(name: str) -> str:
    """The text of ``kernels/<name>``."""
    path = kernels_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"CUDA kernel source {path} does not exist")
    return path.read_text()


@functools.cache
def _module(name: str, expression: str, device: int):
    import cupy

    return cupy.RawModule(code=source(name), options=OPTIONS, name_expressions=(expression,))


def get_function(name: str, expression: str):
    """The kernel ``expression`` (e.g. ``"ccl_merge<unsigned int, int, 26>"``) of ``name``."""
    import cupy

    device = cupy.cuda.Device().id
    return _module(name, expression, device).get_function(expression)


def launch(kernel, n: int, args: tuple) -> None:
    """Launch a grid-stride kernel over ``n`` items (a no-op for ``n == 0``)."""
    if n <= 0:
        return
    blocks = min((n + THREADS - 1) // THREADS, MAX_BLOCKS)
    kernel((blocks,), (THREADS,), args)
