"""What the dataset readers share: roots, HDF5 keys, dtype checks, splits, prepared roots.

Every reader builds a list of :class:`Entry` (a full image/label pair with its role:
``trainval``, ``train``, ``valid`` or ``test``) from either native files or a prepared root
(``metadata.json`` + zarr3 stores), then :func:`make_dataset` cuts the requested split.
Splits by z are views (``Volume.window``): train is ``[0, n - n_valid)``, valid is
``[n - n_valid, n)`` with ``n_valid = max(1, round(n * valid_fraction))``, never overlapping.

Example:
    >>> z_split(50, 0.2, "AC4")
    ((0, 40), (40, 50))
    >>> z_split(5, 0.0, "AC4")
    ((0, 5), (5, 5))
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..volumes import H5Source, Volume, _h5_keys
from .base import SPLITS, Dataset, VolumePair

METADATA = "metadata.json"
FORMAT = "neurons_jax.prepared"
IMAGE_DTYPES = ("uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64")


@dataclass
class Entry:
    """A whole volume pair of a dataset and the split(s) it feeds."""

    pair: VolumePair
    role: str  # trainval (z split) | train | valid | test | tr (MitoEM2 imagesTr, split by file)
    group: str = ""  # MitoEM2 subset, CREMI sample, ...
    sources: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- roots, files
def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split


def check_root(root: str | os.PathLike, kind: str, expected: str) -> Path:
    if root is None:
        raise ValueError(f"{kind}: root is required (expected {expected})")
    path = Path(root).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{kind}: root {path} does not exist (expected {expected})")
    if not path.is_dir():
        raise NotADirectoryError(f"{kind}: root {path} is not a directory (expected {expected})")
    return path


def is_prepared(root: Any) -> bool:
    try:
        return isinstance(root, (str, os.PathLike)) and (Path(root) / METADATA).is_file()
    except OSError:
        return False


def find_file(root: Path, names: Iterable[str], what: str) -> Path:
    """The first of ``names`` (file names or glob patterns) present in ``root``."""
    names = list(names)
    for name in names:
        hits = sorted(root.glob(name)) if any(c in name for c in "*?[") else [root / name]
        hits = [h for h in hits if h.is_file()]
        if hits:
            return hits[0]
    present = sorted(p.name for p in root.iterdir())[:20]
    raise FileNotFoundError(
        f"{root}: no {what} found (expected one of {', '.join(names)}); found {present or 'nothing'}"
    )


def h5_keys(path: str | os.PathLike) -> list[str]:
    """Names of all datasets (arrays) in an HDF5 file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return _h5_keys(f)
    except OSError as e:
        raise OSError(f"{path}: not a readable HDF5 file ({e})") from None


def find_h5_key(path: str | os.PathLike, prefer: Sequence[str] = (), what: str = "volume") -> str:
    """The key of the 3D dataset in an HDF5 file: the only one, else the first preferred name."""
    import h5py

    keys = h5_keys(path)
    with h5py.File(path, "r") as f:
        volumes = [k for k in keys if f[k].ndim == 3]
    if len(volumes) == 1:
        return volumes[0]
    for name in prefer:
        if name in volumes:
            return name
    if not volumes:
        raise KeyError(f"{path}: no 3D dataset for the {what}; keys present: {keys or 'none'}")
    raise KeyError(
        f"{path}: several 3D datasets and none of the expected {what} keys "
        f"({', '.join(prefer)}); keys present: {volumes}"
    )


def h5_attr(path: str | os.PathLike, key: str, name: str) -> Any:
    import h5py

    with h5py.File(path, "r") as f:
        return f[key].attrs.get(name)


def open_file(path: str | os.PathLike, voxel_size: Sequence[float] | None, what: str,
              key: str | None = None, prefer: Sequence[str] = ()) -> Volume:
    """A lazy Volume from an HDF5 (key found when not given), TIFF or NIfTI file."""
    from ._sources import NiftiSource, TiffSource

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} file does not exist")
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        src = NiftiSource(path)
        return Volume(src, voxel_size or src.zooms_zyx)
    if voxel_size is None:
        raise ValueError(f"{path}: voxel_size=(z, y, x) in nm is required for the {what}")
    if name.endswith((".tif", ".tiff")):
        return Volume(TiffSource(path), voxel_size)
    if name.endswith((".h5", ".hdf5", ".hdf")):
        key = key or find_h5_key(path, prefer, what)
        return Volume(H5Source(path, key), voxel_size)
    raise ValueError(f"{path}: unsupported {what} file type (expected .h5/.hdf/.hdf5, .tif/.tiff, .nii/.nii.gz)")


# ----------------------------------------------------------------------------- checks
def check_image(vol: Volume, what: str = "image") -> Volume:
    if vol.dtype.name not in IMAGE_DTYPES:
        raise TypeError(
            f"{vol.name}: unsupported {what} dtype {vol.dtype} (expected one of {', '.join(IMAGE_DTYPES)})"
        )
    return check_nonempty(vol, what)


def check_label(vol: Volume | None, what: str = "label") -> Volume | None:
    if vol is None:
        return None
    if vol.dtype.kind not in "uib":
        raise TypeError(
            f"{vol.name}: unsupported {what} dtype {vol.dtype} (expected an integer type, e.g. uint32 or uint64)"
        )
    return check_nonempty(vol, what)


def check_nonempty(vol: Volume, what: str) -> Volume:
    if vol.ndim != 3 or min(vol.shape) < 1:
        raise ValueError(f"{vol.name}: the {what} volume is empty or not 3D (shape {vol.shape}); expected (z, y, x) > 0")
    return vol


def make_pair(name: str, image: Volume, label: Volume | None, mask: Volume | None = None) -> VolumePair:
    return VolumePair(name, check_image(image), check_label(label), mask)


# ----------------------------------------------------------------------------- splits
def check_fraction(valid_fraction: float) -> float:
    vf = float(valid_fraction)
    if not 0.0 <= vf < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1); got {valid_fraction!r}")
    return vf


def z_split(n: int, valid_fraction: float, name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(train z range, valid z range)`` of a volume with ``n`` sections; disjoint."""
    vf = check_fraction(valid_fraction)
    n_valid = 0 if vf == 0 else max(1, int(round(n * vf)))
    n_train = n - n_valid
    if n_train < 1:
        raise ValueError(
            f"{name}: {n} z sections cannot be split into train and valid (valid_fraction={vf})"
        )
    return (0, n_train), (n_train, n)


def file_split(names: Sequence[str], valid_fraction: float) -> tuple[list[str], list[str]]:
    """Split files (sorted by name): the last ``max(1, round(n * f))`` are valid; needs n >= 2."""
    vf = check_fraction(valid_fraction)
    names = sorted(names)
    n_valid = 0 if vf == 0 else min(len(names) - 1, max(1, int(round(len(names) * vf))))
    return names[: len(names) - n_valid], names[len(names) - n_valid:]


def window_pair(pair: VolumePair, z: tuple[int, int]) -> VolumePair:
    def cut(v):
        return None if v is None else v.window(z=z)

    return VolumePair(pair.name, pair.image.window(z=z), cut(pair.label), cut(pair.mask))


def select(entries: list[Entry], split: str, valid_fraction: float) -> tuple[list[VolumePair], dict]:
    """The pairs of ``split`` and, per pair, the z range it covers in its whole volume."""
    pairs, zr = [], {}
    for e in entries:
        n = e.pair.image.shape[0]
        if e.role == "trainval" and split in ("train", "valid"):
            tr, va = z_split(n, valid_fraction, e.pair.name)
            z = tr if split == "train" else va
            if z[1] > z[0]:
                pairs.append(window_pair(e.pair, z))
                zr[e.pair.name] = z
        elif e.role == split:
            pairs.append(e.pair)
            zr[e.pair.name] = (0, n)
    return pairs, zr


def make_dataset(kind: str, root: Any, split: str, entries: list[Entry], valid_fraction: float,
                 info: dict | None = None) -> Dataset:
    pairs, zr = select(entries, split, valid_fraction)
    if not pairs:
        why = " (valid_fraction is 0)" if split == "valid" and valid_fraction == 0 else ""
        raise ValueError(f"{kind} ({root}): no volumes for split {split!r}{why}")
    info = dict(info or {})
    info.update(
        z_ranges=zr,
        valid_fraction=valid_fraction,
        sources=sorted({s for e in entries for s in e.sources}),
    )
    return Dataset(kind, split, tuple(pairs), str(root), info)


# ----------------------------------------------------------------------------- prepared roots
def read_metadata(root: str | os.PathLike) -> dict:
    path = Path(root) / METADATA
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable prepared-root metadata file ({e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not written by neurons_jax prepare (format {meta.get('format')!r})")
    return meta


def prepared_entries(root: str | os.PathLike, reader: str, roles: Iterable[str],
                     keep: Callable[[dict], bool] | None = None) -> tuple[list[Entry], dict]:
    """Entries of a prepared root (zarr3 stores opened lazily) whose role is in ``roles``."""
    root = Path(root)
    meta = read_metadata(root)
    if meta.get("reader") != reader:
        raise ValueError(
            f"{root}: a prepared {meta.get('reader')!r} root, not {reader!r} "
            f"(open it with nj.datasets.{meta.get('reader')})"
        )
    roles = set(roles)
    out = []
    for v in meta["volumes"]:
        if v["role"] not in roles or (keep is not None and not keep(v)):
            continue
        image = Volume.open(root / v["image"])
        label = Volume.open(root / v["label"]) if v.get("label") else None
        out.append(Entry(VolumePair(v["name"], image, label), v["role"], v.get("group", ""),
                         list(v.get("sources", []))))
    return out, meta


def recorded_option(meta: dict, name: str, value: Any, default: Any) -> Any:
    """A label-defining reader option on a prepared root: the recorded value wins unless an
    explicit, different value was asked for (then the root cannot serve it)."""
    recorded = meta.get("reader_kwargs", {}).get(name, default)
    if _jsonable(value) != _jsonable(default) and _jsonable(value) != _jsonable(recorded):
        raise ValueError(
            f"{meta.get('_root', 'prepared root')}: prepared with {name}={recorded!r}, asked for "
            f"{name}={value!r}; run prepare again with {name}={value!r} into another directory"
        )
    return recorded


def _jsonable(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x
