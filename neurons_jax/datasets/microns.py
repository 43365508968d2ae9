"""MICrONS minnie65: EM and proofread segmentation streamed from neuroglancer-precomputed volumes.

No download step: TensorStore reads the public layers directly (``VERSIONS`` / ``PUBLIC``), or
a local copy / mirror with the same sub-paths (``em/``, ``seg/`` = v117, ``seg_m343/``,
``seg_m943/``, ``seg_m1300/``), or a prepared root (the crop cached as zarr3 by ``prepare``).

Alignment is by physical voxel size, never by mip index: the segmentation's finest scale is
used, and the EM scale with the same resolution (from each ``info`` file); when the EM has
no such scale, its finest scale is mean-downsampled by ``seg_res / em_res`` through
TensorStore's ``downsample`` driver. Precomputed voxel ``v`` of a scale with resolution ``r``
covers ``[v * r, (v + 1) * r)`` nm, so equal indices at equal resolution are the same place.

``origin`` and ``size`` are ``(x, y, z)`` in voxels of the segmentation scale, ``origin`` in
absolute coordinates (the ``voxel_offset`` frame neuroglancer shows). Defaults: for the
public layers the crop of docs/datasets.md, origin (140000, 100000, 20000) and size 128^3; for a
local root or mirror the segmentation's bounds: origin = its ``voxel_offset``, size = the
rest of its extent with x halved. Volumes come out ZYX, voxel size (z, y, x) nm, ids uint64.

Splits: train/valid = the crop (valid = its last ``valid_fraction`` of z); test = the
adjacent crop of the same size along +x, ``[x0 + sx, x0 + 2 sx)``.

Remote layers (https, gs) follow the network policy of :mod:`neurons_jax.net` (time-outs,
bounded retries; ``NEURONS_JAX_NET_TIMEOUT``): an unreachable layer fails within about 30 s
with one line naming its URL and the cause. Reads are bounded in all three axes: a box larger
than ``block_voxels()`` (``NEURONS_JAX_MICRONS_BLOCK_VOXELS``, 2**24) is read block by block
(chunk-aligned) into one array, and a box whose array alone would pass ``max_read_bytes()``
(``NEURONS_JAX_MICRONS_MAX_READ_BYTES``, half the memory) is refused with its size named.

Example:
    >>> import neurons_jax as nj
    >>> ds = nj.datasets.microns("public", "train", size=(256, 256, 64))   # doctest: +SKIP
    >>> ds.voxel_size                                                      # doctest: +SKIP
    (40.0, 8.0, 8.0)
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from .. import net
from ..volumes import PRECOMPUTED, TensorStoreSource, Volume, read_error, shared_context
from ._common import (
    Entry,
    check_split,
    is_prepared,
    make_dataset,
    make_pair,
    prepared_entries,
    read_metadata,
    recorded_option,
)
from .base import Dataset
from .registry import Downloader, option, register_kind

KIND = "microns"
VERSIONS = {117: "seg", 343: "seg_m343", 943: "seg_m943", 1300: "seg_m1300"}
_BOSS = "https://bossdb-open-data.s3.amazonaws.com/iarpa_microns/minnie/minnie65/"
_GCS = "https://storage.googleapis.com/iarpa_microns/minnie/minnie65/"
PUBLIC = {
    "em": _BOSS + "em/",
    117: _BOSS + "seg/",
    343: _GCS + "seg_m343/",
    943: _GCS + "seg_m943/",
    1300: _GCS + "seg_m1300/",
}
DEFAULT_ORIGIN = (140000, 100000, 20000)
DEFAULT_SIZE = (128, 128, 128)
ENV_BLOCK_VOXELS = "NEURONS_JAX_MICRONS_BLOCK_VOXELS"
ENV_MAX_READ_BYTES = "NEURONS_JAX_MICRONS_MAX_READ_BYTES"
XYZ_NOTE = "X Y Z, neuroglancer's order (not the Z Y X of --patch/--voxel-size)"


def microns(
    root: str | os.PathLike | None = None,
    split: str = "train",
    *,
    seg_version: int | str = 1300,
    origin: Sequence[int] | None = None,
    size: Sequence[int] | None = None,
    valid_fraction: float = 0.2,
) -> Dataset:
    """The MICrONS crop (``origin``/``size`` in x, y, z segmentation voxels) for ``split``.

    ``root``: None or ``"public"`` (the public layers), a local root or mirror URL, or a
    prepared root.
    """
    check_split(split)
    version = check_version(seg_version)
    roles = ("test",) if split == "test" else ("trainval",)
    if is_prepared(root):
        meta = {**read_metadata(root), "_root": str(root)}
        version = recorded_option(meta, "seg_version", version, 1300)
        recorded_option(meta, "origin", None if origin is None else list(origin), None)
        recorded_option(meta, "size", None if size is None else list(size), None)
        entries, _ = prepared_entries(root, KIND, roles)
        if not entries:
            raise ValueError(f"{root}: prepared without a {split} crop (it fell outside the data)")
    else:
        entries = native_entries(root, roles, version, origin, size)
    return make_dataset(KIND, root or "public", split, entries, valid_fraction,
                        {"seg_version": version})


def check_version(seg_version: int | str) -> int:
    try:
        v = int(str(seg_version).lower().lstrip("vm"))
    except ValueError:
        v = None
    if v not in VERSIONS:
        raise ValueError(
            f"microns: unknown seg_version {seg_version!r}; expected one of {sorted(VERSIONS)}"
        )
    return v


def layers(root_or_url: Any, version: int) -> tuple[Any, Any, bool]:
    """(EM kvstore, segmentation kvstore, public?) for a root, mirror URL or the public layers."""
    if root_or_url is None or str(root_or_url) == "public":
        return PUBLIC["em"], PUBLIC[version], True
    text = os.fspath(root_or_url)
    if "://" in text and not text.startswith("file://"):
        base = text.rstrip("/") + "/"
        return base + "em/", base + VERSIONS[version] + "/", False
    root = Path(text[len("file://"):] if text.startswith("file://") else text).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"microns: root {root} does not exist (expected a directory with em/ and "
            f"{VERSIONS[version]}/ precomputed layers, a prepared root, or a URL)"
        )
    out = []
    for sub in ("em", VERSIONS[version]):
        if not (root / sub / "info").is_file():
            present = sorted(p.name for p in root.iterdir())
            raise FileNotFoundError(
                f"{root / sub}: no precomputed layer (expected {sub}/info for seg_version={version}); "
                f"found {present}"
            )
        out.append({"driver": "file", "path": str((root / sub).resolve()) + "/"})
    return out[0], out[1], False


def read_info(kvstore: Any) -> dict:
    where = net.kvstore_url(kvstore)
    remote = net.is_remote(kvstore)
    ctx = ts.Context(net.tensorstore_context(), parent=shared_context()) if remote else shared_context()
    try:
        kv = net.wait(ts.KvStore.open(kvstore, context=ctx), where, "open")
        res = net.wait(kv.read("info"), where + "info", "read of the precomputed info file")
    except net.NetworkError:
        raise
    except Exception as e:  # noqa: BLE001 - parse and local errors alike
        raise OSError(f"{where}: cannot read the precomputed info file ({_first_line(e)})") from None
    if res.state != "value":
        raise FileNotFoundError(f"{where}: no precomputed info file")
    try:
        info = json.loads(bytes(res.value))
        info["scales"][0]["resolution"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise ValueError(f"{where}info: not a precomputed info file ({e!r})") from None
    if int(info.get("num_channels", 1)) != 1:
        raise ValueError(f"{where}: expected 1 channel; found {info.get('num_channels')}")
    return info


def _finest(scales: list[dict]) -> int:
    return int(np.argmin([np.prod(s["resolution"]) for s in scales]))


def pick_scales(em_info: dict, seg_info: dict, where: str = "") -> tuple[int, int, tuple[int, ...] | None]:
    """(EM scale index, segmentation scale index, downsample factors or None) by resolution."""
    si = _finest(seg_info["scales"])
    r_s = np.asarray(seg_info["scales"][si]["resolution"], float)
    for ei, s in enumerate(em_info["scales"]):
        if np.allclose(s["resolution"], r_s):
            return ei, si, None
    ei = _finest(em_info["scales"])
    r_e = np.asarray(em_info["scales"][ei]["resolution"], float)
    f = r_s / r_e
    if not (np.allclose(f, np.round(f)) and (np.round(f) >= 1).all()):
        raise ValueError(
            f"microns{where}: the EM scales ({[s['resolution'] for s in em_info['scales']]} nm) hold none "
            f"matching the segmentation's {r_s.tolist()} nm, nor one it is an integer multiple of"
        )
    return ei, si, tuple(int(v) for v in np.round(f))


def _bounds(scale: dict, factors=None) -> tuple[np.ndarray, np.ndarray]:
    lo = np.asarray(scale.get("voxel_offset", [0, 0, 0]), np.int64)
    hi = lo + np.asarray(scale["size"], np.int64)
    if factors is not None:
        f = np.asarray(factors)
        lo, hi = lo // f, -((-hi) // f)
    return lo, hi


def native_entries(root_or_url, roles=("trainval", "test"), seg_version=1300, origin=None, size=None) -> list[Entry]:
    version = check_version(seg_version)
    em_kv, seg_kv, public = layers(root_or_url, version)
    em_info, seg_info = read_info(em_kv), read_info(seg_kv)
    ei, si, factors = pick_scales(em_info, seg_info, f" ({root_or_url or 'public'})")
    seg_scale, em_scale = seg_info["scales"][si], em_info["scales"][ei]
    lo, hi = _bounds(seg_scale)
    if origin is None:
        origin = DEFAULT_ORIGIN if public else tuple(lo)
    o = np.asarray([int(v) for v in origin], np.int64)
    if size is None:
        n = np.asarray(DEFAULT_SIZE if public else (hi - o) // [2, 1, 1], np.int64)
    else:
        n = np.asarray([int(v) for v in size], np.int64)
    if len(o) != 3 or len(n) != 3:
        raise ValueError(f"microns: origin and size are (x, y, z); got origin={origin!r} size={size!r}")
    if (n < 1).any():
        raise ValueError(f"microns: size must be positive in x, y, z; got {tuple(n.tolist())} (an empty volume)")
    res = tuple(float(v) for v in seg_scale["resolution"])
    vs = res[::-1]
    em_lo, em_hi = _bounds(em_scale, factors)
    out = []
    for role, start in (("trainval", o), ("test", o + [n[0], 0, 0])):
        if role not in roles:
            continue
        stop = start + n
        for what, b_lo, b_hi in (("segmentation", lo, hi), ("EM", em_lo, em_hi)):
            if (start < b_lo).any() or (stop > b_hi).any():
                raise ValueError(
                    f"microns: the {role} crop x, y, z [{_fmt(start)}) .. [{_fmt(stop)}) (segmentation "
                    f"voxels of {res} nm) is outside the {what} bounds [{_fmt(b_lo)}) .. [{_fmt(b_hi)})"
                )
        image = Volume(PrecomputedCrop(em_kv, ei, start, n, factors), vs)
        label = Volume(PrecomputedCrop(seg_kv, si, start, n), vs)
        if label.dtype.kind not in "ui":
            raise TypeError(f"{label.name}: segmentation dtype {label.dtype}; expected integer ids")
        label = Volume(_AsUint64(label.source), vs) if label.dtype != np.uint64 else label
        name = "crop" if role == "trainval" else "crop_test"
        out.append(Entry(make_pair(name, image, label), role, f"v{version}", [image.name, label.name]))
    return out


def _fmt(v) -> str:
    return ", ".join(str(int(x)) for x in v)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _env_int(var: str, default: int) -> int:
    text = os.environ.get(var, "").strip()
    if not text:
        return default
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{var}: expected a positive integer; got {text!r}")
    return value


def block_voxels() -> int:
    """Voxels of one TensorStore read: larger boxes are read block by block."""
    return _env_int(ENV_BLOCK_VOXELS, 1 << 24)


def max_read_bytes() -> int:
    """The largest array one read may return (default: half the physical memory)."""
    try:
        half = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        half = 8 << 30
    return _env_int(ENV_MAX_READ_BYTES, int(half) if half > 0 else 8 << 30)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def block_shape(shape: Sequence[int], budget: int, chunk: Sequence[int] | None = None) -> tuple[int, ...]:
    """A block of at most ``budget`` voxels (unless one chunk is larger) covering ``shape``.

    Blocks are whole multiples of ``chunk`` where they are cut; the longest side is halved
    first, so blocks stay compact in all three axes.
    """
    unit = [max(1, int(c)) for c in (chunk or (1,) * len(shape))]
    size = [max(1, int(n)) for n in shape]
    while math.prod(size) > budget:
        cut = [a for a in range(len(size)) if size[a] > unit[a]]
        if not cut:
            break
        a = max(cut, key=lambda i: size[i])
        half = -(-size[a] // 2)
        size[a] = max(unit[a], half // unit[a] * unit[a])
    return tuple(size)


def _edges(start: int, stop: int, step: int, origin: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut at ``origin + k * step`` (the chunk grid when step is chunk-sized)."""
    out, a = [], start
    while a < stop:
        b = min(stop, origin + ((a - origin) // step + 1) * step)
        out.append((a, b))
        a = b
    return out


def blocks(slices: Sequence[slice], budget: int, chunk: Sequence[int] | None = None,
           grid_origin: Sequence[int] | None = None) -> Iterator[tuple[slice, ...]]:
    """Boxes of at most ``budget`` voxels tiling ``slices``, aligned to the chunk grid."""
    shape = [s.stop - s.start for s in slices]
    size = block_shape(shape, budget, chunk)
    origin = list(grid_origin or [0] * len(shape))
    per_axis = [
        [(s.start, s.stop)] if n >= s.stop - s.start else _edges(s.start, s.stop, n, o)
        for s, n, o in zip(slices, size, origin)
    ]
    for box in itertools.product(*per_axis):
        yield tuple(slice(a, b) for a, b in box)


class PrecomputedCrop(TensorStoreSource):
    """A box of one precomputed scale (absolute XYZ voxels), seen as ZYX from zero; picklable.

    With ``factors`` the scale is mean-downsampled first (TensorStore ``downsample`` driver), and
    the box is in downsampled voxels.
    """

    def __init__(self, kvstore: Any, scale_index: int, start: Sequence[int], size: Sequence[int],
                 factors: Sequence[int] | None = None):
        base = {"driver": PRECOMPUTED, "kvstore": kvstore, "scale_index": int(scale_index)}
        spec: dict = base if factors is None else {
            "driver": "downsample",
            "downsample_factors": [*(int(f) for f in factors), 1],
            "downsample_method": "mean",
            "base": base,
        }
        self.start = tuple(int(v) for v in start)
        self.size = tuple(int(v) for v in size)
        self.factors = None if factors is None else tuple(int(f) for f in factors)
        self.url = net.kvstore_url(kvstore)
        self._chunks: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        super().__init__(net.remote_spec(spec))

    @property
    def store(self) -> ts.TensorStore:
        """The crop, opened on first use within the network policy's deadline."""
        if self._store is None:
            try:
                s = net.wait(ts.open(self.spec, read=True, context=shared_context()), self.url,
                             "open of the precomputed layer")
            except net.NetworkError:
                raise
            except Exception as e:  # noqa: BLE001 - re-raised with the layer named
                raise OSError(f"cannot open {self.describe()}: {_first_line(e)}") from None
            view = self._view(s)
            self._chunks = self._chunk_grid(view)
            self._store = view
        return self._store

    def _chunk_grid(self, view: ts.TensorStore) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """(chunk shape, grid origin) in the crop's ZYX coordinates; refuses oversized chunks."""
        try:
            layout = view.chunk_layout
            shape = tuple(int(c) for c in layout.read_chunk.shape)
            origin = tuple(int(o) for o in layout.grid_origin)
        except Exception:  # noqa: BLE001 - no chunk layout: blocks are cut anywhere
            return None
        if len(shape) != 3 or len(origin) != 3 or min(shape) < 1:
            return None
        base = math.prod(shape) * math.prod(self.factors or (1,))  # voxels decoded per chunk
        itemsize = np.dtype(view.dtype.numpy_dtype).itemsize
        if base * itemsize > max_read_bytes():
            raise ValueError(
                f"{self.describe()}: its chunks of {' x '.join(map(str, shape))} voxels (z, y, x) "
                f"need {_bytes(base * itemsize)} each to decode, more than the read "
                f"limit {_bytes(max_read_bytes())} ({ENV_MAX_READ_BYTES})"
            )
        return shape, origin

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        """The box as one array, read in chunk-aligned blocks of at most ``block_voxels()``."""
        store = self.store
        shape = tuple(s.stop - s.start for s in slices)
        nbytes = math.prod(shape) * self.dtype.itemsize
        limit = max_read_bytes()
        if nbytes > limit:
            raise ValueError(
                f"{self.describe()}: a read of {' x '.join(map(str, shape))} voxels (z, y, x) needs "
                f"{_bytes(nbytes)}, more than the read limit {_bytes(limit)} ({ENV_MAX_READ_BYTES}); "
                "read smaller boxes, or crop less (size=/--size X Y Z)"
            )
        budget = block_voxels()
        if math.prod(shape) <= budget:
            return np.asarray(self._wait(store[slices].read(), slices))
        out = np.empty(shape, self.dtype)
        target = ts.array(out, copy=False, write=True)  # blocks land in ``out``: no second copy
        chunk, origin = self._chunks or (None, None)
        for box in blocks(slices, budget, chunk, origin):
            local = tuple(slice(b.start - s.start, b.stop - s.start) for b, s in zip(box, slices))
            self._wait(target[local].write(store[box]), box)
        return out

    def _wait(self, future: Any, box: tuple[slice, ...]) -> Any:
        """A read of ``box`` within the network deadline; errors name the layer and the box."""
        nbytes = math.prod(b.stop - b.start for b in box) * self.dtype.itemsize
        nbytes *= math.prod(self.factors or (1,))  # the downsample driver reads the finer scale
        try:
            return net.wait(future, self.url, "read", nbytes=nbytes)
        except net.NetworkError:
            raise
        except (ValueError, RuntimeError, OSError) as e:  # a missing chunk, a corrupt one
            raise read_error(self.describe(), box, e) from None

    def _view(self, s: ts.TensorStore) -> ts.TensorStore:
        x0, y0, z0 = self.start
        x1, y1, z1 = (a + b for a, b in zip(self.start, self.size))
        return s[x0:x1, y0:y1, z0:z1, 0].T.translate_to[0, 0, 0]

    def describe(self) -> str:
        base = self.spec.get("base", self.spec)
        kv = base["kvstore"]
        where = kv if isinstance(kv, str) else kv.get("path", "")
        box = ", ".join(f"{a}:{a + b}" for a, b in zip(self.start, self.size))
        ds = f" downsampled {self.factors}" if self.factors else ""
        return f"{where} scale {base['scale_index']}{ds} [x, y, z = {box}]"

    def files(self) -> list[str]:
        return [self.describe()]

    def __getstate__(self):
        state = super().__getstate__()
        state["_chunks"] = None
        return state


class _AsUint64:
    """Segment ids as uint64 whatever the stored integer type."""

    def __init__(self, source):
        self.source, self.shape, self.dtype = source, source.shape, np.dtype(np.uint64)

    def read(self, slices):
        return self.source.read(slices).astype(np.uint64)

    def describe(self) -> str:
        return self.source.describe()

    def files(self) -> list[str]:
        return self.source.files()


def options(seg_version=1300, origin=None, size=None) -> dict:
    return {"seg_version": check_version(seg_version),
            "origin": None if origin is None else [int(v) for v in origin],
            "size": None if size is None else [int(v) for v in size]}


register_kind(
    KIND,
    microns,
    rule=KIND,
    help="MICrONS minnie65: EM + proofread segmentation streamed from precomputed layers",
    root_help="'public', a local root or mirror URL with em/ and seg_m*/ layers, or a prepared root",
    native_entries=native_entries,
    options=options,
    root_optional=True,
    prepare_options=(
        option("--seg-version", dest="seg_version", type=int, help="117, 343, 943 or 1300 (default 1300)"),
        option("--origin", dest="origin", type=int, nargs=3, metavar=("X", "Y", "Z"),
               help=f"crop origin in segmentation voxels, {XYZ_NOTE}"),
        option("--size", dest="size", type=int, nargs=3, metavar=("X", "Y", "Z"),
               help=f"crop size in segmentation voxels, {XYZ_NOTE}"),
    ),
    downloader=Downloader(
        "neurons_jax.download.microns:download",
        help="nothing by default (streamed); --cache stores a crop as local zarr3",
        http=False,  # TensorStore does the transfers
        options=(
            option("--cache", dest="cache", action="store_true",
                   help="write the crop to a local zarr3 store (default: nothing to do)"),
            option("--origin", dest="origin", nargs=3, metavar=("X", "Y", "Z"),
                   help=f"crop origin: 3 integers >= 0 in segmentation voxels, {XYZ_NOTE} "
                        "(default: the reader's)"),
            option("--size", dest="size", nargs=3, metavar=("X", "Y", "Z"),
                   help=f"crop size: 3 positive integers in segmentation voxels, {XYZ_NOTE} "
                        "(default: the reader's)"),
            option("--seg-version", dest="seg_versions", nargs="+", metavar="V",
                   help="segmentation versions among 117 343 943 1300, or 'all' (default 1300)"),
        ),
        done="cached crops are prepared roots: nj.datasets.microns(<one of the paths above>, "
             "split=...) reads them offline",
    ),
    sample="neurons_jax.sample:_microns",
)
