"""``RawModule`` / ``RawKernel`` of the stand-in: the real CUDA source built for the host.

``RawModule(code=, options=, name_expressions=)`` compiles ``code`` with g++ behind ``shim.h``
(CUDA built-ins, qualifiers, atomics, ``__syncthreads``) plus, for every name expression, a
wrapper that reports the kernel's parameter types and launches it from an array of pointers to
the argument values, as ``cuLaunchKernel`` takes them. The shared library is cached on disk by
the hash of everything that went into it (``NJ_CUDASIM_CACHE``, else ``~/.cache``).

A launch checks what the driver and the hardware would trip on, then runs every block and
every thread in shuffled orders: argument count; each scalar's byte width and kind against its
C type (a Python int is 8 bytes and a float a double, as CuPy passes them); each pointer's
array: on the current device, C-contiguous, its dtype of the pointee's width and kind; reads
ordered for the launch stream; grid and block within CUDA's limits.

Example:
    >>> import numpy as np, cudasim as cp
    >>> m = cp.RawModule(code='__global__ void k(float* a, int n) { int i = threadIdx.x; if (i < n) a[i] = i; }',
    ...                  name_expressions=("k",))
    >>> a = cp.zeros(4, cp.float32)
    >>> m.get_function("k")((1,), (4,), (a, np.int32(4)))
    >>> a.get().tolist()
    [0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from . import _array as ar
from . import _device as dv

SHIM = Path(__file__).with_name("shim.h")
MAX_PARAMS = 64
GRID_LIMITS = (2**31 - 1, 65535, 65535)
BLOCK_LIMITS = (1024, 1024, 64)
_LOCK = threading.RLock()
_SEED = [int(os.environ.get("NJ_CUDASIM_SEED", "0"))]
_INTERLEAVE = [False]


class CompileException(RuntimeError):
    """The source did not build (``cupy.cuda.compiler.CompileException``)."""


class _Param(ctypes.Structure):
    _fields_ = [("size", ctypes.c_int), ("kind", ctypes.c_char), ("pointee_size", ctypes.c_int),
                ("pointee_kind", ctypes.c_char), ("pointee_const", ctypes.c_int)]


class _Cfg(ctypes.Structure):
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3), ("seed", ctypes.c_ulonglong),
                ("coop", ctypes.c_int), ("interleave", ctypes.c_int)]


_KIND_NAMES = {"u": "unsigned", "i": "signed", "f": "floating", "b": "bool"}


def _ctype_name(p) -> str:
    if p.kind == b"p":
        k = p.pointee_kind.decode()
        return f"{'const ' if p.pointee_const else ''}{_KIND_NAMES.get(k, k)} {8 * p.pointee_size}-bit*"
    return f"{_KIND_NAMES[p.kind.decode()]} {8 * p.size}-bit"


@contextlib.contextmanager
def interleave_atomics(on: bool = True):
    """Within the block, switch threads before every atomic (so CAS loops really contend)."""
    old, _INTERLEAVE[0] = _INTERLEAVE[0], on
    try:
        yield
    finally:
        _INTERLEAVE[0] = old


def cache_dir() -> Path:
    d = os.environ.get("NJ_CUDASIM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "neurons_jax", "cudasim")
    Path(d).mkdir(parents=True, exist_ok=True)
    return Path(d)


def _flags(options) -> list[str]:
    std = "-std=c++14"
    out = []
    for o in options:
        if o.startswith(("--std=", "-std=")):
            std = "-std=" + o.split("=", 1)[1]
        elif o.startswith("-D") or o.startswith("-I"):
            out.append(o)
    return [std, *out]


def build(code: str, options, expressions) -> ctypes.CDLL:
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise CompileException("cudasim: no C++ compiler (g++) to build CUDA sources for the host")
    wrappers = []
    for k, e in enumerate(expressions):
        wrappers.append(
            f'extern "C" int nj_sig_{k}(nj_param* o, int cap) {{ return nj_describe(&{e}, o, cap); }}\n'
            f'extern "C" int nj_launch_{k}(void** a, const nj_cfg* c) {{\n'
            f"  typedef nj_kernel<decltype(&{e})> K; K::fn = &{e}; K::args = a; return nj_run_grid(c, &K::body);\n}}\n"
        )
    text = f'#include "{SHIM}"\n#line 1 "kernel.cu"\n{code}\n#line 1 "cudasim_wrappers"\n' + "".join(wrappers)
    flags = [*_flags(options), "-O1", "-shared", "-fPIC", "-ffp-contract=off", "-w", "-x", "c++"]
    key = hashlib.sha256("\0".join([SHIM.read_text(), text, *flags, cxx]).encode()).hexdigest()[:32]
    so = cache_dir() / f"{key}.so"
    if not so.exists():
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "module.cpp"
            src.write_text(text)
            tmp_so = Path(tmp) / "module.so"
            res = subprocess.run([cxx, *flags, str(src), "-o", str(tmp_so)], capture_output=True, text=True)
            if res.returncode != 0:
                raise CompileException(f"cudasim: host build of the CUDA source failed:\n{res.stderr[-4000:]}")
            part = so.with_suffix(f".{os.getpid()}.part")
            shutil.copyfile(tmp_so, part)
            os.replace(part, so)
    return ctypes.CDLL(str(so))


class RawModule:
    """``cupy.RawModule``: the source built for the host, one kernel per name expression."""

    def __init__(self, code: str | None = None, *, path=None, options=(), backend="nvrtc",
                 translate_cucomplex=False, enable_cooperative_groups=False, name_expressions=None,
                 jitify=False):
        if code is None:
            if path is None:
                raise TypeError("RawModule: give code or path")
            code = Path(path).read_text()
        self.code, self.options = code, tuple(options)
        self.name_expressions = tuple(name_expressions or ())
        self.coop = "__syncthreads" in code
        self._lib = build(code, self.options, self.name_expressions)
        self._kernels: dict[str, RawKernel] = {}

    def get_function(self, name: str) -> RawKernel:
        if name not in self.name_expressions:
            raise KeyError(f"cudasim.RawModule: {name!r} is not one of the name expressions {self.name_expressions}")
        if name not in self._kernels:
            self._kernels[name] = RawKernel._from_module(self, name, self.name_expressions.index(name))
        return self._kernels[name]


class RawKernel:
    """A kernel of a ``RawModule``; ``kernel(grid, block, args)`` launches it (see the module doc)."""

    @classmethod
    def _from_module(cls, module: RawModule, name: str, k: int) -> RawKernel:
        self = object.__new__(cls)
        self.name, self.module, self.coop = name, module, module.coop
        sig = getattr(module._lib, f"nj_sig_{k}")
        sig.restype, sig.argtypes = ctypes.c_int, [ctypes.POINTER(_Param), ctypes.c_int]
        params = (_Param * MAX_PARAMS)()
        n = sig(params, MAX_PARAMS)
        if n < 0:
            raise CompileException(f"{name}: more than {MAX_PARAMS} parameters")
        self.params = list(params[:n])
        self._launch = getattr(module._lib, f"nj_launch_{k}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Cfg)]
        self._error = module._lib.nj_error
        self._error.restype = ctypes.c_char_p
        return self

    def __init__(self, code: str, name: str, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=False):
        m = RawModule(code=code, options=options, name_expressions=(name,))
        k = m.get_function(name)
        self.__dict__.update(k.__dict__)

    def __call__(self, grid, block, args, *, shared_mem: int = 0, stream=None) -> None:
        grid, block = _dims(grid, "grid", self.name), _dims(block, "block", self.name)
        _check_limits(grid, block, self.name)
        stream = stream or dv.get_current_stream()
        if stream.device_id != dv.current_device_id():
            raise dv.DeviceMismatchError(
                f"kernel {self.name}: launched on {stream!r} while device {dv.current_device_id()} is current"
            )
        args = tuple(args)
        if len(args) != len(self.params):
            raise TypeError(f"kernel {self.name}: takes {len(self.params)} arguments, got {len(args)}")
        keep, writes = [], []
        for i, (a, p) in enumerate(zip(args, self.params)):
            keep.append(self._pack(i, a, p, stream, writes))
        ptrs = (ctypes.c_void_p * max(len(keep), 1))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in keep])
        cfg = _Cfg((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), _next_seed(),
                   int(self.coop), int(_INTERLEAVE[0]))
        seq = stream.enqueue()
        with _LOCK:
            rc = self._launch(ptrs, ctypes.byref(cfg))
            if rc != 0:
                raise RuntimeError(f"kernel {self.name}: {self._error().decode()}")
        for w in writes:
            ar.mark_written(w, stream, seq)
        dv.counters.launches += 1

    def _pack(self, i: int, a, p, stream, writes: list):
        where = f"kernel {self.name}, argument {i} ({_ctype_name(p)})"
        if p.kind == b"p":
            if not isinstance(a, ar.ndarray):
                raise TypeError(f"{where}: expected a device array, got {type(a).__name__}")
            ar.check_read(a, stream, where)
            if not a.flags.c_contiguous:
                raise ValueError(f"{where}: the array is not C-contiguous (strides {a.strides})")
            dt = a.dtype
            kind = "u" if dt.kind == "b" else dt.kind
            want = p.pointee_kind.decode()
            want = "u" if want == "b" else want
            if p.pointee_size and (dt.itemsize != p.pointee_size or kind != want):
                raise TypeError(f"{where}: got an array of dtype {dt}")
            if not p.pointee_const:
                writes.append(a)
            return ctypes.c_void_p(a._a.ctypes.data)
        if isinstance(a, ar.ndarray):
            raise TypeError(f"{where}: got a device array for a scalar parameter")
        if isinstance(a, bool | np.bool_):
            v = np.bool_(a)
        elif isinstance(a, int):
            v = np.int64(a)  # CuPy passes a Python int as 8 bytes
        elif isinstance(a, float):
            v = np.float64(a)
        elif isinstance(a, np.generic):
            v = a
        else:
            raise TypeError(f"{where}: unsupported argument type {type(a).__name__}")
        kind = v.dtype.kind
        if v.dtype.itemsize != p.size or kind != p.kind.decode():
            raise TypeError(
                f"{where}: got {type(a).__name__} {v.dtype} ({v.dtype.itemsize} bytes); the driver reads "
                f"{p.size} bytes"
            )
        return ctypes.create_string_buffer(v.tobytes(), len(v.tobytes()))


def _next_seed() -> int:
    _SEED[0] += 1
    return _SEED[0]


def _dims(d, what: str, name: str) -> tuple[int, int, int]:
    if isinstance(d, int | np.integer):
        d = (d,)
    d = tuple(int(v) for v in d)
    if not 1 <= len(d) <= 3:
        raise ValueError(f"kernel {name}: {what} must have 1 to 3 dimensions, got {d}")
    return (*d, *(1,) * (3 - len(d)))


def _check_limits(grid, block, name: str) -> None:
    for what, dims, lim in (("grid", grid, GRID_LIMITS), ("block", block, BLOCK_LIMITS)):
        for ax, v, hi in zip("xyz", dims, lim):
            if not 1 <= v <= hi:
                raise ValueError(f"kernel {name}: {what}.{ax} = {v} is outside CUDA's 1..{hi}")
    if block[0] * block[1] * block[2] > 1024:
        raise ValueError(f"kernel {name}: a block of {block} has more than 1024 threads")
