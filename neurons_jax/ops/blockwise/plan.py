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
