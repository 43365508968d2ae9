"""``ndarray`` of the stand-in: NumPy memory that lives on one device and obeys the stream rules.

Every operation checks that its arrays are on the current device (else ``DeviceMismatchError``)
and that their last writes are ordered for the current stream (else ``OrderingError``); it then
counts as one op on the current stream and marks what it wrote. Host reads (``get``, ``bool``,
``int``, ``tolist``, ``repr``; ``nonzero``, ``unique`` and boolean-mask indexing, whose output
size the host must learn) count as syncs. ``np.asarray(a)`` raises as in CuPy.

Example:
    >>> import numpy as np, cudasim as cp
    >>> a = cp.asarray(np.arange(4))
    >>> (a * 2).get().tolist()
    [0, 2, 4, 6]
"""

from __future__ import annotations

import operator

import numpy as np

from . import _device as dv

POISON = 0xFF  # empty() bytes: NaN for floats, all ones (-1 / max) for integers


class _Buffer:
    """One allocation: its device and the stream work that last wrote it."""

    __slots__ = ("device", "stream", "seq")

    def __init__(self, device: int):
        self.device, self.stream, self.seq = device, None, 0


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class ndarray:  # noqa: N801 - the CuPy name
    """A device array (see the module docstring). ``ndarray(shape, dtype)`` is uninitialised."""

    __slots__ = ("_a", "_buf", "__weakref__")
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = np.empty(shape, dtype, order=order)
        self._a.view(np.uint8).fill(POISON) if self._a.size else None
        self._buf = _Buffer(dv.current_device_id())

    @classmethod
    def _new(cls, a: np.ndarray, buf: _Buffer) -> ndarray:
        obj = object.__new__(cls)
        obj._a, obj._buf = a, buf
        return obj

    # ---------------------------------------------------------------- plain attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    device = property(lambda self: dv.Device(self._buf.device))

    @property
    def data(self):
        return _MemoryPointer(self._a.ctypes.data, self._buf.device)

    def __len__(self) -> int:
        return len(self._a)

    @property
    def T(self):  # noqa: N802
        return self.transpose()

    # ---------------------------------------------------------------- strictness
    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        return op(fn, inputs, kwargs, f"numpy.{ufunc.__name__}")

    def __array_function__(self, func, types, args, kwargs):
        return op(func, args, kwargs, f"numpy.{func.__name__}", syncs=func.__name__ in SYNCING)

    # ---------------------------------------------------------------- host reads
    def get(self, stream=None, order="C", out=None, blocking=True):
        if not blocking:
            raise NotImplementedError("cudasim: get(blocking=False) is not modelled")
        with dv.Device(self._buf.device):
            s = stream or dv.get_current_stream()
            s.synchronize()
            check_host_read(self, f"get() on {s!r}")
        dv.counters.d2h_bytes += self.nbytes
        res = np.array(self._a, order=order)
        if out is not None:
            out[...] = res
            return out
        return res

    def _host_scalar(self, what: str):
        dv.counters.log.append(("host read", what))
        with dv.Device(self._buf.device):
            s = dv.get_current_stream()
            s.synchronize()
            check_host_read(self, what)
        dv.counters.d2h_bytes += self.itemsize
        return self._a

    def __bool__(self) -> bool:
        return bool(self._host_scalar("bool()"))

    def __int__(self) -> int:
        return int(self._host_scalar("int()"))

    def __index__(self) -> int:
        return operator.index(self._host_scalar("index()")[()])

    def __float__(self) -> float:
        return float(self._host_scalar("float()"))

    def item(self):
        return self._host_scalar("item()").item()

    def tolist(self):
        return self.get().tolist()

    def __repr__(self) -> str:
        return f"cudasim.ndarray({np.array2string(self.get())}, device={self._buf.device})"

    __str__ = __repr__

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def set(self, arr, stream=None) -> None:
        arr = np.asarray(arr)
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        check_device(self, "ndarray.set")
        dv.counters.h2d_bytes += arr.nbytes
        self._a[...] = arr
        mark_written(self, stream or dv.get_current_stream())

    # ---------------------------------------------------------------- indexing
    def __getitem__(self, key):
        key, is_mask = unwrap_key(key, "__getitem__")
        res = self._a[key]
        if isinstance(res, np.ndarray) and _root(res) is _root(self._a) and not is_mask:
            return ndarray._new(res, self._buf)  # a view: metadata only, no work on any device
        if is_mask:
            sync("boolean-mask indexing")
        return op(lambda a: a[key], (self,), {}, "__getitem__ (gather)")

    def __setitem__(self, key, value) -> None:
        key, is_mask = unwrap_key(key, "__setitem__")
        if is_mask:
            sync("boolean-mask assignment")
        if isinstance(value, np.ndarray) and value.ndim:
            dv.counters.h2d_bytes += value.nbytes
            value = asarray_host(value)

        def assign(a, v):
            a[key] = v
            return None

        op(assign, (self, value), {}, "__setitem__", writes=(self,))

    # ---------------------------------------------------------------- methods
    def __getattr__(self, name):
        meth = getattr(np.ndarray, name, None)
        if meth is None or name.startswith("_"):
            raise AttributeError(f"cudasim.ndarray has no attribute {name!r}")

        def method(*args, **kwargs):
            if name in VIEWS:
                res = getattr(self._a, name)(*args, **kwargs)
                if isinstance(res, np.ndarray) and _root(res) is _root(self._a):
                    return ndarray._new(res, self._buf)  # metadata only
                check_read(self, dv.get_current_stream(), name)  # a copy: device work
                dv.counters.ops += 1
                return wrap_new(res, dv.get_current_stream(), dv.get_current_stream().enqueue())
            return op(lambda a, *r, **k: getattr(a, name)(*r, **k), (self, *args), kwargs,
                      f"ndarray.{name}", syncs=name in SYNCING,
                      writes=(self,) if name in ("fill", "sort") else ())

        return method

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return op(lambda a: a.astype(dtype, order=order), (self,), {}, "ndarray.astype")

    def copy(self, order="C"):
        return op(lambda a: a.copy(order=order), (self,), {}, "ndarray.copy")

    # ---------------------------------------------------------------- DLPack (producer side)
    def __dlpack_device__(self):
        return (2, self._buf.device)  # kDLCUDA

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        cur = dv.current_device_id()
        producer = dv.get_current_stream()
        if self._buf.device != cur and not dv.ordered(self._buf.stream, self._buf.seq, None):
            raise dv.OrderingError(
                f"DLPack export of an array of device {self._buf.device} while device {cur} is current: "
                f"the ordering event would be recorded on device {cur}'s stream, so the consumer could "
                f"read it before its writes on {self._buf.stream!r} land (export inside "
                f"`with cupy.cuda.Device({self._buf.device})`)"
            )
        if not dv.ordered(self._buf.stream, self._buf.seq, producer):
            raise dv.OrderingError(
                f"DLPack export on {producer!r} of data last written on {self._buf.stream!r}, not ordered"
            )
        return _Capsule(self, producer)

    def toDlpack(self):  # noqa: N802 - CuPy name
        return self.__dlpack__()


class _Capsule:
    """What ``__dlpack__`` hands a consumer: the memory and the producer stream it is ordered on."""

    def __init__(self, arr: ndarray, stream):
        self.array, self.stream = arr, stream


class _MemoryPointer:
    def __init__(self, ptr: int, device_id: int):
        self.ptr, self.device_id = ptr, device_id

    @property
    def device(self):
        return dv.Device(self.device_id)


VIEWS = {"reshape", "view", "ravel", "transpose", "squeeze", "swapaxes", "diagonal"}
SYNCING = {"nonzero", "flatnonzero", "argwhere", "unique", "compress", "extract", "tolist"}


# -------------------------------------------------------------------- op machinery
def sync(what: str) -> None:
    dv.counters.syncs += 1
    dv.counters.log.append(("sync", what))
    s = dv.get_current_stream()
    s.done = s.seq


def check_device(a: ndarray, what: str) -> None:
    cur = dv.current_device_id()
    if a._buf.device != cur:
        raise dv.DeviceMismatchError(
            f"{what}: an array of device {a._buf.device} is used while device {cur} is current "
            f"(run it inside `with cupy.cuda.Device({a._buf.device})`)"
        )


def check_read(a: ndarray, stream, what: str) -> None:
    check_device(a, what)
    if not dv.ordered(a._buf.stream, a._buf.seq, stream):
        raise dv.OrderingError(
            f"{what}: reads on {stream!r} data that {a._buf.stream!r} wrote (work {a._buf.seq}, "
            f"{a._buf.stream.done} ordered) without an event or a synchronize between them"
        )


def check_host_read(a: ndarray, what: str) -> None:
    if not dv.ordered(a._buf.stream, a._buf.seq, None):
        raise dv.OrderingError(
            f"{what}: the host reads data that {a._buf.stream!r} wrote (work {a._buf.seq}) before that "
            f"stream was synchronized ({a._buf.stream.done} ordered)"
        )


def mark_written(a: ndarray, stream, seq: int | None = None) -> None:
    a._buf.stream, a._buf.seq = stream, stream.seq if seq is None else seq


def asarray_host(a: np.ndarray) -> ndarray:
    s = dv.get_current_stream()
    out = ndarray._new(np.array(a, copy=True, order="C"), _Buffer(dv.current_device_id()))
    mark_written(out, s, s.enqueue())
    return out


def unwrap(x, stream, what: str, inputs: list):
    if isinstance(x, ndarray):
        check_read(x, stream, what)
        inputs.append(x)
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"{what}: Unsupported type {type(x)} (a NumPy array among device arrays)")
    if isinstance(x, tuple):
        return tuple(unwrap(v, stream, what, inputs) for v in x)
    if isinstance(x, list):
        return [unwrap(v, stream, what, inputs) for v in x]
    return x


def unwrap_key(key, what: str):
    """Index key with device arrays unwrapped; NumPy index arrays are uploaded (counted)."""
    parts = key if isinstance(key, tuple) else (key,)
    out, is_mask = [], False
    stream = dv.get_current_stream()
    for k in parts:
        if isinstance(k, ndarray):
            check_read(k, stream, what)
            is_mask |= k.dtype == bool
            k = k._a
        elif isinstance(k, np.ndarray):
            dv.counters.h2d_bytes += k.nbytes
            is_mask |= k.dtype == bool
        elif isinstance(k, list):
            k = np.asarray(k)
            is_mask |= k.dtype == bool
        out.append(k)
    return (tuple(out) if isinstance(key, tuple) else out[0]), is_mask


def wrap_new(res, stream, seq, inputs=()):
    if isinstance(res, np.ndarray):
        for x in inputs:
            if _root(res) is _root(x._a):
                return ndarray._new(res, x._buf)
        out = ndarray._new(res, _Buffer(dv.current_device_id()))
        out._buf.stream, out._buf.seq = stream, seq
        return out
    if isinstance(res, np.generic):
        return wrap_new(np.asarray(res), stream, seq)
    if isinstance(res, tuple):
        return tuple(wrap_new(r, stream, seq, inputs) for r in res)
    if isinstance(res, list):
        return [wrap_new(r, stream, seq, inputs) for r in res]
    return res


def op(fn, args, kwargs, what: str, syncs: bool = False, writes=()):
    """Run ``fn`` on the unwrapped arguments as one device op on the current stream."""
    stream = dv.get_current_stream()
    inputs: list = []
    a = unwrap(tuple(args), stream, what, inputs)
    outs = kwargs.get("out")
    k = {key: unwrap(v, stream, what, inputs) for key, v in kwargs.items()}
    seq = stream.enqueue()
    dv.counters.ops += 1
    if syncs:
        sync(what)
    res = fn(*a, **k)
    for w in (*writes, *(outs if isinstance(outs, tuple) else (outs,) if outs is not None else ())):
        if isinstance(w, ndarray):
            w._buf.stream, w._buf.seq = stream, seq
    if outs is not None and res is not None:
        return outs if not isinstance(outs, tuple) or len(outs) != 1 else outs[0]
    return wrap_new(res, stream, seq, inputs)


def _binop(name: str, reflected: bool = False, inplace: bool = False):
    f = getattr(operator, name)

    def method(self, other):
        if isinstance(other, np.ndarray) and other.ndim:
            raise TypeError(f"Unsupported type {type(other)} (operator {name} with a NumPy array)")
        if inplace:
            return op(f, (self, other), {}, f"operator {name}", writes=(self,))
        if reflected:
            return op(lambda a, b: f(b, a), (self, other), {}, f"operator {name}")
        return op(f, (self, other), {}, f"operator {name}")

    return method


for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor",
           "lshift", "rshift", "matmul"):
    _o = _n + "_" if _n in ("and", "or") else _n
    setattr(ndarray, f"__{_n}__", _binop(_o))
    setattr(ndarray, f"__r{_n}__", _binop(_o, reflected=True))
    setattr(ndarray, f"__i{_n}__", _binop("i" + _n, inplace=True))
for _n in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(ndarray, f"__{_n}__", _binop(_n))
for _n in ("neg", "pos", "invert", "abs"):
    setattr(ndarray, f"__{_n}__", (lambda f, n: lambda self: op(f, (self,), {}, f"operator {n}"))(getattr(operator, _n), _n))
ndarray.__hash__ = None  # type: ignore[assignment]
