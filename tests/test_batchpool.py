"""Batches in reused shared-memory blocks: written once, reused after release, never leaked."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import synth

from neurons_jax import batchpool
from neurons_jax.pipeline import Loader
from neurons_jax.transforms import StackBatch, stack_batch


def _batch(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"image": rng.random((2, 3, 4), np.float32), "ids": rng.integers(0, 9, (2, 5), np.uint32),
            "params": ["p", seed]}


def test_a_released_block_is_reused_and_a_busy_one_is_not():
    pool, reader = batchpool.BatchPool(token="t1"), batchpool.Reader("t1")
    try:
        a = pool.put(_batch(0))
        b = pool.put(_batch(1))  # a is still busy: a second block
        assert a.name != b.name and len(pool.blocks) == 2
        got = reader.open_batch(a)
        assert np.array_equal(got["image"], _batch(0)["image"]) and got["params"] == ["p", 0]
        del got
        reader.release(a)
        c = pool.put(_batch(2))
        assert c.name == a.name and len(pool.blocks) == 2  # reused, not a new block
        assert np.array_equal(reader.open_batch(c)["ids"], _batch(2)["ids"])
        assert np.array_equal(reader.open_batch(b)["ids"], _batch(1)["ids"])  # b untouched
    finally:
        reader.close_all()
        pool.close()
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(batchpool.block_prefix("t1"))]


def test_past_the_cap_batches_fall_back_to_plain_arrays():
    pool = batchpool.BatchPool(max_blocks=1, token="t2")
    reader = batchpool.Reader("t2")
    try:
        first = pool.put(_batch(0))
        second = pool.put(_batch(1))
        assert isinstance(first, batchpool.BlockRef) and isinstance(second, dict)
        assert np.array_equal(second["image"], _batch(1)["image"])
    finally:
        reader.close_all()
        pool.close()


def test_stack_batch_into_a_block_equals_plain_stacking():
    els = [{"image": np.full((2, 3, 3), i, np.float32), "mask": None, "box": np.array([[0, 0, 0], [2, 3, 3]]),
            "params": i} for i in range(3)]
    els[1]["image"] = np.full((1, 2, 3), 7, np.float32)  # a smaller box
    els[2]["mask"] = np.zeros((2, 3, 3), np.uint8)
    stacker = pickle.loads(pickle.dumps(StackBatch()))  # as a worker gets it: a fresh pool
    reader = batchpool.Reader(stacker.token)
    try:
        ref = stacker(els)
        got, want = reader.open_batch(ref), stack_batch(els)
        assert sorted(got) == sorted(want)
        for k in ("mask", "box"):
            assert np.array_equal(got[k], want[k]), k
        for i, e in enumerate(els):  # an image box's padding is never read: compare the box
            box = (i, *(slice(0, n) for n in e["image"].shape))
            assert np.array_equal(got["image"][box], e["image"]) and np.array_equal(want["image"][box], e["image"])
        assert want["mask"][1, 1:].min() == 1 and want["mask"][2].max() == 0  # padding of a mask is valid
        assert got["params"] == [0, 1, 2]
    finally:
        reader.close_all()
        stacker.pool.close()


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs POSIX shared memory listed in /dev/shm")
def test_a_loader_with_workers_leaves_no_block_behind():
    ds = synth.dataset("snemi3d", seed=2)
    before = set(os.listdir("/dev/shm"))
    with Loader({"s": (ds, 1.0)}, (4, 32, 32), batch_size=2, seed=0, worker_count=2, output="numpy") as loader:
        token = loader._stacker.token
        a, b = next(loader), next(loader)
        assert a["image"].base is None or not isinstance(a["image"].base, memoryview)
    assert not (b["image"] == a["image"]).all()
    left = [n for n in set(os.listdir("/dev/shm")) - before if n.startswith(batchpool.block_prefix(token))]
    assert left == []


def test_batches_kept_by_the_caller_never_change_when_blocks_are_reused():
    """JAX on CPU aliases host memory: a kept batch must not see its block refilled."""
    ds = synth.dataset("snemi3d", seed=4)
    with Loader({"s": (ds, 1.0)}, (4, 32, 32), batch_size=2, seed=1) as a:
        kept = [next(a) for _ in range(6)]  # jax arrays, kept while their blocks are reused
    with Loader({"s": (ds, 1.0)}, (4, 32, 32), batch_size=2, seed=1, output="numpy") as b:
        want = [next(b) for _ in range(6)]
    for k, w in zip(kept, want):
        for key in ("image", "semantic", "instance"):
            assert np.array_equal(np.asarray(k[key]), w[key]), key


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs POSIX shared memory listed in /dev/shm")
def test_close_removes_a_block_a_worker_had_not_sized_yet():
    """A worker killed between creating a block and sizing it leaves an empty file: removed by
    name (mapping it would fail), and nothing without the Loader's token is touched."""
    mine = os.path.join("/dev/shm", batchpool.block_prefix("t3") + "999_0")
    other = os.path.join("/dev/shm", batchpool.block_prefix("t4") + "999_0")
    for p in (mine, other):
        open(p, "wb").close()
    try:
        batchpool.Reader("t3").close_all()
        assert not os.path.exists(mine) and os.path.exists(other)
    finally:
        for p in (mine, other):
            if os.path.exists(p):
                os.unlink(p)
