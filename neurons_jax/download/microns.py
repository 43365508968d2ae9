"""MICrONS minnie65: nothing to download by default; ``cache=True`` stores a crop as zarr3.

The reader (``nj.datasets.microns``) streams the public precomputed layers, whose addresses
live in its table ``neurons_jax.datasets.microns.PUBLIC``. To train without the network,
``--cache`` ingests the crop (``--origin X Y Z`` / ``--size X Y Z`` in segmentation voxels:
neuroglancer's order and coordinates, unlike the Z Y X of ``--patch``/``--voxel-size``; the
reader's defaults otherwise) for each segmentation version into a *prepared root* per version,
``DIR/v<version>/`` (zarr3 image + label and ``metadata.json``, through
``nj.datasets.prepare``, which also keeps the adjacent +x test crop when it lies inside the
data). ``nj.datasets.microns("DIR/v1300", split=...)`` then reads it offline. A mirror
(``--mirror`` / ``NEURONS_JAX_MIRROR_MICRONS``) is a base URL holding the same layer names as
the public buckets (``em/``, ``seg/``, ``seg_m343/``, ``seg_m943/``, ``seg_m1300/``).
TensorStore does the transfers, within the network policy of :mod:`neurons_jax.net`.

Example:
    >>> from neurons_jax.download import microns
    >>> microns.resolve_versions(["all"])
    (117, 343, 943, 1300)
    >>> microns.check_xyz("--size", ["256", "256", "64"], minimum=1)
    (256, 256, 64)
    >>> microns.download("data/microns", cache=True, size=(256, 256, 64))   # doctest: +SKIP
    [PosixPath('data/microns/v1300')]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .common import Options
from .sources import mirror as mirror_url

VERSIONS = (117, 343, 943, 1300)


def resolve_versions(values: Sequence[str | int]) -> tuple[int, ...]:
    """Version numbers from ``117 343 943 1300`` (``v1300`` / ``m1300`` accepted) or ``all``."""
    out: list[int] = []
    for value in values or ("1300",):
        text = str(value).strip().lower()
        if text == "all":
            out += VERSIONS
            continue
        try:
            v = int(text.lstrip("vm"))
        except ValueError:
            v = None
        if v not in VERSIONS:
            raise ValueError(
                f"--seg-version: expected some of {' '.join(map(str, VERSIONS))} or 'all'; got {value!r}"
            )
        out.append(v)
    return tuple(dict.fromkeys(out))


def check_xyz(flag: str, values: Sequence[str | int] | None, minimum: int) -> tuple[int, int, int] | None:
    """Three integers X Y Z, each at least ``minimum``, or a ValueError naming ``flag``."""
    if values is None:
        return None
    values = list(values)
    want = "positive integers" if minimum == 1 else f"integers >= {minimum}"
    out = []
    for v in values:
        try:
            out.append(int(str(v).strip()))
        except ValueError:
            out = []
            break
    if len(values) != 3 or len(out) != 3 or any(v < minimum for v in out):
        got = " ".join(str(v) for v in values) or "nothing"
        raise ValueError(
            f"{flag}: expected 3 {want} X Y Z (segmentation voxels, neuroglancer's order); got {got}"
        )
    return out[0], out[1], out[2]


def cache_dir(output: str | os.PathLike, version: int) -> Path:
    return Path(output) / f"v{version}"


def download(
    output: str | os.PathLike, *, cache: bool = False, origin: Sequence[int] | None = None,
    size: Sequence[int] | None = None, seg_versions: Sequence[str | int] = ("1300",),
    options: Options | None = None,
) -> list[Path]:
    """With ``cache``, ingest the crop of each version into ``output/v<version>``; else explain.

    ``origin`` and ``size`` are X Y Z in segmentation voxels (neuroglancer's order).
    """
    from ..datasets.microns import PUBLIC
    from ..datasets.microns import VERSIONS as LAYERS

    options = options or Options()
    versions = resolve_versions(seg_versions)
    root = mirror_url("microns", options.mirror)
    origin = check_xyz("--origin", origin, minimum=0)
    size = check_xyz("--size", size, minimum=1)
    if not cache:
        for v in versions:
            where = f"{root.rstrip('/')}/{LAYERS[v]}/" if root else PUBLIC[v]
            options.say(f"microns v{v}: nothing to download; the reader streams {where}")
        options.say("pass --cache to store a crop locally as zarr3 (then train offline)")
        return []
    return [cache_version(output, v, root, origin, size, options) for v in versions]


def cache_version(
    output: str | os.PathLike, version: int, root: str | None, origin: Sequence[int] | None,
    size: Sequence[int] | None, options: Options,
) -> Path:
    """Ingest one version's crop (EM + segmentation) into ``output/v<version>``."""
    from ..datasets.prepare import prepare

    dest = cache_dir(output, version)
    options.say(f"microns v{version}: caching the crop from {root or 'the public layers'} into {dest}")
    return prepare(
        "microns", root, dest, seg_version=version, progress=options.progress,
        origin=None if origin is None else [int(v) for v in origin],
        size=None if size is None else [int(v) for v in size],
    )

