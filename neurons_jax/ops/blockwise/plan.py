"""The block grid of a blockwise job: block ids, boxes, neighbours and output chunks.

Blocks tile the volume in C order of their grid index; the last block along an axis is cut
short when the block shape does not divide the volume. Output chunks divide the block shape,
so two blocks never write the same chunk.

Example:
    >>> from neurons_jax.ops.blockwise.plan import BlockGrid
    >>> g = BlockGrid((10, 8, 8), (4, 8, 8))
    >>> g.grid, g.n_blocks, g.box(2)
    ((3, 1, 1), 3, (slice(8, 10, None), slice(0, 8, None), slice(0, 8, None)))
    >>> g.chunks((32, 128, 128))
    (4, 8, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlockGrid:
    """Blocks of ``block_shape`` tiling a volume of ``shape`` (both ZYX)."""

    shape: tuple[int, ...]
    block_shape: tuple[int, ...]

    def __init__(self, shape: Sequence[int], block_shape: Sequence[int]):
        shape = tuple(int(s) for s in shape)
        block = tuple(int(b) for b in block_shape)
        if len(shape) != 3:
            raise ValueError(f"blockwise ops need a 3D (Z, Y, X) volume; got shape {shape}")
        if len(block) != 3 or any(b < 1 for b in block):
            raise ValueError(f"block_shape must be three positive ints (Z, Y, X); got {tuple(block_shape)}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "block_shape", block)

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(-(-s // b) for s, b in zip(self.shape, self.block_shape))

    @property
    def n_blocks(self) -> int:
        return int(np.prod(self.grid))

    def index(self, bid: int) -> tuple[int, ...]:
        """Grid index (i, j, k) of block ``bid``."""
        return tuple(int(i) for i in np.unravel_index(bid, self.grid))

    def bid(self, index: Sequence[int]) -> int | None:
        """Block id at grid ``index``, or None outside the grid."""
        if any(i < 0 or i >= g for i, g in zip(index, self.grid)):
            return None
        return int(np.ravel_multi_index(tuple(index), self.grid))

    def origin(self, bid: int) -> tuple[int, ...]:
        return tuple(i * b for i, b in zip(self.index(bid), self.block_shape))

    def extent(self, bid: int) -> tuple[int, ...]:
        return tuple(min(b, s - o) for o, b, s in zip(self.origin(bid), self.block_shape, self.shape))

    def box(self, bid: int) -> tuple[slice, ...]:
        return tuple(slice(o, o + e) for o, e in zip(self.origin(bid), self.extent(bid)))

    def upper(self, bid: int, delta: Sequence[int]) -> int | None:
        """The block at grid offset ``delta`` (entries 0 or 1) from ``bid``, or None."""
        return self.bid(tuple(i + d for i, d in zip(self.index(bid), delta)))

    def chunks(self, target: Sequence[int]) -> tuple[int, ...]:
        """Output chunk shape: per axis the largest divisor of the block size that is at most
        the target and at least a quarter of it, else the block size (so chunks never straddle
        two blocks)."""
        out = []
        for b, t in zip(self.block_shape, target):
            d = next((d for d in range(min(b, int(t)), 0, -1) if b % d == 0), b)
            out.append(d if 4 * d >= min(b, int(t)) else b)
        return tuple(out)

    def check_chunks(self, chunks: Sequence[int]) -> tuple[int, ...]:
        chunks = tuple(int(c) for c in chunks)
        if len(chunks) != 3 or any(c < 1 or b % c for c, b in zip(chunks, self.block_shape)):
            raise ValueError(
                f"chunks must be three positive ints dividing block_shape {self.block_shape}; got {chunks}"
            )
        return chunks


@dataclass(frozen=True)
class Hierarchy:
    """Groups of neighbouring blocks, level by level: level 0 is the block grid, a level-L
    group is a box of ``group_shape`` level-(L-1) groups (cut short at the volume's end), and
    the top level ``top`` is one group covering the whole grid.

    Example:
        >>> h = Hierarchy((5, 2, 1), (2, 2, 2))
        >>> h.top, h.grid_at(1), h.children(1, 0), h.ancestor(4, 2)
        (3, (3, 1, 1), [0, 1, 2, 3], 0)
    """

    grid: tuple[int, ...]
    group_shape: tuple[int, ...]

    def __init__(self, grid: Sequence[int], group_shape: Sequence[int]):
        grid = tuple(int(g) for g in grid)
        group = tuple(int(g) for g in group_shape)
        if len(group) != 3 or any(g < 1 for g in group) or all(g == 1 for g in group):
            raise ValueError(
                f"group_shape must be three positive ints, at least one of them >= 2 (Z, Y, X); "
                f"got {tuple(group_shape)}"
            )
        if any(n > 1 and g == 1 for n, g in zip(grid, group)):
            raise ValueError(
                f"group_shape {group} never groups along an axis where the block grid {grid} has "
                "more than one block; use 2 or more there"
            )
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "group_shape", group)

    def span(self, level: int) -> tuple[int, ...]:
        """Blocks per level-``level`` group along each axis."""
        return tuple(g ** int(level) for g in self.group_shape)

    @property
    def top(self) -> int:
        level = 0
        while any(-(-n // s) > 1 for n, s in zip(self.grid, self.span(level))):
            level += 1
        return level

    def grid_at(self, level: int) -> tuple[int, ...]:
        return tuple(-(-n // s) for n, s in zip(self.grid, self.span(level)))

    def n_groups(self, level: int) -> int:
        return int(np.prod(self.grid_at(level)))

    def children(self, level: int, gid: int) -> list[int]:
        """Ids (at ``level`` - 1, C order) of the members of group ``gid`` at ``level``."""
        idx = np.unravel_index(gid, self.grid_at(level))
        below = self.grid_at(level - 1)
        ranges = [range(i * g, min((i + 1) * g, n)) for i, g, n in zip(idx, self.group_shape, below)]
        return [int(np.ravel_multi_index((a, b, c), below)) for a in ranges[0] for b in ranges[1] for c in ranges[2]]

    def ancestor(self, bid: int, level: int) -> int:
        """The level-``level`` group holding block ``bid``."""
        idx = np.unravel_index(bid, self.grid)
        return int(np.ravel_multi_index(tuple(i // s for i, s in zip(idx, self.span(level))), self.grid_at(level)))

    def pair_levels(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per pair of block ids, the first level whose groups hold both (uint8; 0 if equal)."""
        ia = np.stack(np.unravel_index(np.asarray(a, np.int64), self.grid), axis=1)
        ib = np.stack(np.unravel_index(np.asarray(b, np.int64), self.grid), axis=1)
        out = np.zeros(len(ia), np.uint8)
        todo = np.ones(len(ia), bool)
        for level in range(self.top + 1):
            span = np.array(self.span(level))
            same = todo & np.all(ia // span == ib // span, axis=1)
            out[same] = level
            todo &= ~same
        return out

    def open_at(self, bid: np.ndarray, faces: np.ndarray, level: int) -> np.ndarray:
        """Whether nodes in blocks ``bid`` touching the block faces ``faces`` (bits 2a: lower
        face on axis a, 2a+1: upper face) touch a face of their level-``level`` group that
        another group shares."""
        idx = np.unravel_index(np.asarray(bid, np.int64), self.grid)
        out = np.zeros(len(faces), bool)
        for a, (i, s, n) in enumerate(zip(idx, self.span(level), self.grid)):
            lower = (faces >> (2 * a)) & 1 == 1
            upper = (faces >> (2 * a + 1)) & 1 == 1
            out |= lower & (i % s == 0) & (i > 0)
            out |= upper & ((i + 1) % s == 0) & (i + 1 < n)
        return out
