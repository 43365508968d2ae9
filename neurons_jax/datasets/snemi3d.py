"""SNEMI3D: mouse cortex ssTEM, 30 x 6 x 6 nm, neuron instance ids (0 = background).

Native root: ``AC4_inputs.h5`` / ``AC4_labels.h5`` (train and valid) and ``AC3_*`` (test); the
HDF5 dataset key is found (the only 3D dataset, else ``main``, ``raw``, ``labels``, ...).
TIFF stacks ``AC*_inputs.tif(f)`` / ``AC*_labels.tif(f)`` work too. A prepared root
(``metadata.json`` from ``nj.datasets.prepare``) is read from its zarr3 stores instead.

Splits: train = AC4 z ``[0, n - n_valid)``, valid = AC4 z ``[n - n_valid, n)`` with
``n_valid = max(1, round(n * valid_fraction))``, test = AC3 (whole).

Example:
    >>> import neurons_jax as nj
    >>> ds = nj.datasets.snemi3d("data/snemi3d", split="valid")        # doctest: +SKIP
    >>> ds.voxel_size, ds.info["z_ranges"]                              # doctest: +SKIP
    ((30.0, 6.0, 6.0), {'AC4': (80, 100)})
"""

from __future__ import annotations

import os
from pathlib import Path

from ._common import (
    Entry,
    check_root,
    check_split,
    find_file,
    is_prepared,
    make_dataset,
    make_pair,
    open_file,
    prepared_entries,
)
from ._sources import source_files
from .base import Dataset
from .registry import Downloader, option, register_kind

KIND = "snemi3d"
VOXEL_SIZE = (30.0, 6.0, 6.0)
VOLUMES = {"trainval": "AC4", "test": "AC3"}
EXTENSIONS = (".h5", ".hdf5", ".hdf", ".tif", ".tiff")
IMAGE_KEYS = ("main", "raw", "data", "image", "images", "volumes/raw", "stack")
LABEL_KEYS = ("main", "labels", "label", "seg", "segmentation", "groundtruth",
              "volumes/labels/neuron_ids", "data", "stack")
EXPECTED = "a directory with AC4_inputs.h5/AC4_labels.h5 and AC3_* (or .tif), or a prepared root"


def snemi3d(root: str | os.PathLike, split: str = "train", *, valid_fraction: float = 0.2) -> Dataset:
    """The SNEMI3D split at ``root`` (native files or a prepared root)."""
    check_split(split)
    roles = ("test",) if split == "test" else ("trainval",)
    if is_prepared(root):
        entries, _ = prepared_entries(root, KIND, roles)
    else:
        entries = native_entries(root, roles)
    return make_dataset(KIND, root, split, entries, valid_fraction)


def native_entries(root: str | os.PathLike, roles=("trainval", "test")) -> list[Entry]:
    """One entry per AC volume whose role is asked for (AC4: trainval, AC3: test)."""
    root = check_root(root, KIND, EXPECTED)
    out = []
    for role, name in VOLUMES.items():
        if role not in roles:
            continue
        image = open_file(_find(root, name, "inputs"), VOXEL_SIZE, f"{name} image", prefer=IMAGE_KEYS)
        label = open_file(_find(root, name, "labels"), VOXEL_SIZE, f"{name} labels", prefer=LABEL_KEYS)
        pair = make_pair(name, image, label)
        out.append(Entry(pair, role, name, source_files(image.source) + source_files(label.source)))
    return out


def _find(root: Path, name: str, what: str) -> Path:
    return find_file(root, [f"{name}_{what}{ext}" for ext in EXTENSIONS], f"{name} {what}")


def options(**kwargs) -> dict:
    """The reader options recorded by ``prepare`` (SNEMI3D has none)."""
    if kwargs:
        raise TypeError(f"snemi3d: unexpected options {sorted(kwargs)}")
    return {}


register_kind(
    KIND,
    snemi3d,
    rule=KIND,
    help="SNEMI3D: mouse cortex ssTEM, neuron instance ids (AC4 train/valid, AC3 test)",
    root_help="directory with AC4_inputs.h5/AC4_labels.h5 and AC3_* (or .tif), or a prepared root",
    native_entries=native_entries,
    options=options,
    downloader=Downloader(
        "neurons_jax.download.snemi3d:download",
        help="AC3/AC4 inputs and labels (HDF5) from the public mirror, or --link a copy",
        options=(option("--link", dest="link", metavar="DIR", type=Path,
                        help="symlink an existing copy in DIR instead of downloading"),),
    ),
    sample="neurons_jax.sample:_snemi3d",
)
