"""Dataset readers, ingest and inspection.

One reader per dataset of DATASETS.md, each returning a :class:`Dataset` of image/label
:class:`VolumePair` s for one split (``train``, ``valid``, ``test``); each takes a native root
or a prepared root (``metadata.json`` + zarr3, written by :func:`prepare`).

Example:
    >>> import neurons_jax as nj
    >>> roots = nj.sample.write_workspace("/tmp/nj_ws")                          # doctest: +SKIP
    >>> nj.datasets.cremi3d(roots["cremi3d"], "valid").summary()                # doctest: +SKIP
    'cremi3d/valid: 2 volume(s) [A (10, 192, 192), B (10, 192, 192)] voxel (40.0, 4.0, 4.0) nm'
    >>> out = nj.datasets.prepare("cremi3d", roots["cremi3d"], "/tmp/nj_prep/cremi3d")  # doctest: +SKIP
    >>> print(nj.datasets.describe(out))                                         # doctest: +SKIP
"""

from __future__ import annotations

from .base import SPLITS, Dataset, VolumePair
from .cremi3d import cremi3d
from .generic import generic
from .microns import microns
from .mitoem2 import mitoem2
from .prepare import prepare
from .snemi3d import snemi3d
from .summary import classes_present, describe, summarize

READER_FUNCTIONS = {
    "snemi3d": snemi3d,
    "cremi3d": cremi3d,
    "microns": microns,
    "mitoem2": mitoem2,
    "generic": generic,
}


def open_dataset(kind: str, root, split: str = "train", **kwargs) -> Dataset:
    """``nj.datasets.<kind>(root, split=split, **kwargs)`` by name."""
    if kind not in READER_FUNCTIONS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {', '.join(READER_FUNCTIONS)}")
    return READER_FUNCTIONS[kind](root, split=split, **kwargs)


__all__ = [
    "READER_FUNCTIONS",
    "SPLITS",
    "Dataset",
    "VolumePair",
    "classes_present",
    "cremi3d",
    "describe",
    "generic",
    "microns",
    "mitoem2",
    "open_dataset",
    "prepare",
    "snemi3d",
    "summarize",
]
