"""CREMI: sample A/B/C training volumes (HDF5) from the challenge's file server.

``--padded`` fetches the padded variants (larger raw context around the labelled block) instead.
``prepare("cremi3d", DIR, OUT)`` reads either (a padded raw is cut to the labelled block).

Example:
    >>> from neurons_jax.download import cremi3d
    >>> cremi3d.file_name("A"), cremi3d.file_name("b", padded=True)
    ('sample_A_20160501.hdf', 'sample_B_padded_20160501.hdf')
    >>> cremi3d.download("data/cremi3d", samples=("A", "B"))      # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .common import Options, fetch_files

SAMPLES = ("A", "B", "C")


def file_name(sample: str, padded: bool = False) -> str:
    s = str(sample).upper()
    if s not in SAMPLES:
        raise ValueError(f"--samples: expected some of {' '.join(SAMPLES)}; got {sample!r}")
    return f"sample_{s}{'_padded' if padded else ''}_20160501.hdf"


def download(
    output: str | os.PathLike, *, samples: Sequence[str] = SAMPLES, padded: bool = False,
    options: Options | None = None,
) -> list[Path]:
    """Fetch the chosen samples into ``output``; returns their paths."""
    names = list(dict.fromkeys(file_name(s, padded) for s in samples))
    if not names:
        raise ValueError("--samples: choose at least one of A B C")
    return fetch_files("cremi3d", names, output, options or Options())
