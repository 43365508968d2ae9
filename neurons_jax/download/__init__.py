"""``neurons-jax download``: fetch the public datasets, resumably and verified.

The kinds that can be downloaded are those registered with a ``Downloader``
(``nj.datasets.register_kind``); the built-ins have one module each here (``snemi3d``,
``cremi3d``, ``mitoem2``, ``microns``); ``http.fetch`` does the resumable, checked transfer of
one file; ``sources`` is the one table of their URLs (a mirror overrides it by ``--mirror`` or
``NEURONS_JAX_MIRROR_<DATASET>``).

Example:
    >>> import neurons_jax.download as dl
    >>> dl.DATASETS
    ('snemi3d', 'cremi3d', 'microns', 'mitoem2')
    >>> dl.download("cremi3d", "data/cremi3d", samples=["A"])        # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .common import Options
from .http import DownloadError, Expected, fetch
from .sources import SOURCES

__all__ = ["DATASETS", "SOURCES", "DownloadError", "Expected", "Options", "dataset_names", "download", "fetch"]


def dataset_names() -> tuple[str, ...]:
    """The registered kinds that have a downloader, in registration order."""
    from ..datasets.registry import kind_names

    return kind_names("download")


def __getattr__(name: str) -> Any:
    if name == "DATASETS":  # derived from the dataset-kind registry
        return dataset_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def download(dataset: str, output: str | os.PathLike, *, options: Options | None = None, **kwargs: Any) -> Any:
    """Run the registered downloader of ``dataset`` (keyword arguments as its ``download``)."""
    from ..datasets.registry import get_kind

    downloader = get_kind(dataset, "download").downloader
    return downloader.load()(Path(output), options=options or Options(), **kwargs)
