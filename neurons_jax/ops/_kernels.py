"""CUDA sources in ``kernels/*.cu``, compiled with ``cupy.RawModule`` and cached per device.

The kernels ship inside the wheel as the package data of ``neurons_jax.kernels`` (pyproject maps
the repository's ``kernels/`` folder there, ``*.cu`` and ``*.cuh``); in a source tree they are
read from ``kernels/`` next to the package. Shared device code lives in headers
(``stencil.cuh``) that the sources include by name: ``compile_options()`` adds
``-I<kernels folder>``, found at run time, to ``OPTIONS``. Templates are instantiated by name
expression, one small module per instantiation and device, so a call compiles only the variants
it uses (NVRTC, then CuPy's disk cache). CuPy's cache keys on the source text, not on included
files, so ``source`` ends with a digest of every header it includes.

Example (GPU only):
    >>> from neurons_jax.ops._kernels import get_function, ctype   # doctest: +SKIP
    >>> f = get_function("ccl.cu", f"ccl_merge<{ctype('uint32')}, int, 6>")  # doctest: +SKIP
    >>> launch(f, n, (labels, parent, ...))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import re
from pathlib import Path

import numpy as np

from ..backend import per_device

OPTIONS = ("--std=c++14",)
"""Static NVRTC options; ``compile_options()`` adds the include folder."""
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


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.MULTILINE)


def compile_options() -> tuple[str, ...]:
    """``OPTIONS`` plus ``-I<kernels folder>``, where the sources' ``#include "x.cuh"`` resolve."""
    return (*OPTIONS, f"-I{kernels_dir()}")


def _read(name: str) -> str:
    path = kernels_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"CUDA kernel source {path} does not exist")
    return path.read_text()


def headers(name: str) -> list[str]:
    """The headers of ``kernels/`` that ``name`` includes, directly or through other headers."""
    out: list[str] = []
    todo = [name]
    while todo:
        for h in _INCLUDE.findall(_read(todo.pop())):
            if h not in out and (kernels_dir() / h).is_file():
                out.append(h)
                todo.append(h)
    return sorted(out)


@functools.cache
def source(name: str) -> str:
    """The text of ``kernels/<name>``, plus a comment with the digest of each included header."""
    text = _read(name)
    digests = [f"{h} {hashlib.sha256(_read(h).encode()).hexdigest()[:16]}" for h in headers(name)]
    if digests:
        text += "\n// included headers (keys the compile caches): " + ", ".join(digests) + "\n"
    return text


@per_device
def _module(name: str, expression: str):
    import cupy

    return cupy.RawModule(
        code=source(name), options=compile_options(), name_expressions=(expression,)
    )


def get_function(name: str, expression: str):
    """The kernel ``expression`` (e.g. ``"ccl_merge<unsigned int, int, 26>"``) of ``name``,
    compiled for the current device."""
    return _module(name, expression).get_function(expression)


def launch(kernel, n: int, args: tuple) -> None:
    """Launch a grid-stride kernel over ``n`` items (a no-op for ``n == 0``)."""
    if n <= 0:
        return
    blocks = min((n + THREADS - 1) // THREADS, MAX_BLOCKS)
    kernel((blocks,), (THREADS,), args)
