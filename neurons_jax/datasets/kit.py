"""Building blocks for a dataset-kind module: entries, splits, prepared roots, native files.

The built-in readers are made of these; a new kind (one module plus one
``nj.datasets.register_kind`` call) uses them too. ``native_entries`` lists whole volumes as
:class:`Entry` (pair + role), :func:`make_dataset` cuts the split, and :func:`prepared_entries`
reads what ``nj.datasets.prepare`` wrote.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> from neurons_jax.datasets import kit
    >>> img = nj.Volume.from_array(np.zeros((10, 8, 8), np.uint8), (30, 6, 6))
    >>> lab = nj.Volume.from_array(np.ones((10, 8, 8), np.uint32), (30, 6, 6))
    >>> e = kit.Entry(kit.make_pair("vol", img, lab), "trainval")
    >>> kit.make_dataset("generic", "mem", "valid", [e], 0.2).info["z_ranges"]
    {'vol': (8, 10)}
"""

from __future__ import annotations

from ._common import (
    METADATA,
    Entry,
    check_fraction,
    check_root,
    check_split,
    file_split,
    find_file,
    is_prepared,
    make_dataset,
    make_pair,
    open_file,
    prepared_entries,
    read_metadata,
    recorded_option,
    select,
    z_split,
)
from ._sources import source_files
from .base import SPLITS, Dataset, VolumePair


def split_roles(split: str, main_role: str = "trainval") -> tuple[str, ...]:
    """The entry roles a split is cut from: ``("test",)`` for test, else ``(main_role,)``."""
    check_split(split)
    return ("test",) if split == "test" else (main_role,)


__all__ = [
    "METADATA",
    "SPLITS",
    "Dataset",
    "Entry",
    "VolumePair",
    "check_fraction",
    "check_root",
    "check_split",
    "file_split",
    "find_file",
    "is_prepared",
    "make_dataset",
    "make_pair",
    "open_file",
    "prepared_entries",
    "read_metadata",
    "recorded_option",
    "select",
    "source_files",
    "split_roles",
    "z_split",
]
