"""A generated label volume of any size: computed box by box from the coordinates, no input file.

``GeneratedSource(shape, seed)`` is a Volume source (``Volume(GeneratedSource(...))``, or the
spec ``{"driver": "nj_generated", "shape": [Z, Y, X], "seed": 0}`` wherever a blockwise op takes
a source) whose components are known by construction, for tests and benchmarks at scales no
in-memory reference reaches:

- *cells*: the boxes of a jittered rectilinear grid (cut spacings drawn per axis from the seed:
  12-30 voxels along z, 28-44 along y and x), each a distinct uint64 id (a bijective hash of the
  cell's index, spread over 1..2**64-1), so each cell is one component;
- *tubes*: in every second cell column (a y-x cell footprint), a helix along z (radius 8,
  period 64 sections, tube radius 2.5, phase from the seed) with its own id, winding through
  every z cell and block of that column: one component each. A helix stays 2 voxels away from
  its column's sides, so it never cuts a cell in two (it bores through the z faces only).

So any connectivity gives ``n_components`` components: cells plus tubes. Reads cost a few
operations per voxel (compiled): a 256**3 block takes about 0.1 s on one core.

Example:
    >>> import numpy as np
    >>> from neurons_jax.ops.blockwise.generated import GeneratedSource
    >>> g = GeneratedSource((40, 64, 64), seed=1)
    >>> a = g.read((slice(0, 40), slice(0, 64), slice(0, 64)))
    >>> a.dtype, g.n_components == len(np.unique(a)), int(a.min()) > 0
    (dtype('uint64'), True, True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplication by it permutes the uint64s
SPACING = ((12, 30), (28, 44), (28, 44))
HELIX_RADIUS, HELIX_PERIOD, TUBE_RADIUS = 8.0, 64.0, 2.5


def _cuts(n: int, lo: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    """Cell boundaries 0 = c0 < c1 < ... < ck = n, spacings in [lo, hi] (the last one may be
    up to hi + lo)."""
    steps = rng.integers(lo, hi + 1, size=n // lo + 2)
    cuts = np.concatenate([[0], np.cumsum(steps)])
    cuts = cuts[cuts < n]
    if len(cuts) > 1 and n - cuts[-1] < lo:
        cuts = cuts[:-1]
    return np.concatenate([cuts, [n]]).astype(np.int64)


class GeneratedSource:
    """Cells and winding tubes (module docstring) over ``shape`` (Z, Y, X), from ``seed``."""

    def __init__(self, shape: Sequence[int], seed: int = 0):
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"GeneratedSource: shape must be three positive ints; got {tuple(shape)}")
        self.seed = int(seed)
        self.dtype = np.dtype(np.uint64)
        rng = np.random.default_rng(self.seed)
        self.cuts = [_cuts(n, lo, hi, rng) for n, (lo, hi) in zip(self.shape, SPACING)]
        cy, cx = (len(c) - 1 for c in self.cuts[1:])
        # a helix needs its column's footprint to keep it 2 voxels from the sides
        room = HELIX_RADIUS + TUBE_RADIUS + 2
        wide_y = np.diff(self.cuts[1]) >= 2 * room
        wide_x = np.diff(self.cuts[2]) >= 2 * room
        self.tube = ((np.add.outer(np.arange(cy), np.arange(cx)) % 2) == 0) & np.outer(wide_y, wide_x)
        self.tube_id = np.full((cy, cx), -1, np.int64)
        self.tube_id[self.tube] = np.arange(int(self.tube.sum()))
        self.phase = rng.uniform(0, 2 * np.pi, (cy, cx))
        self.n_cells = int(np.prod([len(c) - 1 for c in self.cuts]))
        self.n_tubes = int(self.tube.sum())

    @property
    def n_components(self) -> int:
        return self.n_cells + self.n_tubes

    def describe(self) -> str:
        return f"generated{self.shape}:seed={self.seed}"

    def cell_value(self, index: np.ndarray) -> np.ndarray:
        """uint64 id of cell ``index`` (linear, C order of the cell grid); tubes follow cells."""
        with np.errstate(over="ignore"):
            return (np.asarray(index, np.uint64) + np.uint64(1)) * _MIX

    def tube_value(self, t: np.ndarray) -> np.ndarray:
        return self.cell_value(np.asarray(t, np.int64) + self.n_cells)

    def column_centre(self, j: int, k: int) -> tuple[float, float]:
        cy, cx = self.cuts[1], self.cuts[2]
        return (cy[j] + cy[j + 1] - 1) / 2, (cx[k] + cx[k + 1] - 1) / 2

    def read(self, slices: tuple[slice, ...]) -> np.ndarray:
        z, y, x = (np.arange(s.start, s.stop, dtype=np.int64) for s in slices)
        iz, iy, ix = (np.searchsorted(c, v, side="right") - 1 for c, v in zip(self.cuts, (z, y, x)))
        cyc = (self.cuts[1][:-1] + self.cuts[1][1:] - 1) / 2
        cxc = (self.cuts[2][:-1] + self.cuts[2][1:] - 1) / 2
        angle = 2 * np.pi * z[:, None, None] / HELIX_PERIOD + self.phase[None]
        hy, hx = HELIX_RADIUS * np.cos(angle), HELIX_RADIUS * np.sin(angle)  # helix per section
        out = np.empty((len(z), len(y), len(x)), np.uint64)
        _fill(out, y, x, iz, iy, ix, len(self.cuts[1]) - 1, len(self.cuts[2]) - 1, cyc, cxc,
              self.tube_id, hy, hx, self.n_cells)
        return out


@numba.njit(cache=True, nogil=True)
def _fill(out, y, x, iz, iy, ix, ny, nx, cyc, cxc, tube_id, hy, hx, n_cells):  # pragma: no cover
    mix = np.uint64(0x9E3779B97F4A7C15)
    reach = HELIX_RADIUS + TUBE_RADIUS + 1.0
    for a in range(out.shape[0]):
        for b in range(y.size):
            jy = iy[b]
            for c in range(x.size):
                jx = ix[c]
                value = np.uint64((iz[a] * ny + jy) * nx + jx + 1) * mix
                t = tube_id[jy, jx]
                if t >= 0:
                    oy = y[b] - cyc[jy]
                    ox = x[c] - cxc[jx]
                    if abs(oy) <= reach and abs(ox) <= reach:
                        dy = oy - hy[a, jy, jx]
                        dx = ox - hx[a, jy, jx]
                        if dy * dy + dx * dx <= TUBE_RADIUS * TUBE_RADIUS:
                            value = np.uint64(n_cells + t + 1) * mix
                out[a, b, c] = value


def verify(gen: GeneratedSource, vol, n: int, samples: int = 24, seed: int = 0) -> dict:
    """Check a labelling ``vol`` (a Volume) of ``gen`` with ``n`` components against what the
    generator implies: ``n`` is the cell and tube count, and ``samples`` random cells (each box
    without its tube voxels) and tubes (each whole helix, all of z) are one id each, no two the
    same. -> {"n_expected", "sampled", "ok"}."""
    rng = np.random.default_rng(seed)
    seen: dict[int, str] = {}
    ok = n == gen.n_components
    cz, cy, cx = gen.cuts

    def one(box, value, name) -> bool:
        ids = np.unique(vol.read(box)[gen.read(box) == value])
        return len(ids) == 1 and seen.setdefault(int(ids[0]), name) == name

    for _ in range(samples):
        i, j, k = (int(rng.integers(0, len(c) - 1)) for c in gen.cuts)
        box = (slice(cz[i], cz[i + 1]), slice(cy[j], cy[j + 1]), slice(cx[k], cx[k + 1]))
        ok &= one(box, gen.cell_value((i * (len(cy) - 1) + j) * (len(cx) - 1) + k), f"cell {i, j, k}")
    tubes = np.argwhere(gen.tube)
    for j, k in tubes[rng.choice(len(tubes), min(samples, len(tubes)), replace=False)]:
        box = (slice(0, gen.shape[0]), slice(cy[j], cy[j + 1]), slice(cx[k], cx[k + 1]))
        ok &= one(box, gen.tube_value(gen.tube_id[j, k]), f"tube {j, k}")
    return {"n_expected": gen.n_components, "sampled": len(seen), "ok": bool(ok)}


def open_generated(spec: dict) -> GeneratedSource:
    """A ``GeneratedSource`` from ``{"driver": "nj_generated", "shape": [...], "seed": s}``."""
    extra = sorted(set(spec) - {"driver", "shape", "seed"})
    if extra or "shape" not in spec:
        raise ValueError(
            f"a generated source spec takes 'shape' (Z, Y, X) and optionally 'seed'; got {spec!r}"
        )
    return GeneratedSource(spec["shape"], spec.get("seed", 0))
