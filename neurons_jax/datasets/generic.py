"""Any image/label pair: NumPy arrays, Volumes, TensorStore specs or URLs, HDF5/TIFF/NIfTI files.

``generic(image, split, label=..., voxel_size=..., rule="generic")`` wraps one pair; ``rule``
names the label rule (any registered rule, e.g. ``"mitoem2"`` for 0/1/2 labels) and becomes
the dataset kind.
Splits: train = z ``[0, n - n_valid)``, valid = the last ``valid_fraction`` of z; test is the
``test=(image, label)`` pair when one is given. ``image`` may also be a prepared root.

Accepted forms of ``image``/``label``: ``np.ndarray``; ``nj.Volume``; a TensorStore spec dict;
a zarr3/zarr/n5/precomputed path or URL (``Volume.open``); ``file.h5`` or ``file.h5:key``;
``.tif``/``.tiff``; ``.nii``/``.nii.gz``.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> img = np.zeros((10, 32, 32), np.uint8); lab = np.ones((10, 32, 32), np.uint32)
    >>> ds = nj.datasets.generic(img, "valid", label=lab, voxel_size=(10, 10, 10))
    >>> ds.image.shape, ds.info["z_ranges"]
    ((2, 32, 32), {'volume': (8, 10)})
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..rules import LabelRule, get_rule, known_kinds
from ..volumes import ArraySource, Volume
from ._common import (
    Entry,
    check_split,
    is_prepared,
    make_dataset,
    make_pair,
    open_file,
    prepared_entries,
)
from ._sources import source_files
from .base import Dataset
from .registry import option, register_kind

KIND = "generic"
FILE_SUFFIXES = (".h5", ".hdf5", ".hdf", ".tif", ".tiff", ".nii", ".nii.gz")


def generic(
    image: Any,
    split: str = "train",
    *,
    label: Any = None,
    voxel_size: Sequence[float] | None = None,
    rule: str | LabelRule = "generic",
    valid_fraction: float = 0.2,
    test: tuple[Any, Any] | None = None,
    name: str = "volume",
) -> Dataset:
    """A dataset from one image/label pair (or a prepared generic root given as ``image``)."""
    if not isinstance(split, str):
        raise TypeError(
            f"generic: split must be one of train, valid, test; got a {type(split).__name__} "
            "(label, voxel_size and rule are keyword-only: generic(image, split, label=..., voxel_size=...))"
        )
    check_split(split)
    if is_prepared(image):
        entries, meta = prepared_entries(image, KIND, ("test",) if split == "test" else ("trainval",))
        kind = meta["kind"]
        return make_dataset(kind, image, split, entries, valid_fraction, {"rule": kind})
    kind = _kind(rule)
    roles = ("test",) if split == "test" else ("trainval",)
    entries = native_entries(image, label, voxel_size, roles=roles, test=test, name=name)
    if split == "test" and not entries:
        raise ValueError("generic: no test volume; pass test=(image, label) for a test split")
    return make_dataset(kind, _root(image), split, entries, valid_fraction, {"rule": kind})


def native_entries(image, label=None, voxel_size=None, roles=("trainval", "test"), test=None,
                   name: str = "volume") -> list[Entry]:
    out = []
    if "trainval" in roles:
        out.append(_entry(name, image, label, voxel_size, "trainval"))
    if "test" in roles and test is not None:
        if len(test) != 2:
            raise ValueError(f"generic: test must be (image, label); got {len(test)} items")
        out.append(_entry(f"{name}_test", test[0], test[1], voxel_size, "test"))
    return out


def _entry(name, image, label, voxel_size, role) -> Entry:
    img = as_volume(image, voxel_size, "image")
    img.require_voxel_size("generic image")
    lab = None if label is None else as_volume(label, voxel_size or img.voxel_size, "label")
    if lab is not None and tuple(lab.voxel_size) != tuple(img.voxel_size):
        raise ValueError(
            f"generic: label {lab.name} has voxel size {lab.voxel_size} nm; expected the image's "
            f"{img.voxel_size} nm ({img.name})"
        )
    pair = make_pair(name, img, lab)
    files = source_files(img.source) + (source_files(lab.source) if lab is not None else [])
    return Entry(pair, role, name, files)


def as_volume(obj: Any, voxel_size: Sequence[float] | None, what: str) -> Volume:
    """A Volume from an array, Volume, spec dict, path or URL (see the module docstring)."""
    if isinstance(obj, Volume):
        if voxel_size is not None and tuple(float(v) for v in voxel_size) != obj.voxel_size:
            return Volume(obj.source, voxel_size, origin=obj.origin, shape=obj.shape, name=obj.name)
        return obj
    if isinstance(obj, np.ndarray):
        if voxel_size is None:
            raise ValueError(f"generic: voxel_size=(z, y, x) in nm is required for an array {what}")
        if obj.ndim != 3:
            raise ValueError(f"generic: the {what} array must be 3D (z, y, x); got shape {obj.shape}")
        return Volume(ArraySource(obj), voxel_size, name=f"{what} array{obj.shape}")
    if isinstance(obj, dict):
        return Volume.open(obj, voxel_size)
    if isinstance(obj, (str, os.PathLike)):
        text = os.fspath(obj)
        path, _, key = text.partition(":") if _is_h5_with_key(text) else (text, "", "")
        if Path(path).name.lower().endswith(FILE_SUFFIXES):
            return open_file(path, voxel_size, what, key=key or None, prefer=(what, "main", "data"))
        return Volume.open(text, voxel_size)
    raise TypeError(
        f"generic: unsupported {what} of type {type(obj).__name__} (expected an array, Volume, "
        "TensorStore spec, path or URL)"
    )


def _is_h5_with_key(text: str) -> bool:
    if "://" in text:
        return False
    head, sep, _ = text.partition(":")
    return bool(sep) and head.lower().endswith((".h5", ".hdf5", ".hdf"))


def _kind(rule: str | LabelRule) -> str:
    if isinstance(rule, LabelRule):
        if rule.kind not in known_kinds() or get_rule(rule.kind) != rule:
            raise ValueError(
                f"generic: rule {rule.kind!r} is not registered as given; use nj.rules.register_rule"
            )
        return rule.kind
    return get_rule(rule).kind  # raises for an unknown kind, listing the known ones


def _root(image: Any) -> str:
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else ""


def options(label=None, voxel_size=None, rule="generic", test=None, name="volume") -> dict:
    return {"rule": _kind(rule), "voxel_size": None if voxel_size is None else [float(v) for v in voxel_size],
            "name": name, "has_test": test is not None}


register_kind(
    KIND,
    generic,
    rule=KIND,
    help="any image/label pair: arrays, zarr/n5/precomputed paths or URLs, HDF5/TIFF/NIfTI files",
    root_help="the image path/URL (file.h5:key works), or a prepared generic root",
    native_entries=native_entries,
    options=options,
    prepare_options=(
        option("--label", dest="label", help="label path/URL (file.h5:key works)"),
        option("--voxel-size", dest="voxel_size", type=float, nargs=3, metavar=("Z", "Y", "X"), help="nm"),
        option("--rule", dest="rule", help="label rule kind (default generic)"),
    ),
)
