"""The one table of where each dataset is downloaded from, and how to point it elsewhere.

Every URL the downloader uses is in :data:`SOURCES`. A mirror (another HTTP server holding the
same file names, e.g. on an air-gapped site) replaces a dataset's base URL, by flag or by
environment variable, the flag winning:

    neurons-jax download cremi3d --output data/cremi3d --mirror http://mirror.lan/cremi/
    NEURONS_JAX_MIRROR_CREMI3D=http://mirror.lan/cremi/ neurons-jax download cremi3d ...

Published checksums come from the table (``FileSpec.sha256``/``md5``) or from a checksum
document (a Zenodo record JSON, or ``SHA256SUMS``/``MD5SUMS``-style lines ``<hex>  <name>``)
given by ``--checksums URL`` or ``NEURONS_JAX_CHECKSUMS_<DATASET>``.

Example:
    >>> base_url("cremi3d", env={})
    'https://cremi.org/static/data/'
    >>> base_url("cremi3d", env={"NEURONS_JAX_MIRROR_CREMI3D": "http://m/c"})
    'http://m/c/'
    >>> file_url("cremi3d", "sample_A+_20160601.hdf", env={})
    'https://cremi.org/static/data/sample_A%2B_20160601.hdf'
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from .http import DownloadError, Expected


@dataclass(frozen=True)
class FileSpec:
    """One file of a source: its name under the base URL and what is known of it."""

    name: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None

    def expected(self) -> Expected:
        return Expected(size=self.size, sha256=self.sha256, md5=self.md5)


@dataclass(frozen=True)
class Source:
    """Where a dataset lives: ``base`` + file name, plus an optional checksum document."""

    dataset: str
    base: str
    files: tuple[FileSpec, ...] = ()
    checksums: str | None = None  # only used while ``base`` is the default (not a mirror)
    homepage: str = ""


MITOEM2_DATASETS = (
    "Dataset001_ME2-Beta",
    "Dataset002_ME2-Jurkat",
    "Dataset003_ME2-Macro",
    "Dataset004_ME2-Mossy",
    "Dataset005_ME2-Podo",
    "Dataset006_ME2-Pyra",
    "Dataset007_ME2-Sperm",
    "Dataset008_ME2-Stem",
)

# sha256 of the unpadded CREMI training files as verified by torch-em's CREMI loader for years
# (cremi.org itself publishes none); the padded files have no known checksum.
_CREMI_SHA256 = {
    "A": "4c563d1b78acb2bcfb3ea958b6fe1533422f7f4a19f3e05b600bfa11430b510d",
    "B": "887e85521e00deead18c94a21ad71f278d88a5214c7edeed943130a1f4bb48b8",
    "C": "2874496f224d222ebc29d0e4753e8c458093e1d37bc53acd1b69b19ed1ae7052",
}

SOURCES: dict[str, Source] = {
    "snemi3d": Source(
        "snemi3d",
        # Git LFS files of the public mirror; github.com/.../raw/HEAD redirects to the LFS media host
        "https://github.com/tmquan/SNEMI3D/raw/HEAD/",
        tuple(FileSpec(f"AC{v}_{what}.h5") for v in (3, 4) for what in ("inputs", "labels")),
        homepage="https://snemi3d.grand-challenge.org/",
    ),
    "cremi3d": Source(
        "cremi3d",
        "https://cremi.org/static/data/",
        tuple(FileSpec(f"sample_{s}_20160501.hdf", sha256=h) for s, h in _CREMI_SHA256.items())
        + tuple(FileSpec(f"sample_{s}_padded_20160501.hdf") for s in "ABC"),
        homepage="https://cremi.org/data/",
    ),
    "mitoem2": Source(
        "mitoem2",
        "https://zenodo.org/records/14595790/files/",
        tuple(FileSpec(f"{name}.zip") for name in MITOEM2_DATASETS),
        checksums="https://zenodo.org/api/records/14595790",  # sizes + md5 of every zip
        homepage="https://zenodo.org/records/14595790",
    ),
    # MICrONS is streamed, not downloaded: its precomputed layer URLs are the reader's table,
    # neurons_jax.datasets.microns.PUBLIC; a mirror is a base URL holding the same layer names
    # (em/, seg/, seg_m343/, seg_m943/, seg_m1300/).
    "microns": Source("microns", "", homepage="https://www.microns-explorer.org/"),
}


def env_name(dataset: str, what: str = "MIRROR") -> str:
    return f"NEURONS_JAX_{what}_{dataset.upper()}"


def source(dataset: str) -> Source:
    if dataset not in SOURCES:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(SOURCES)}")
    return SOURCES[dataset]


def mirror(dataset: str, flag: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The mirror base URL chosen by flag or environment, or None for the default source."""
    env = os.environ if env is None else env
    value = flag or env.get(env_name(dataset)) or None
    if value is not None and not re.match(r"^https?://", value):
        raise ValueError(
            f"mirror for {dataset} must be an http:// or https:// URL; got {value!r} "
            "(for a local copy use --link DIR)"
        )
    return value


def base_url(dataset: str, flag: str | None = None, env: Mapping[str, str] | None = None) -> str:
    base = mirror(dataset, flag, env) or source(dataset).base
    return base if base.endswith("/") else base + "/"


def file_url(dataset: str, name: str, flag: str | None = None, env: Mapping[str, str] | None = None) -> str:
    return base_url(dataset, flag, env) + urllib.parse.quote(name)


def checksums_url(
    dataset: str, flag: str | None = None, mirror_flag: str | None = None, env: Mapping[str, str] | None = None
) -> str | None:
    """The checksum document to use: flag, env, or the table's (only for the default source)."""
    env = os.environ if env is None else env
    explicit = flag or env.get(env_name(dataset, "CHECKSUMS"))
    if explicit:
        return explicit
    return None if mirror(dataset, mirror_flag, env) else source(dataset).checksums


def parse_checksums(text: str, origin: str = "checksum document") -> dict[str, Expected]:
    """File name -> Expected from a Zenodo record JSON or ``<hex>  <name>`` lines."""
    text = text.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise DownloadError(f"{origin}: not valid JSON ({e})") from None
        files = doc.get("files", [])
        if isinstance(files, dict):  # {"entries": {...}} or {"entries": [...]}
            files = files.get("entries", files)
        if isinstance(files, dict):
            files = list(files.values())
        out: dict[str, Expected] = {}
        for f in files:
            key = f.get("key") or f.get("filename")
            algo, _, digest = str(f.get("checksum", "")).partition(":")
            e = Expected(size=f.get("size") or f.get("filesize"))
            if algo in ("md5", "sha256") and digest:
                setattr(e, algo, digest)
            if key:
                out[key] = e
        if not out:
            raise DownloadError(f"{origin}: no 'files' with 'key' entries (expected a Zenodo record)")
        return out
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([0-9a-fA-F]{32}|[0-9a-fA-F]{64})\s+\*?(\S.*)$", line.strip())
        if m:
            digest, name = m.groups()
            out[name.strip()] = Expected(**{"md5" if len(digest) == 32 else "sha256": digest})
    if not out:
        raise DownloadError(f"{origin}: no '<md5|sha256>  <name>' lines found")
    return out
