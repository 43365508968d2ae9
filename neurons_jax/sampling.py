"""Patch sampling: where each patch comes from, as a pure function of (seed, index).

``PatchSource`` is a Grain random-access source over one dataset split. In ``train`` mode it is
effectively endless: element ``i`` draws a volume and a position from ``default_rng((seed,
dataset_id, i))``, restricted to positions an *acceptance map* allows (the share of labelled
voxels in the patch around a position, computed once per volume on a coarse grid), so
acceptable positions are drawn directly, never by an unbounded rejection loop. In ``valid`` /
``test`` mode it tiles each volume with patches (the last tile flush with the end), in a fixed
order, with no augmentation.

Each element is a dict of the raw *context* region (patch plus the margin the augmentation
needs), its labels and mask, and where it came from; reading happens in ``__getitem__`` so
Grain worker processes do the I/O. A float image is checked for NaN/inf there, patch by patch
(lazily: a volume is never scanned whole), and a non-finite voxel raises
:class:`NonFiniteImageError` naming the dataset, the volume and the voxel, instead of turning
the loss into NaN.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> from neurons_jax.datasets.base import Dataset, VolumePair
    >>> img = nj.Volume.from_array(np.zeros((8, 32, 32), np.uint8), (30, 6, 6))
    >>> lab = nj.Volume.from_array(np.ones((8, 32, 32), np.uint32), (30, 6, 6))
    >>> ds = Dataset("snemi3d", "train", (VolumePair("AC4", img, lab),))
    >>> src = PatchSource(ds, patch_shape=(4, 16, 16), context_shape=(4, 16, 16), seed=0)
    >>> src[3]["image"].shape
    (4, 16, 16)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .datasets.base import Dataset, VolumePair

ENDLESS = 2**40  # length of a train source: positions are drawn per index, never exhausted


class NonFiniteImageError(ValueError):
    """A float image region read for a patch holds NaN or inf."""


def first_nonfinite(image: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN/inf voxel of a float ``image`` (C order), or None when all are finite.

    A float64 sum finds the common case (all finite) without a boolean copy of the patch; only
    a non-finite sum (a NaN/inf, or a float64 overflow) looks voxel by voxel.

    >>> a = np.zeros((2, 3, 4), np.float32); a[1, 2, 0] = np.nan
    >>> first_nonfinite(a), first_nonfinite(np.ones((2, 2), np.float32)), first_nonfinite(np.ones(3, np.uint8))
    ((1, 2, 0), None, None)
    """
    if image.dtype.kind != "f" or image.size == 0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(image, dtype=np.float64)):
            return None
    bad = np.flatnonzero(~np.isfinite(image.reshape(-1)))
    if not len(bad):
        return None  # the sum overflowed, every voxel is finite
    return tuple(int(i) for i in np.unravel_index(int(bad[0]), image.shape))


@dataclass(frozen=True)
class AcceptanceMap:
    """Coarse grid of acceptable context origins of one volume.

    ``origins`` holds the lowest-corner context origins (z, y, x) of cells whose labelled
    share is at least the threshold; ``cell`` is the grid spacing; ``hi`` the largest valid
    origin per axis. A draw picks one origin and jitters it inside its cell.
    """

    origins: np.ndarray  # (K, 3) int64
    cell: tuple[int, int, int]
    hi: tuple[int, int, int]
    share: float  # fraction of grid positions accepted

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        o = self.origins[rng.integers(len(self.origins))]
        jitter = rng.integers(0, np.asarray(self.cell))
        return np.minimum(o + jitter, np.asarray(self.hi))


def _box_mean(a: np.ndarray, win: Sequence[int]) -> np.ndarray:
    """Mean of ``a`` over every window of shape ``win`` (valid positions only), via cumsums."""
    c = a.astype(np.float64)
    for ax, w in enumerate(win):
        c = np.cumsum(c, axis=ax)
        pad = [(0, 0)] * c.ndim
        pad[ax] = (1, 0)
        c = np.pad(c, pad)
        hi = np.take(c, np.arange(w, c.shape[ax]), axis=ax)
        lo = np.take(c, np.arange(0, c.shape[ax] - w), axis=ax)
        c = hi - lo
    return c / float(np.prod(win))


def acceptance_map(
    pair: VolumePair,
    context_shape: Sequence[int],
    min_foreground: float,
    *,
    cell: Sequence[int] | None = None,
    slab: int = 16,
) -> AcceptanceMap:
    """Compute the acceptance map of one volume (one read of its labels, slab by slab)."""
    shape = np.asarray(pair.image.shape)
    ctx = np.asarray(context_shape)
    hi = np.maximum(shape - ctx, 0)  # a volume smaller than the context is padded
    if cell is None:
        cell = np.maximum(1, np.minimum(ctx // 4, (1, 16, 16)) if len(ctx) == 3 else ctx // 4)
        cell = np.maximum(1, np.minimum(np.asarray(cell), ctx))
    cell = tuple(int(c) for c in cell)
    grid = [np.arange(0, h + 1, c) for h, c in zip(hi, cell)]
    if min_foreground <= 0 or pair.label is None:
        mesh = np.stack(np.meshgrid(*grid, indexing="ij"), -1).reshape(-1, 3)
        return AcceptanceMap(mesh.astype(np.int64), cell, tuple(int(h) for h in hi), 1.0)
    # labelled fraction on the coarse grid, read in z slabs to bound memory
    zc, yc, xc = cell
    fg = []
    for z0 in range(0, int(shape[0]), slab * zc):
        z1 = min(int(shape[0]), z0 + slab * zc)
        lab = pair.label.read((slice(z0, z1), slice(0, int(shape[1])), slice(0, int(shape[2]))))
        fg.append(lab[::zc, ::yc, ::xc] != 0)
    frac = np.concatenate(fg, 0)
    win = tuple(max(1, int(np.ceil(c / s))) for c, s in zip(ctx, cell))
    win = tuple(min(w, n) for w, n in zip(win, frac.shape))
    share = _box_mean(frac, win)
    share = share[tuple(slice(0, len(g)) for g in grid)]
    # grid index g covers origins g*cell; box mean at coarse index g covers [g, g+win)
    ok = np.argwhere(share >= min_foreground)
    if len(ok) == 0:
        raise ValueError(
            f"{pair.name}: no patch position has a labelled share >= {min_foreground} "
            f"(best {float(share.max()):.3f}); lower min_foreground"
        )
    origins = ok * np.asarray(cell)
    total = int(np.prod([len(g) for g in grid]))
    return AcceptanceMap(origins.astype(np.int64), cell, tuple(int(h) for h in hi), len(ok) / total)


def tile_origins(shape: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """Origins of patches tiling ``shape`` (stride = patch, the last tile flush with the end)."""
    axes = []
    for n, p in zip(shape, patch):
        starts = list(range(0, n - p + 1, p))
        if starts[-1] != n - p:
            starts.append(n - p)
        axes.append(starts)
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(shape)).astype(np.int64)


class PatchSource:
    """Grain random-access source of raw context regions of one dataset split."""

    def __init__(
        self,
        dataset: Dataset,
        patch_shape: Sequence[int],
        context_shape: Sequence[int],
        *,
        seed: int = 0,
        dataset_id: int = 0,
        name: str | None = None,
        min_foreground: float = 0.0,
        pad: bool = False,
    ):
        self.dataset = dataset
        self.name = name or dataset.kind
        self.dataset_id = int(dataset_id)
        self.patch_shape = tuple(int(p) for p in patch_shape)
        self.context_shape = tuple(int(c) for c in context_shape)
        self.seed = int(seed)
        self.train = dataset.split == "train"
        self.pad = pad
        self.margin = tuple((c - p) // 2 for c, p in zip(self.context_shape, self.patch_shape))
        for pair in dataset.pairs:
            need = self.context_shape if self.train else self.patch_shape
            if any(s < c for s, c in zip(pair.image.shape, need)) and not pad:
                what = (f"context region {need} (patch {self.patch_shape} plus the augmentation margin)"
                        if self.train and need != self.patch_shape else f"patch {need}")
                raise ValueError(
                    f"dataset {self.name!r} volume {pair.name}: shape {tuple(pair.image.shape)} is "
                    f"smaller than the {what}; use a smaller patch_shape (--patch), "
                    "or pad=True (--pad: the padding is masked out)"
                )
        if self.train:
            self.maps = [
                acceptance_map(p, self.context_shape, min_foreground) for p in dataset.pairs
            ]
            w = np.array([len(m.origins) * np.prod(m.cell) for m in self.maps], np.float64)
            self.volume_p = w / w.sum()
            self._len = ENDLESS
        else:
            self.tiles = [tile_origins(self._fit(p.image.shape, self.patch_shape), self.patch_shape) for p in dataset.pairs]
            self.offsets = np.cumsum([0] + [len(t) for t in self.tiles])
            self._len = int(self.offsets[-1])

    def _fit(self, shape: Sequence[int], region: Sequence[int] | None = None) -> tuple[int, ...]:
        """The volume shape, grown to the region when padding is allowed."""
        region = region or self.context_shape
        return tuple(max(int(s), int(c)) for s, c in zip(shape, region))

    def __len__(self) -> int:
        return self._len

    def position(self, index: int) -> tuple[int, np.ndarray]:
        """(volume index, context origin) of element ``index``: a pure function of (seed, index)."""
        if self.train:
            rng = np.random.default_rng((self.seed, self.dataset_id, int(index)))
            v = int(rng.choice(len(self.maps), p=self.volume_p)) if len(self.maps) > 1 else 0
            return v, self.maps[v].draw(rng)
        if not 0 <= index < self._len:
            raise IndexError(f"{self.name}: index {index} outside 0..{self._len - 1}")
        v = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return v, self.tiles[v][index - self.offsets[v]]

    def _read(self, vol, origin: np.ndarray, shape: Sequence[int], fill=0) -> tuple[np.ndarray, np.ndarray | None]:
        """Read a region, padding outside the volume (only reachable with pad=True); the second
        value is the uint8 inside-the-volume mask, None when the region lies inside."""
        lo = np.maximum(origin, 0)
        hi = np.minimum(origin + np.asarray(shape), np.asarray(vol.shape))
        data = vol.read(tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)))
        if tuple(data.shape) == tuple(shape):
            return data, None
        out = np.full(shape, fill, dtype=data.dtype)
        valid = np.zeros(shape, np.uint8)
        sl = tuple(slice(int(a - o), int(b - o)) for a, b, o in zip(lo, hi, origin))
        out[sl] = data
        valid[sl] = 1
        return out, valid

    def locate(self, index: int) -> dict:
        """Where element ``index`` comes from, without reading: dataset, volume, ``origin`` of its
        context region, ``position`` of its patch, voxel size. A pure function of (seed, index)."""
        v, origin = self.position(int(index))
        patch_origin = origin + np.asarray(self.margin) if self.train else origin
        return {
            "dataset": np.int32(self.dataset_id),
            "volume": np.int32(v),
            "origin": np.asarray(origin, np.int64),
            "position": patch_origin.astype(np.int64),
            "index": np.int64(index),
            "voxel_size": np.asarray(self.dataset.pairs[v].image.voxel_size, np.float32),
        }

    def read_region(self, volume: int, origin: np.ndarray, shape: Sequence[int],
                    index: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(image, label, mask)`` of the region ``origin + shape`` of volume ``volume``; ``mask``
        is None when every voxel is valid (inside the volume and its mask), else uint8 0/1."""
        pair = self.dataset.pairs[volume]
        origin = np.asarray(origin, np.int64)
        shape = tuple(int(s) for s in shape)
        image, valid = self._read(pair.image, origin, shape)
        bad = first_nonfinite(image)
        if bad is not None:
            base = np.asarray(getattr(pair.image, "origin", None) or (0, 0, 0))
            at = tuple(int(v) for v in base + origin + np.asarray(bad))
            raise NonFiniteImageError(
                f"dataset {self.name!r} volume {pair.name} ({pair.image.name}): image voxel z,y,x={at} "
                f"is {image[bad]} (source coordinates; in the region {shape} read at z,y,x="
                f"{tuple(int(o) for o in origin)} of the {self.dataset.split} volume, element {int(index)}); "
                "expected finite intensities: replace the NaN/inf voxels of the source image"
            )
        if pair.label is not None:
            label, _ = self._read(pair.label, origin, shape)
        else:
            label = np.zeros(shape, np.uint32)
        if pair.mask is not None:
            m, _ = self._read(pair.mask, origin, shape)
            inside = (m != 0).view(np.uint8)
            valid = inside if valid is None else valid & inside
            if valid.all():
                valid = None
        return image, label, valid

    def __getitem__(self, index: int) -> dict:
        """The element with its whole region read (the context in train mode, the patch else)."""
        t0 = time.perf_counter()
        out = self.locate(index)
        region = self.context_shape if self.train else self.patch_shape
        image, label, valid = self.read_region(int(out["volume"]), out["origin"], region, index)
        return {
            "image": image,
            "label": label,
            "mask": np.ones(region, np.uint8) if valid is None else valid,
            "dataset": out["dataset"],
            "volume": out["volume"],
            "position": out["position"],
            "index": out["index"],
            "read_s": np.float64(time.perf_counter() - t0),
        }


class Locations:
    """Grain source of ``PatchSource.locate`` elements (no I/O): the Loader reads each sample's
    own footprint later, once its augmentation params are drawn (``transforms.ReadSample``)."""

    def __init__(self, source: PatchSource):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        return self.source.locate(int(index))
