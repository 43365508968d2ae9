"""``Volume``: a lazily opened, picklable 3D array in ZYX order with a voxel size in nm (or None).

A Volume is a *source* (TensorStore, an in-memory array, or an HDF5 dataset) seen through a
*window* (origin and shape in the source's ZYX coordinates). Windows are how splits are made:
``vol.window(z=(0, 80))`` is a view, nothing is read. TensorStore sources share one context
per process with a bounded cache pool; they open on first use and reopen after unpickling, so
Volumes travel to Grain's spawned worker processes.

The voxel size is what the store records (TensorStore ``dimension_units``) or what the caller
passes; a store that records none opens with ``voxel_size=None``, since label ops and copies need
no voxel size. What does need one (training, augmentation, datasets) asks for it with
``vol.require_voxel_size(what)``, which names the volume and says how to give one.

Missing chunks are errors. A zarr3 / zarr / N5 / precomputed store normally holds every chunk
(every writer of neurons-jax stores chunks equal to the fill value too), so a missing one is
data loss, and reading it raises ``MissingChunkError`` naming the store, the chunk and the box.
*Sparse stores*, whose writer skipped empty chunks on purpose, read their missing chunks as the
fill value when opened with ``allow_missing=True`` (``--allow-missing`` on the command line;
``missing_chunks_allowed(True)`` around code that opens volumes, or
``NEURONS_JAX_ALLOW_MISSING=1`` for the whole process).

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> v = nj.Volume.from_array(np.arange(60, dtype=np.uint8).reshape(3, 4, 5), (30, 6, 6))
    >>> v.read((slice(1, 3), slice(0, 2), slice(3, 5))).tolist()
    [[[23, 24], [28, 29]], [[43, 44], [48, 49]]]
    >>> v.window(z=(1, 3)).shape
    (2, 4, 5)
    >>> nj.Volume.from_array(np.zeros((2, 2, 2), np.uint32)).voxel_size is None
    True
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tensorstore as ts

from . import net, safeio

Box = Sequence[slice | int] | tuple[Sequence[int], Sequence[int]]
VoxelSize = tuple[float, float, float]

CACHE_BYTES = int(os.environ.get("NEURONS_JAX_CACHE_BYTES", 512 << 20))
COPY_BYTES = int(os.environ.get("NEURONS_JAX_COPY_BYTES", 64 << 20))  # per box copied by write_zarr3
_context: ts.Context | None = None
_context_pid: int | None = None
_context_lock = threading.Lock()


def shared_context() -> ts.Context:
    """The one TensorStore context of this process (bounded cache pool, made lazily)."""
    global _context, _context_pid
    with _context_lock:
        if _context is None or _context_pid != os.getpid():
            _context = ts.Context(
                {
                    "cache_pool": {"total_bytes_limit": CACHE_BYTES},
                    "data_copy_concurrency": {"limit": max(1, os.cpu_count() or 1)},
                }
            )
            _context_pid = os.getpid()
        return _context


class Source(Protocol):
    """What a Volume reads from: ZYX shape, dtype and a read of a tuple of unit-step slices."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def read(self, slices: tuple[slice, ...]) -> np.ndarray: ...

    def describe(self) -> str: ...


# ----------------------------------------------------------------------------- sources
class ArraySource:
    """An in-memory NumPy array (pickles with its data)."""

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array)
        self.shape = tuple(self.array.shape)
        self.dtype = self.array.dtype

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        return np.array(self.array[slices], copy=True)

    def describe(self) -> str:
        return f"array{self.shape}"


class H5Source:
    """A dataset of an HDF5 file, opened lazily per process (``file.h5:key``)."""

    def __init__(self, path: str | os.PathLike, key: str):
        import h5py

        self.path, self.key = str(path), key
        with h5py.File(self.path, "r") as f:
            if key not in f:
                raise KeyError(
                    f"{self.path}: HDF5 key {key!r} not found; keys present: {_h5_keys(f)}"
                )
            d = f[key]
            self.shape, self.dtype = tuple(d.shape), d.dtype
        self._file = None

    def _dataset(self):
        import h5py

        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file[self.key]

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        try:
            return np.asarray(self._dataset()[slices])
        except OSError as e:  # h5py names neither the file nor the box
            raise OSError(f"{self.describe()}: cannot read {box_text(slices)} "
                          f"({_first_line(e)}); the file may be damaged") from None

    def describe(self) -> str:
        return f"{self.path}:{self.key}"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        return state


def _h5_keys(f) -> list[str]:
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if hasattr(o, "shape") else None)
    return names


class MissingChunkError(OSError):
    """A chunk of a store is missing and missing chunks are not allowed (not a sparse store)."""


_ALLOW_MISSING: contextvars.ContextVar[bool | None] = contextvars.ContextVar("allow_missing", default=None)
CHUNKED_DRIVERS = ("zarr", "zarr3", "n5", "neuroglancer_precomputed")


def missing_allowed(allow_missing: bool | None = None) -> bool:
    """The missing-chunk policy in force: ``allow_missing`` when given, else the innermost
    ``missing_chunks_allowed`` block, else ``NEURONS_JAX_ALLOW_MISSING`` (default: not allowed)."""
    if allow_missing is not None:
        return bool(allow_missing)
    ctx = _ALLOW_MISSING.get()
    if ctx is not None:
        return ctx
    return os.environ.get("NEURONS_JAX_ALLOW_MISSING", "").strip().lower() in ("1", "true", "yes")


@contextlib.contextmanager
def missing_chunks_allowed(allow: bool | None) -> Iterator[None]:
    """Volumes opened inside read missing chunks as the fill value (``True``) or raise
    ``MissingChunkError`` (``False``); ``None`` keeps the policy in force."""
    token = _ALLOW_MISSING.set(None if allow is None else bool(allow))
    try:
        yield
    finally:
        _ALLOW_MISSING.reset(token)


def with_missing_policy(spec: dict[str, Any], allow_missing: bool) -> dict[str, Any]:
    """``spec`` with TensorStore's ``fill_missing_data_reads`` set on its chunked driver (also
    through ``base`` of adapters such as downsample or cast); a value the spec sets wins."""
    spec = dict(spec)
    if spec.get("driver") in CHUNKED_DRIVERS:
        spec.setdefault("fill_missing_data_reads", bool(allow_missing))
    elif isinstance(spec.get("base"), dict):
        spec["base"] = with_missing_policy(spec["base"], allow_missing)
    return spec


def box_text(slices: Sequence[slice]) -> str:
    """``z 0:32, y 0:64, x 16:32`` (the last axes are named z, y, x)."""
    names = ("c", "z", "y", "x")[-len(slices):] if len(slices) <= 4 else [f"axis{i}" for i in range(len(slices))]
    return ", ".join(f"{n} {s.start}:{s.stop}" for n, s in zip(names, slices))


def _first_line(e: BaseException) -> str:
    import re

    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return re.sub(r"\s*\[source locations=.*$", "", text)


def wait(future: Any) -> Any:
    """``future.result()``; on Ctrl-C the TensorStore operation is cancelled and waited for, so
    nothing is still written after the caller removes its temporary."""
    try:
        return future.result()
    except BaseException:
        future.cancel()
        with contextlib.suppress(BaseException):
            commit = getattr(future, "commit", None)
            (commit if commit is not None else future).result(timeout=60)
        raise


class TensorStoreSource:
    """A TensorStore spec; precomputed XYZC is turned into ZYX and translated to zero.

    Missing chunks raise ``MissingChunkError`` unless ``allow_missing`` (default: the policy of
    ``missing_allowed()``); the spec records the choice, so it travels with pickles."""

    def __init__(self, spec: dict[str, Any], *, store: ts.TensorStore | None = None,
                 allow_missing: bool | None = None):
        self.allow_missing = missing_allowed(allow_missing)
        # a network kvstore (any spec, URL string or dict) gets the policy's retries and time-outs
        self.spec = net.remote_spec(with_missing_policy(spec, self.allow_missing))
        kv = net.spec_kvstore(self.spec)
        self._url = net.kvstore_url(kv) if net.is_remote(kv) else None
        self._store = store
        s = self.store
        self.shape = tuple(int(n) for n in s.shape)
        self.dtype = np.dtype(s.dtype.numpy_dtype)

    @property
    def store(self) -> ts.TensorStore:
        if self._store is None:
            try:
                future = ts.open(self.spec, read=True, context=shared_context())
                s = future.result() if self._url is None else net.wait(future, self._url, "open")
            except net.NetworkError:
                raise
            except Exception as e:  # noqa: BLE001 - re-raised with the spec named
                raise OSError(f"cannot open {self.describe()}: {e}") from None
            self._store = self._view(s)
        return self._store

    def _view(self, s: ts.TensorStore) -> ts.TensorStore:
        """The opened store as this source shows it (ZYX from zero); subclasses crop here."""
        return _to_zyx(s, self.spec)

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        try:
            view = self.store[slices]
            if self._url is not None:
                nbytes = int(np.prod(view.shape)) * self.dtype.itemsize
                return np.asarray(net.wait(view.read(), self._url, "read", nbytes=nbytes))
            return np.asarray(wait(view.read()))
        except net.NetworkError:
            raise
        except (ValueError, RuntimeError, OSError) as e:
            raise read_error(self.describe(), slices, e) from None

    def dimension_units(self) -> list:
        return list(self.store.dimension_units)

    def describe(self) -> str:
        return describe_spec(self.spec)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_store"] = None
        return state


def read_error(where: str, slices: Sequence[slice], e: BaseException) -> OSError:
    """The error of a failed TensorStore read, naming the store, the box and the chunk."""
    msg = _first_line(e)
    if isinstance(e, MissingChunkError):
        return e
    if msg.startswith("NOT_FOUND") and "missing" in msg:
        return MissingChunkError(
            f"{where}: {msg.removeprefix('NOT_FOUND: ')} (reading {box_text(slices)}); a chunk is "
            "missing, so data was lost or the store is incomplete; if missing chunks mean the "
            "fill value here (a sparse store), pass --allow-missing (allow_missing=True)"
        )
    return OSError(f"{where}: cannot read {box_text(slices)} ({msg})")


def _to_zyx(s: ts.TensorStore, spec: dict) -> ts.TensorStore:
    if spec.get("driver") in ("precomputed", PRECOMPUTED):
        if s.rank == 4:
            if s.shape[3] != 1:
                raise ValueError(
                    f"{describe_spec(spec)}: expected one channel, found {s.shape[3]}"
                )
            s = s[..., 0]
        s = s.T  # XYZ -> ZYX
    if s.rank not in (2, 3):
        raise ValueError(f"{describe_spec(spec)}: expected a 3D (or 2D) volume, found rank {s.rank}")
    return s.translate_to[(0,) * s.rank]


def describe_spec(spec: dict) -> str:
    kv = spec.get("kvstore", "")
    if isinstance(kv, dict):
        kv = kv.get("url") or f"{kv.get('driver', '')}://{kv.get('bucket', '')}{kv.get('path', '')}"
    return f"{spec.get('driver', '?')} store {kv}"


PRECOMPUTED = "neuroglancer_precomputed"  # TensorStore's name of the precomputed driver
_DRIVER_NAMES = {"precomputed": PRECOMPUTED}


def spec_from_string(spec: str) -> dict[str, Any]:
    """A TensorStore spec from a path or URL.

    ``DRIVER://URL`` picks the driver (precomputed, zarr3, zarr, n5); a plain URL
    (``file://``, ``memory://``, ``gs://``) opens zarr3; ``https://`` opens precomputed; a local
    directory is recognised by its metadata file (zarr.json, .zarray, attributes.json, info).
    """
    remote_spec = net.remote_spec  # http(s)/gs/s3: the network policy's retries and time-outs

    for driver in ("precomputed", "zarr3", "zarr", "n5"):
        prefix = f"{driver}://"
        if spec.startswith(prefix):
            rest = spec[len(prefix):]
            return remote_spec({"driver": _DRIVER_NAMES.get(driver, driver), "kvstore": _kvstore(rest)})
    if spec.startswith(("http://", "https://")):
        return remote_spec({"driver": PRECOMPUTED, "kvstore": spec.rstrip("/") + "/"})
    if "://" in spec and not spec.startswith("file://"):
        return remote_spec({"driver": "zarr3", "kvstore": spec})
    path = Path(spec[len("file://"):] if spec.startswith("file://") else spec).expanduser()
    if not path.exists():
        why = safeio.missing_reason(path, "no such volume")
        raise FileNotFoundError(f"{path}: {why} (expected a zarr3/zarr/n5/precomputed directory)")
    for marker, driver in (("zarr.json", "zarr3"), (".zarray", "zarr"), ("attributes.json", "n5"), ("info", PRECOMPUTED)):
        if (path / marker).exists():
            return {"driver": driver, "kvstore": {"driver": "file", "path": str(path.resolve()) + "/"}}
    raise ValueError(
        f"{path}: not a recognised volume (expected zarr.json, .zarray, attributes.json or info inside)"
    )


def _kvstore(url: str) -> Any:
    if "://" not in url:
        return {"driver": "file", "path": str(Path(url).expanduser().resolve()) + "/"}
    return url if url.endswith("/") else url + "/"


def _units_to_voxel_size(units: list) -> VoxelSize | None:
    out = []
    for u in units:
        if u is None:
            return None
        mult, unit = u.multiplier, u.base_unit
        scale = {"nm": 1.0, "um": 1e3, "µm": 1e3, "m": 1e9}.get(unit)
        if scale is None:
            return None
        out.append(float(mult) * scale)
    return tuple(out) if out else None  # type: ignore[return-value]


# ----------------------------------------------------------------------------- Volume
class Volume:
    """A ZYX volume with ``shape``, ``dtype``, ``voxel_size`` (z, y, x nm, or None when unknown)
    and ``read(box)``."""

    def __init__(
        self,
        source: Source,
        voxel_size: Sequence[float] | None = None,
        *,
        origin: Sequence[int] | None = None,
        shape: Sequence[int] | None = None,
        name: str | None = None,
    ):
        self.source = source
        nd = len(source.shape)
        self.voxel_size: tuple[float, ...] | None = _check_voxel_size(
            voxel_size, nd, source.describe()
        )
        self.origin = tuple(int(o) for o in ((0,) * nd if origin is None else origin))
        self.shape: tuple[int, ...] = tuple(
            int(s) for s in (np.subtract(source.shape, self.origin) if shape is None else shape)
        )
        if any(o < 0 or o + s > n for o, s, n in zip(self.origin, self.shape, source.shape)):
            raise ValueError(
                f"{source.describe()}: window origin {self.origin} shape {self.shape} "
                f"exceeds the source shape {tuple(source.shape)}"
            )
        self.name = name or source.describe()

    # -- constructors
    @classmethod
    def open(
        cls,
        spec_or_path: str | os.PathLike | dict,
        voxel_size: Sequence[float] | None = None,
        *,
        allow_missing: bool | None = None,
    ) -> Volume:
        """Open a zarr3 path or any TensorStore spec (dict or URL string).

        ``voxel_size`` (z, y, x nm) overrides what the store records; without either the
        Volume's ``voxel_size`` is None. A missing chunk raises ``MissingChunkError`` when read
        unless ``allow_missing=True`` (a sparse store; default: ``missing_allowed()``).
        """
        spec = dict(spec_or_path) if isinstance(spec_or_path, dict) else spec_from_string(os.fspath(spec_or_path))
        src = TensorStoreSource(spec, allow_missing=allow_missing)
        vs = voxel_size if voxel_size is not None else _units_to_voxel_size(src.dimension_units())
        return cls(src, vs)

    @classmethod
    def from_array(
        cls, array: np.ndarray, voxel_size: Sequence[float] | None = None, name: str | None = None
    ) -> Volume:
        return cls(ArraySource(np.asarray(array)), voxel_size, name=name)

    @classmethod
    def from_h5(
        cls, path: str | os.PathLike, key: str, voxel_size: Sequence[float] | None = None
    ) -> Volume:
        return cls(H5Source(path, key), voxel_size)

    def with_voxel_size(self, voxel_size: Sequence[float] | None) -> Volume:
        """The same window of the same source with another voxel size (None: unknown)."""
        return Volume(self.source, voxel_size, origin=self.origin, shape=self.shape, name=self.name)

    def require_voxel_size(self, what: str = "this use") -> tuple[float, ...]:
        """The voxel size, or a ValueError naming the volume and ``what`` needs it."""
        if self.voxel_size is None:
            raise ValueError(
                f"{self.name}: {what} needs a voxel size, and none is recorded in the store "
                "(dimension_units) or given; pass voxel_size=(z, y, x) in nm"
            )
        return self.voxel_size

    # -- properties
    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.source.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __repr__(self) -> str:
        return f"Volume({self.name}, shape={self.shape}, dtype={self.dtype}, voxel_size={self.voxel_size})"

    # -- views and reads
    def window(self, origin: Sequence[int] | None = None, shape: Sequence[int] | None = None, *, z: tuple[int, int] | None = None) -> Volume:
        """A view of part of this volume (coordinates relative to this view)."""
        if z is not None:
            z0, z1 = z
            origin = (z0,) + (0,) * (self.ndim - 1)
            shape = (z1 - z0,) + self.shape[1:]
        origin = tuple(int(o) for o in ((0,) * self.ndim if origin is None else origin))
        shape = tuple(int(s) for s in (np.subtract(self.shape, origin) if shape is None else shape))
        if any(o < 0 or s < 0 or o + s > n for o, s, n in zip(origin, shape, self.shape)):
            raise ValueError(f"{self.name}: window origin {origin} shape {shape} exceeds shape {self.shape}")
        return Volume(
            self.source,
            self.voxel_size,
            origin=tuple(a + b for a, b in zip(self.origin, origin)),
            shape=shape,
            name=self.name,
        )

    def _slices(self, box: Box) -> tuple[slice, ...]:
        if isinstance(box, tuple) and len(box) == 2 and all(isinstance(b, (tuple, list, np.ndarray)) for b in box):
            box = tuple(slice(int(a), int(b)) for a, b in zip(*box))
        box = tuple(box)
        if len(box) != self.ndim:
            raise ValueError(f"{self.name}: box needs {self.ndim} axes; got {box!r}")
        out = []
        for ax, (b, n, o) in enumerate(zip(box, self.shape, self.origin)):
            if isinstance(b, (int, np.integer)):
                b = slice(int(b), int(b) + 1)  # one section, kept as an axis of length 1
            if b.step not in (None, 1):
                raise ValueError(f"{self.name}: box steps must be 1; axis {ax} has step {b.step}")
            # boxes are absolute: None is the border; negative or past the end is an error
            # (never wrapped or clamped, so a box computed off the volume cannot read elsewhere)
            start = 0 if b.start is None else int(b.start)
            stop = n if b.stop is None else int(b.stop)
            if not 0 <= start <= stop <= n:
                raise IndexError(f"{self.name}: box {box!r} is outside the volume shape {self.shape} on axis {ax}")
            out.append(slice(start + o, stop + o))
        return tuple(out)

    def read(self, box: Box | None = None) -> np.ndarray:
        """Read a box (a tuple of unit-step slices, or ``(start, stop)``) as a NumPy array."""
        slices = self._slices(box if box is not None else tuple(slice(0, n) for n in self.shape))
        return self.source.read(slices)

    def __getitem__(self, box) -> np.ndarray:
        if not isinstance(box, tuple):
            box = (box,)
        box = box + (slice(None),) * (self.ndim - len(box))
        return self.read(box)


def _check_voxel_size(voxel_size, nd: int, where: str) -> tuple[float, ...] | None:
    if voxel_size is None:
        return None
    vs = tuple(voxel_size)
    if len(vs) != nd:
        raise ValueError(f"{where}: voxel_size needs {nd} values (z, y, x nm); got {vs}")
    vs = tuple(float(v) for v in vs)
    if not all(np.isfinite(v) and v > 0 for v in vs):
        raise ValueError(f"{where}: voxel sizes must be positive; got {vs}")
    return vs


# ----------------------------------------------------------------------------- writing
def default_chunks(shape: Sequence[int], target: Sequence[int] = (32, 128, 128)) -> tuple[int, ...]:
    t = tuple(target)[-len(shape):]
    return tuple(max(1, min(int(s), int(c))) for s, c in zip(shape, t))


def zarr3_spec(
    path: str | os.PathLike,
    dtype: np.dtype,
    shape: Sequence[int],
    voxel_size: Sequence[float] | None,
    chunks: Sequence[int] | None = None,
) -> dict:
    """Spec of a zstd-compressed zarr3 array whose dimension units carry the voxel size (none
    when ``voxel_size`` is None). Chunks equal to the fill value are stored too, so a missing
    chunk always means lost data (see ``MissingChunkError``)."""
    chunks = tuple(chunks or default_chunks(shape))
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(Path(path).resolve()) + "/"},
        "store_data_equal_to_fill_value": True,
        "metadata": {
            "shape": [int(s) for s in shape],
            "data_type": np.dtype(dtype).name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 3}}],
            "dimension_names": ["z", "y", "x"][-len(shape):],
            "fill_value": 0,
        },
    }
    if voxel_size is not None:
        spec["schema"] = {"dimension_units": [[float(v), "nm"] for v in voxel_size]}
    return spec


def copy_boxes(
    shape: Sequence[int], chunks: Sequence[int], itemsize: int, budget: int | None = None
) -> tuple[int, ...]:
    """The shape of the boxes a copy reads and writes at once: whole chunks, grown along x, then
    y, then z while the box stays within ``budget`` bytes (``COPY_BYTES``; at least one chunk),
    so memory is bounded in all three axes whatever the section size."""
    budget = COPY_BYTES if budget is None else int(budget)
    box = [max(1, min(int(c), int(n))) for c, n in zip(chunks, shape)]
    for ax in reversed(range(len(box))):
        other = int(np.prod([b for i, b in enumerate(box) if i != ax])) * max(1, int(itemsize))
        k = max(1, budget // max(1, other * box[ax]))
        box[ax] = max(box[ax], min(int(shape[ax]), box[ax] * k))
    return tuple(box)


def write_zarr3(
    path: str | os.PathLike,
    data: np.ndarray | Volume,
    voxel_size: Sequence[float] | None = None,
    *,
    chunks: Sequence[int] | None = None,
    slab: int | None = None,
    progress=None,
) -> Volume:
    """Write an array or Volume to a zarr3 store at ``path`` (temporary name, then rename).

    Data are copied box by box (``copy_boxes``: whole chunks, at most ``COPY_BYTES`` per box, or
    ``slab`` z sections of whole chunks), so memory stays bounded in all three axes; a Volume's
    voxel size is kept unless ``voxel_size`` is given, and without either the store records none.
    Refuses to replace an existing path; temporaries of dead runs beside it are removed first.
    ``progress`` is called with the number of z sections written once a z range is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    safeio.clean_stale(path)
    if os.path.lexists(path):
        raise FileExistsError(f"{path}: already exists; refusing to overwrite")
    tmp = safeio.temp_path(path)
    try:
        write_zarr3_into(tmp, data, voxel_size, chunks=chunks, slab=slab, progress=progress)
        os.replace(tmp, path)
    except BaseException:
        safeio.remove_tree(tmp)
        raise
    return Volume.open(path)


def write_zarr3_into(
    path: str | os.PathLike,
    data: np.ndarray | Volume,
    voxel_size: Sequence[float] | None = None,
    *,
    chunks: Sequence[int] | None = None,
    slab: int | None = None,
    progress=None,
) -> None:
    """``write_zarr3`` without the temporary: creates the store at ``path`` (itself a temporary
    of the caller, which renames it); Ctrl-C is honoured between two boxes."""
    path = Path(path)
    if isinstance(data, Volume) and voxel_size is None:
        voxel_size = data.voxel_size
    shape, dtype = tuple(data.shape), np.dtype(data.dtype)
    voxel_size = _check_voxel_size(voxel_size, len(shape), str(path))
    if dtype.kind not in "uifb":
        raise TypeError(f"{path}: unsupported dtype {dtype} (expected an integer, float or bool array)")
    path.mkdir(parents=True)
    spec = zarr3_spec(path, dtype, shape, voxel_size, chunks)
    chunk_shape = spec["metadata"]["chunk_grid"]["configuration"]["chunk_shape"]
    store = wait(ts.open(spec, create=True, context=shared_context()))
    if slab:
        box = (max(1, int(slab)), *shape[1:])
    else:
        box = copy_boxes(shape, chunk_shape, dtype.itemsize)
    with safeio.deferred_interrupts():
        for z0 in range(0, shape[0] if shape else 1, box[0]):
            z1 = min(shape[0], z0 + box[0])
            rest = [range(0, n, b) for n, b in zip(shape[1:], box[1:])]
            for starts in itertools.product(*rest):
                sl = (slice(z0, z1),) + tuple(slice(a, min(n, a + b)) for a, n, b in zip(starts, shape[1:], box[1:]))
                block = data.read(sl) if isinstance(data, Volume) else data[sl]
                wait(store[sl].write(np.ascontiguousarray(block)))
                safeio.pause_point("write")
                safeio.checkpoint()
            if progress is not None:
                progress(z1 - z0)
    del store


def usual_mode(path: str | os.PathLike) -> None:
    """Give a ``mkdtemp``/``mkstemp`` result (0700/0600) the mode a plain create would have
    under the process umask, so a renamed output is as readable as any other file there."""
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask)


def replace_path(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move a finished ``tmp`` (file or folder) onto ``path`` (``safeio.replace_path``: an
    existing folder waits aside until the new one is in place, and is restored on failure)."""
    safeio.replace_path(tmp, path)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON to a temporary name, then rename."""
    path = Path(path)
    tmp = safeio.temp_path(path)
    try:
        with open(tmp, "x") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
