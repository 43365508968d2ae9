"""Dataset readers, the dataset-kind registry, ingest, specs and inspection.

One reader per dataset of docs/datasets.md, each ``reader(root, split="train", *, ...)`` returning a
:class:`Dataset` of image/label :class:`VolumePair` s for one split (``train``, ``valid``,
``test``); each takes a native root or a prepared root (``metadata.json`` + zarr3, written by
:func:`prepare`). Every kind is a record of the registry (``register_kind``, ``get_kind``,
``kind_names``; see ``neurons_jax.datasets.registry``), registered by its own module, and
every list of kinds (``READER_FUNCTIONS``, ``prepare``, the command line, downloads, the
sample workspace) derives from it.

Example:
    >>> import neurons_jax as nj
    >>> nj.datasets.kind_names()
    ('snemi3d', 'cremi3d', 'microns', 'mitoem2', 'generic')
    >>> roots = nj.sample.write_workspace("/tmp/nj_ws")                          # doctest: +SKIP
    >>> nj.datasets.cremi3d(roots["cremi3d"], "valid").summary()                # doctest: +SKIP
    'cremi3d/valid: 2 volume(s) [A (10, 192, 192), B (10, 192, 192)] voxel (40.0, 4.0, 4.0) nm'
    >>> out = nj.datasets.prepare("cremi3d", roots["cremi3d"], "/tmp/nj_prep/cremi3d")  # doctest: +SKIP
    >>> print(nj.datasets.describe(out))                                         # doctest: +SKIP
"""

from __future__ import annotations

from .base import SPLITS, Dataset, VolumePair
from .registry import (
    CliOption,
    DatasetKind,
    Downloader,
    ReaderFunctions,
    get_kind,
    kind_names,
    kinds,
    option,
    register_kind,
    unregister_kind,
)

# isort: off
# Importing a kind's module registers it; this order is the order kinds are listed everywhere.
from .snemi3d import snemi3d
from .cremi3d import cremi3d
from .microns import microns
from .mitoem2 import mitoem2
from .generic import generic

# isort: on
from .prepare import prepare
from .specs import parse_dataset_spec, sources_from_specs, specs_by_name
from .summary import classes_present, describe, summarize

READER_FUNCTIONS = ReaderFunctions()
"""``{kind: reader}``, a live read-only view of the registry (kept for compatibility)."""


def open_dataset(kind: str, root, split: str = "train", **kwargs) -> Dataset:
    """``nj.datasets.<kind>(root, split, **kwargs)`` by name (any registered kind)."""
    return get_kind(kind).reader(root, split, **kwargs)


__all__ = [
    "READER_FUNCTIONS",
    "SPLITS",
    "CliOption",
    "Dataset",
    "DatasetKind",
    "Downloader",
    "VolumePair",
    "classes_present",
    "cremi3d",
    "describe",
    "generic",
    "get_kind",
    "kind_names",
    "kinds",
    "microns",
    "mitoem2",
    "open_dataset",
    "option",
    "parse_dataset_spec",
    "specs_by_name",
    "prepare",
    "register_kind",
    "snemi3d",
    "sources_from_specs",
    "summarize",
    "unregister_kind",
]
