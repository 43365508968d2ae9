"""Read and write label volumes in the formats people keep them in, always as ZYX arrays.

A location is a string: ``file.h5:key`` (also ``.hdf``/``.hdf5``; ``file.npz:key``), a TIFF
stack (``.tif``/``.tiff``), NIfTI (``.nii``/``.nii.gz``, stored XYZ on disk), ``.npy``, or a
TensorStore volume: a zarr3 / zarr / N5 / precomputed directory, a ``DRIVER://path`` string
(``zarr3://``, ``zarr://``, ``n5://``, ``precomputed://``) or a URL. Outputs pick the format
from the suffix: ``.zarr3`` (or no known suffix) is zarr3, ``.zarr`` is zarr v2, ``.n5`` is N5.
Every write goes to a temporary name in the destination folder (``safeio.temp_path``: it
carries the process id, so a later run removes what a killed one left) and is then renamed, with
the output locked (``safeio.OutputLock``) meanwhile. ``overwrite=True`` replaces a file of a
file format, or a folder that holds nothing but a store's own files, never a folder with other
content. Stores are read with missing chunks as errors unless ``allow_missing=True``. A voxel
size is recorded where it is known (zarr3/N5 dimension units, zarr ``.zattrs``, HDF5
``resolution``, TIFF metadata, NIfTI zooms); where it is not, nothing is recorded, except that
precomputed (whose format requires one) records 1 nm and NIfTI zooms of 1 µm with unknown units.

Example:
    >>> import numpy as np, tempfile, os
    >>> from neurons_jax import labelio
    >>> d = tempfile.mkdtemp()
    >>> dst = labelio.parse_output(os.path.join(d, "seg.h5:labels"))
    >>> labelio.write_labels(dst, np.arange(8, dtype=np.uint32).reshape(2, 2, 2), voxel_size=(40, 8, 8))
    >>> lv = labelio.open_labels(dst.text)
    >>> lv.format, lv.shape, lv.voxel_size, int(lv.read().sum())
    ('hdf5', (2, 2, 2), (40.0, 8.0, 8.0), 28)
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import safeio
from .volumes import (
    PRECOMPUTED,
    TensorStoreSource,
    Volume,
    _h5_keys,
    _units_to_voxel_size,
    replace_path,
    spec_from_string,
    wait,
)

FILE_FORMATS = ("hdf5", "npz", "npy", "tiff", "nifti")
STORE_FORMATS = ("zarr3", "zarr", "n5", "precomputed")
DEFAULT_KEY = "labels"  # dataset name of an HDF5 / npz output given without :key
Progress = Callable[[int], Any] | None

_KEYED = re.compile(r"^(?P<path>.+\.(?P<ext>h5|hdf5|hdf|npz))(?::(?P<key>[^:]*))?$", re.IGNORECASE)
_PREFIXES = {"zarr3": "zarr3", "zarr": "zarr", "n5": "n5", "precomputed": "precomputed",
             PRECOMPUTED: "precomputed"}


class LabelIOError(ValueError):
    """A label file that cannot be used: the message names the file and what was wrong."""


@dataclass(frozen=True)
class Location:
    """Where a label volume lives: ``format``, a local ``path`` or a ``url``, an optional ``key``."""

    text: str
    format: str
    path: Path | None = None
    key: str | None = None
    url: str | None = None

    def __str__(self) -> str:
        return self.text


def _suffix_format(path: str) -> str | None:
    low = path.lower()
    for suffixes, fmt in (((".tif", ".tiff"), "tiff"), ((".nii", ".nii.gz"), "nifti"), ((".npy",), "npy")):
        if low.endswith(suffixes):
            return fmt
    return None


def _keyed(text: str) -> Location | None:
    m = _KEYED.match(text)
    if m is None:
        return None
    fmt = "npz" if m["ext"].lower() == "npz" else "hdf5"
    return Location(text, fmt, Path(m["path"]).expanduser(), m["key"] or None)


def parse_input(text: str) -> Location:
    """The location of an existing label volume (nothing is opened yet)."""
    loc = _keyed(text)
    if loc is not None:
        return loc
    if (fmt := _suffix_format(text)) is not None and "://" not in text:
        return Location(text, fmt, Path(text).expanduser())
    spec = spec_from_string(text)  # FileNotFoundError / ValueError name the path
    fmt = _PREFIXES.get(spec["driver"], spec["driver"])
    kv = spec["kvstore"]
    if isinstance(kv, dict) and kv.get("driver") == "file":
        return Location(text, fmt, Path(kv["path"]))
    return Location(text, fmt, url=str(kv))


def parse_output(text: str) -> Location:
    """Where to write: the format follows the suffix; no known suffix means zarr3."""
    loc = _keyed(text)
    if loc is not None:
        return Location(text, loc.format, loc.path, loc.key or DEFAULT_KEY)
    if (fmt := _suffix_format(text)) is not None and "://" not in text:
        return Location(text, fmt, Path(text).expanduser())
    for prefix, fmt in _PREFIXES.items():
        if text.startswith(prefix + "://"):
            rest = text[len(prefix) + 3:]
            if "://" in rest and not rest.startswith("file://"):
                return Location(text, fmt, url=rest)
            return Location(text, fmt, Path(rest.removeprefix("file://")).expanduser())
    if "://" in text and not text.startswith("file://"):
        raise LabelIOError(f"{text}: only local outputs are written; got a URL")
    path = Path(text.removeprefix("file://")).expanduser()
    low = path.name.lower()
    fmt = "zarr" if low.endswith(".zarr") else "n5" if low.endswith(".n5") else "zarr3"
    return Location(text, fmt, path)


# ----------------------------------------------------------------------------- reading
@dataclass
class LabelVolume:
    """An opened label volume: ZYX ``volume`` (read slab by slab), known ``voxel_size`` or None
    (the volume's own voxel size is the same)."""

    location: Location
    volume: Volume
    voxel_size: tuple[float, ...] | None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. NIfTI affine and header

    @property
    def format(self) -> str:
        return self.location.format

    @property
    def shape(self) -> tuple[int, ...]:
        return self.volume.shape

    @property
    def dtype(self) -> np.dtype:
        return self.volume.dtype

    def read(self, progress: Progress = None, slab: int | None = None) -> np.ndarray:
        """The whole volume, read in slabs along the first axis (``progress(n)`` after each)."""
        shape = self.shape
        slab = slab or max(1, (64 << 20) // max(1, int(np.prod(shape[1:])) * self.dtype.itemsize))
        out = np.empty(shape, self.dtype)
        rest = tuple(slice(0, n) for n in shape[1:])
        for z0 in range(0, shape[0], slab):
            z1 = min(shape[0], z0 + slab)
            out[z0:z1] = self.volume.read((slice(z0, z1), *rest))
            if progress is not None:
                progress(z1 - z0)
        return out


def _round_nm(values: Sequence[float]) -> tuple[float, ...] | None:
    vs = tuple(float(f"{float(v):.6g}") for v in values)
    return vs if vs and all(np.isfinite(v) and v > 0 for v in vs) else None


def _pick_key(path: Path, key: str | None, keys: list[str], what: str) -> str:
    if key is None:
        if len(keys) == 1:
            return keys[0]
        found = ", ".join(keys) if keys else "none"
        raise LabelIOError(f"{path}: no {what} key given and the file holds {len(keys)} datasets "
                           f"({found}); pass {path}:KEY")
    if key not in keys:
        raise LabelIOError(f"{path}: {what} key {key!r} not found; keys present: {', '.join(keys) or 'none'}")
    return key


def _open_h5(loc: Location) -> LabelVolume:
    import h5py

    from .volumes import H5Source

    path = loc.path
    try:
        with h5py.File(path, "r") as f:
            key = _pick_key(path, loc.key, _h5_keys(f), "HDF5")
            attrs = dict(f[key].attrs)
    except OSError as e:
        raise LabelIOError(f"{path}: cannot read as HDF5 ({str(e).splitlines()[0]})") from None
    src = H5Source(path, key)
    vs = None
    for name, scale in (("resolution", 1.0), ("voxel_size", 1.0), ("element_size_um", 1e3)):
        v = attrs.get(name)
        if v is not None and np.size(v) == len(src.shape):
            vs = _round_nm(np.asarray(v, float).ravel() * scale)
            break
    return _labels(Location(f"{path}:{key}", "hdf5", path, key), src, vs)


def _labels(loc: Location, source, vs) -> LabelVolume:
    nd = len(source.shape)
    if nd not in (2, 3):
        raise LabelIOError(f"{loc}: expected a 3D (or 2D) label volume; found shape {tuple(source.shape)}")
    return LabelVolume(loc, Volume(source, vs, name=loc.text), vs)


def _array_labels(loc: Location, arr: np.ndarray, vs, **extra) -> LabelVolume:
    from .volumes import ArraySource

    if arr.ndim not in (2, 3):
        raise LabelIOError(f"{loc}: expected a 3D (or 2D) label volume; found shape {arr.shape}")
    lv = _labels(loc, ArraySource(arr), vs)
    lv.extra.update(extra)
    return lv


def open_labels(text: str | Location, *, allow_missing: bool | None = None) -> LabelVolume:
    """Open a label volume for reading; errors name the file and what was found. A store's
    missing chunks are errors when read unless ``allow_missing`` (a sparse store)."""
    loc = text if isinstance(text, Location) else parse_input(text)
    if loc.path is not None and loc.format in FILE_FORMATS and not loc.path.exists():
        raise FileNotFoundError(f"{loc.path}: {safeio.missing_reason(loc.path)}")
    if loc.path is not None and loc.format in FILE_FORMATS and loc.path.is_dir():
        raise LabelIOError(f"{loc.path}: is a directory, expected a {loc.format} file")
    if loc.format == "hdf5":
        return _open_h5(loc)
    try:
        if loc.format == "npy":
            arr = np.load(loc.path, mmap_mode="r", allow_pickle=False)
            return _array_labels(loc, arr, None)
        if loc.format == "npz":
            with np.load(loc.path, allow_pickle=False) as z:
                key = _pick_key(loc.path, loc.key, list(z.files), "npz")
                arr = z[key]
            return _array_labels(Location(f"{loc.path}:{key}", "npz", loc.path, key), arr, None)
        if loc.format == "tiff":
            return _open_tiff(loc)
        if loc.format == "nifti":
            return _open_nifti(loc)
    except (LabelIOError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - decoders raise their own types; name the file instead
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise LabelIOError(f"{loc.path}: cannot read as {loc.format} ({msg})") from None
    spec = spec_from_string(loc.text)
    src = TensorStoreSource(spec, allow_missing=allow_missing)
    vs = _round_nm(_units_to_voxel_size(src.dimension_units()) or ())
    if vs is None and loc.format == "zarr" and loc.path is not None:
        vs = _zattrs_voxel_size(loc.path, len(src.shape))
    return _labels(loc, src, vs)


def _open_tiff(loc: Location) -> LabelVolume:
    import tifffile

    with tifffile.TiffFile(loc.path) as tif:
        arr = tif.asarray()
        meta = tif.shaped_metadata[0] if tif.shaped_metadata else {}
    vs = meta.get("voxel_size_nm")
    return _array_labels(loc, arr, _round_nm(vs) if vs is not None and len(vs) == arr.ndim else None)


def _open_nifti(loc: Location) -> LabelVolume:
    import nibabel as nib

    from .datasets._sources import nifti_zooms_nm

    img = nib.load(loc.path)
    proxy = img.dataobj
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    if (slope, inter) != (1.0, 0.0):
        raise LabelIOError(f"{loc.path}: NIfTI data are scaled (scl_slope {slope}, scl_inter {inter}); "
                           "label ids must be stored unscaled")
    arr = np.asarray(proxy)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    arr = np.ascontiguousarray(arr.T)  # XYZ on disk -> ZYX
    zooms, stated = nifti_zooms_nm(img.header, arr.ndim)
    vs = _round_nm(zooms[::-1]) if stated else None
    return _array_labels(loc, arr, vs, affine=img.affine, header=img.header)


def _zattrs_voxel_size(path: Path, nd: int) -> tuple[float, ...] | None:
    import json

    try:
        v = json.loads((path / ".zattrs").read_text()).get("resolution")
    except (OSError, ValueError):
        return None
    return _round_nm(v) if isinstance(v, list) and len(v) == nd else None


# ----------------------------------------------------------------------------- safety
def _paths(loc: Location) -> Path | None:
    if loc.path is None:
        return None
    try:
        return loc.path.expanduser().resolve()
    except (RuntimeError, OSError):  # a symlink loop: compare the path as written
        return Path(os.path.abspath(loc.path.expanduser()))


def same_storage(a: Location, b: Location) -> bool:
    """True when writing ``b`` could touch ``a``: the same file (any key), or nested folders."""
    if a.url is not None or b.url is not None:
        ua, ub = (a.url or "").rstrip("/"), (b.url or "").rstrip("/")
        return bool(ua) and ua == ub
    pa, pb = _paths(a), _paths(b)
    if pa == pb or pa in pb.parents or pb in pa.parents:
        return True
    try:
        return pa.exists() and pb.exists() and os.path.samefile(pa, pb)
    except OSError:
        return False


def output_exists(loc: Location) -> bool:
    """True when ``loc`` already holds data (for HDF5: the file holds the key); a symlink
    counts, even a dangling one."""
    if loc.path is None or not os.path.lexists(loc.path):
        return False
    if loc.path.is_symlink():
        return True
    if loc.format != "hdf5" or not loc.path.is_file():
        return True
    import h5py

    try:
        with h5py.File(loc.path, "r") as f:
            return loc.key in f
    except OSError:
        return True


# ----------------------------------------------------------------------------- writing
def tmp_name(path: Path, tag: str = "tmp") -> Path:
    """A hidden sibling of ``path`` with the same suffix, named after this process
    (``safeio.temp_path``; same folder, so renames are atomic)."""
    return safeio.temp_path(path, tag)


def replace_kind(loc: Location) -> str:
    """What ``overwrite`` may replace at ``loc`` (``safeio.check_replaceable``'s kind)."""
    return "store" if loc.format in STORE_FORMATS else "file"


def check_target(loc: Location) -> None:
    """Outputs are local paths, and not symlinks (a loop, or a link a rename would replace)."""
    if loc.path is None:
        raise LabelIOError(f"{loc}: only local outputs are written")
    if loc.path.is_symlink():
        what = "a symlink loop" if safeio.symlink_loop(loc.path) else f"a symlink (to {os.readlink(loc.path)})"
        raise LabelIOError(f"{loc.path}: is {what}; refusing to write through it; give the real path")


def check_output(loc: Location, overwrite: bool, tool: str = "neurons-jax") -> None:
    """Refuse an output that exists unless ``overwrite``, and with it anything but what this
    program writes (a file of a file format, a folder holding only a store's files)."""
    check_target(loc)
    if output_exists(loc):
        if not overwrite:
            raise FileExistsError(f"{loc}: already exists; pass --overwrite to replace it")
        safeio.check_replaceable(loc.path, replace_kind(loc), tool)


def write_labels(
    loc: Location,
    array: np.ndarray,
    *,
    voxel_size: Sequence[float] | None = None,
    like: LabelVolume | None = None,
    overwrite: bool = False,
    progress: Progress = None,
) -> None:
    """Write a ZYX label array to ``loc`` through a temporary name, then rename.

    ``like`` is the volume it came from: its NIfTI affine and header are reused for NIfTI
    output. An existing output is refused unless ``overwrite`` (and even then a folder with
    files no store has); an HDF5 file that lacks the key keeps its other datasets. The output
    is locked while written; Ctrl-C removes the temporary and leaves the old output as it was.
    """
    check_target(loc)  # existence is checked under the lock
    path = loc.path
    path.parent.mkdir(parents=True, exist_ok=True)
    vs = tuple(float(v) for v in voxel_size) if voxel_size is not None else None
    with safeio.OutputLock(path, "neurons-jax write_labels"):
        safeio.clean_stale(path)
        check_output(loc, overwrite)
        tmp = tmp_name(path)
        try:
            if loc.format in STORE_FORMATS:
                _write_store(loc.format, tmp, array, vs, progress)
            else:
                _WRITERS[loc.format](loc, tmp, array, vs, like)
                if progress is not None:
                    progress(array.shape[0])
            replace_path(tmp, path)
        except BaseException:
            remove_quietly(tmp)
            raise


def remove_quietly(path: Path) -> None:
    """Remove a temporary file or folder, ignoring errors."""
    safeio.remove_tree(path)


def _write_h5(loc, tmp, array, vs, like) -> None:
    import h5py

    if loc.path.is_file():
        try:
            with h5py.File(loc.path, "r"):
                pass
            shutil.copy2(loc.path, tmp)  # keep the other datasets of an existing file
        except OSError:
            pass
    with h5py.File(tmp, "a") as f:
        if loc.key in f:
            del f[loc.key]
        chunks = tuple(min(n, c) for n, c in zip(array.shape, (32, 128, 128)[-array.ndim:])) if array.size else None
        d = f.create_dataset(loc.key, shape=array.shape, dtype=array.dtype, chunks=chunks,
                             compression="gzip", compression_opts=1)
        if vs is not None:
            d.attrs["resolution"] = np.asarray(vs, float)
        # slab by slab, with Ctrl-C deferred to between slabs: h5py swallows a KeyboardInterrupt
        # that lands inside one of its calls, so an interrupt is honoured only here
        cz = chunks[0] if chunks else 1
        step = cz * max(1, (64 << 20) // max(1, cz * int(np.prod(array.shape[1:])) * array.dtype.itemsize))
        with safeio.deferred_interrupts():
            for z0 in range(0, array.shape[0], step):
                d[z0:z0 + step] = array[z0:z0 + step]
                safeio.pause_point("write")
                safeio.checkpoint()


def _write_npy(loc, tmp, array, vs, like) -> None:
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def _write_npz(loc, tmp, array, vs, like) -> None:
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **{loc.key: np.ascontiguousarray(array)})


def _write_tiff(loc, tmp, array, vs, like) -> None:
    import tifffile

    meta: dict[str, Any] = {"axes": "ZYX"[-array.ndim:]}
    if vs is not None:
        meta["voxel_size_nm"] = list(vs)
    tifffile.imwrite(tmp, array, compression="zlib", metadata=meta, bigtiff=array.nbytes > 2**31)


def _write_nifti(loc, tmp, array, vs, like) -> None:
    import nibabel as nib

    data = array.T  # ZYX -> XYZ on disk
    if like is not None and "header" in like.extra and like.shape == array.shape:
        header = like.extra["header"].copy()
        header.set_data_dtype(array.dtype)
        header.set_slope_inter(1.0, 0.0)
        img = nib.Nifti1Image(data, like.extra["affine"], header=header, dtype=array.dtype)
    else:
        zooms = [v / 1e3 for v in (vs or (1e3,) * array.ndim)][::-1]  # nm -> micron, XYZ
        affine = np.diag([*zooms, *([1.0] * (4 - len(zooms)))])
        img = nib.Nifti1Image(data, affine, dtype=array.dtype)
        img.header.set_xyzt_units("micron" if vs is not None else "unknown")
    nib.save(img, tmp)


_WRITERS = {"hdf5": _write_h5, "npy": _write_npy, "npz": _write_npz, "tiff": _write_tiff,
            "nifti": _write_nifti}


def _store_spec(fmt: str, tmp: Path, array: np.ndarray, vs: tuple[float, ...] | None) -> dict:
    kv = {"driver": "file", "path": str(tmp.resolve()) + "/"}
    dtype, shape = np.dtype(array.dtype), tuple(array.shape)
    if fmt == "precomputed":
        size = list(shape[::-1])  # XYZ
        enc = "compressed_segmentation" if dtype in (np.uint32, np.uint64) else "raw"
        scale = {"size": size, "resolution": list(vs[::-1]), "encoding": enc,
                 "chunk_size": [min(64, n) for n in size]}
        if enc == "compressed_segmentation":
            scale["compressed_segmentation_block_size"] = [8, 8, 8]
        return {"driver": PRECOMPUTED, "kvstore": kv, "scale_metadata": scale,
                "multiscale_metadata": {"type": "segmentation", "data_type": dtype.name, "num_channels": 1}}
    chunks = [min(n, c) for n, c in zip(shape, (32, 128, 128)[-len(shape):])]
    schema: dict[str, Any] = {"dtype": dtype.name, "domain": {"shape": list(shape)},
                              "chunk_layout": {"chunk": {"shape": chunks}}}
    if fmt == "n5":
        if vs is not None:
            schema["dimension_units"] = [[v, "nm"] for v in vs]
        return {"driver": "n5", "kvstore": kv, "schema": schema,
                "metadata": {"compression": {"type": "gzip", "level": 1}}}
    schema["fill_value"] = 0
    return {"driver": "zarr", "kvstore": kv, "schema": schema,
            "metadata": {"compressor": {"id": "zstd", "level": 3}}}


def _complete(spec: dict) -> dict:
    """Chunks equal to the fill value are stored too: a missing chunk then means lost data."""
    return {**spec, "store_data_equal_to_fill_value": True}


def _write_store(fmt: str, tmp: Path, array: np.ndarray, vs, progress: Progress) -> None:
    """zarr3 / zarr / N5 / precomputed through TensorStore, slab by slab along z."""
    import json

    import tensorstore as ts

    from .volumes import shared_context, write_zarr3_into

    nd = array.ndim
    if fmt == "zarr3":
        write_zarr3_into(tmp, array, vs, progress=progress)  # no voxel size recorded when unknown
        return
    if fmt == "precomputed" and nd == 2:
        array = array[None]
    vs_w = vs
    if fmt == "precomputed":  # the format requires a resolution: 1 nm where it is unknown
        vs_w = vs or (1.0,) * array.ndim
        if len(vs_w) == 2:
            vs_w = (1.0, *vs_w)
    store = wait(ts.open(_complete(_store_spec(fmt, tmp, array, vs_w)), create=True, context=shared_context()))
    if fmt == "precomputed":
        store = store[..., 0].T  # XYZC -> ZYX
    slab = max(1, (64 << 20) // max(1, int(np.prod(array.shape[1:])) * array.dtype.itemsize))
    with safeio.deferred_interrupts():
        for z0 in range(0, array.shape[0], slab):
            z1 = min(array.shape[0], z0 + slab)
            wait(store[z0:z1].write(np.ascontiguousarray(array[z0:z1])))
            safeio.pause_point("write")
            safeio.checkpoint()
            if progress is not None and array.ndim == nd:
                progress(z1 - z0)
    if progress is not None and array.ndim != nd:  # a 2D array written as one z section
        progress(array.shape[1])
    if fmt == "zarr" and vs is not None:
        (tmp / ".zattrs").write_text(json.dumps({"resolution": list(vs), "units": ["nm"] * nd}))
