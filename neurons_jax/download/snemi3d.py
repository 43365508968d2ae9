"""SNEMI3D: the four AC3/AC4 HDF5 files, fetched from the public mirror or linked from a copy.

AC4 is the training volume, AC3 the test volume (100 sections of 1024 x 1024, 30 x 6 x 6 nm).
``prepare("snemi3d", DIR, OUT)`` reads the result.

Example:
    >>> from neurons_jax.download import snemi3d
    >>> snemi3d.download("data/snemi3d")                          # doctest: +SKIP
    >>> snemi3d.download("data/snemi3d", link="/scratch/SNEMI3D")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import Options, fetch_files, link_files

FILES = ("AC3_inputs.h5", "AC3_labels.h5", "AC4_inputs.h5", "AC4_labels.h5")


def alternatives(name: str) -> tuple[str, ...]:
    """A file and its TIFF variants (what ``--link`` accepts in an existing copy)."""
    stem = name.rsplit(".", 1)[0]
    return (name, f"{stem}.hdf5", f"{stem}.tiff", f"{stem}.tif")


def download(
    output: str | os.PathLike, *, link: str | os.PathLike | None = None, options: Options | None = None
) -> list[Path]:
    """Fetch (or with ``link``, symlink) AC3/AC4 inputs and labels into ``output``."""
    options = options or Options()
    if link is not None:
        return link_files(link, [alternatives(n) for n in FILES], output)
    return fetch_files("snemi3d", FILES, output, options)
