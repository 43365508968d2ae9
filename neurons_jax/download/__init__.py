"""``neurons-jax download``: fetch the four public datasets, resumably and verified.

One module per dataset (``snemi3d``, ``cremi3d``, ``mitoem2``, ``microns``); ``http.fetch``
does the resumable, checked transfer of one file; ``sources`` is the one table of URLs (a
mirror overrides it by ``--mirror`` or ``NEURONS_JAX_MIRROR_<DATASET>``).

Example:
    >>> import neurons_jax.download as dl
    >>> dl.DATASETS
    ('snemi3d', 'cremi3d', 'mitoem2', 'microns')
    >>> dl.download("cremi3d", "data/cremi3d", samples=["A"])        # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from .common import Options
from .http import DownloadError, Expected, fetch
from .sources import SOURCES

DATASETS = ("snemi3d", "cremi3d", "mitoem2", "microns")

__all__ = ["DATASETS", "SOURCES", "DownloadError", "Expected", "Options", "download", "fetch"]


def download(dataset: str, output: str | os.PathLike, *, options: Options | None = None, **kwargs: Any) -> Any:
    """Run the downloader of ``dataset`` (keyword arguments as its module's ``download``)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    module = importlib.import_module(f".{dataset}", __name__)
    return module.download(Path(output), options=options or Options(), **kwargs)
