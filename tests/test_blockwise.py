"""Blockwise label ops (Dask's work run in this process): equal to the in-memory ops on real and
random volumes, resumable after an interruption, uint64 ids, input left untouched."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import cc3d
import fastremap
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import neurons_jax as nj
from neurons_jax.ops import blockwise as bw
from neurons_jax.ops.blockwise import api
from neurons_jax.ops.blockwise.label import first_voxels
from neurons_jax.ops.blockwise.merge import solve

SYNC = "synchronous"


def in_memory_cc(labels: np.ndarray, connectivity: int) -> np.ndarray:
    """The in-memory op, checked against cc3d (its CPU reference)."""
    ref = cc3d.connected_components(labels, connectivity=connectivity, out_dtype=np.uint32)
    ids, n = nj.ops.connected_components(labels, connectivity=connectivity)
    np.testing.assert_array_equal(np.asarray(ids), ref)
    assert int(n) == int(ref.max())
    return ref


def winding(shape, n_worms, steps, seed) -> np.ndarray:
    """Long random-walk components (values 1..3) over sparse noise: they cross many blocks."""
    rng = np.random.default_rng(seed)
    vol = np.where(rng.random(shape) < 0.08, rng.integers(1, 4, shape), 0).astype(np.uint16)
    moves = np.concatenate([np.eye(3, dtype=np.int64), -np.eye(3, dtype=np.int64)])
    start = rng.integers(0, shape, (n_worms, 1, 3))
    path = start + np.cumsum(moves[rng.integers(0, 6, (n_worms, steps))], axis=1)
    path = np.clip(path, 0, np.array(shape) - 1)  # clipped steps stay 6-connected
    value = np.repeat(rng.integers(1, 4, n_worms), steps)
    vol[tuple(path.reshape(-1, 3).T)] = value
    return vol


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def pinky(load_shared, tmp_path_factory):
    """A 128^3 crop of real pinky40 segmentation (149 6-connected components) as zarr3."""
    labels = np.ascontiguousarray(load_shared("pinky40_seg_256.npz")["labels"][128:, 128:, :128])
    path = tmp_path_factory.mktemp("pinky") / "seg.zarr"
    nj.volumes.write_zarr3(path, labels, (40.0, 8.0, 8.0), chunks=(32, 64, 64))
    return path, labels


@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("block", [(64, 64, 64), (48, 50, 37)], ids=["divides", "ragged"])
def test_pinky_equals_in_memory(pinky, tmp_path, connectivity, block):
    path, labels = pinky
    ref = in_memory_cc(labels, connectivity)
    vol, n = bw.blockwise_connected_components(
        path, tmp_path / "cc.zarr", block, connectivity, client=SYNC, progress=False
    )
    assert n == int(ref.max()) > 100
    assert vol.dtype == np.uint32 and vol.voxel_size == (40.0, 8.0, 8.0)
    np.testing.assert_array_equal(vol.read(), ref)
    # the records of the finished job are reduced to the plan and the summary
    assert sorted(p.name for p in (tmp_path / "cc.zarr.blockwise").iterdir()) == ["complete.json", "plan.json"]


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_winding_components_across_many_blocks(connectivity):
    labels = winding((32, 36, 40), n_worms=8, steps=2000, seed=connectivity)
    ref = in_memory_cc(labels, connectivity)
    # the data is what the test claims: some component runs through half of the 48 blocks
    z, y, x = np.indices(ref.shape)
    pairs = np.unique(ref.astype(np.int64) * 1000 + (z // 8) * 100 + (y // 12) * 10 + x // 10)
    assert np.bincount(pairs[pairs >= 1000] // 1000).max() >= 24
    src = nj.Volume.from_array(labels, (1.0, 1.0, 1.0))
    for block in [(8, 12, 10), (7, 9, 11)]:  # 48 and 80 blocks
        dest = f"memory://winding-{connectivity}-{'x'.join(map(str, block))}/cc"  # no fsyncs
        vol, n = bw.blockwise_connected_components(
            src, dest, block, connectivity, client=SYNC, progress=False
        )
        assert n == int(ref.max())
        np.testing.assert_array_equal(vol.read(), ref)


def test_interrupted_job_resumes_to_the_same_output(pinky, tmp_path, monkeypatch):
    path, labels = pinky
    ref = in_memory_cc(labels, 6)
    dest, block = tmp_path / "cc.zarr", (48, 50, 37)
    n_blocks = bw.BlockGrid(labels.shape, block).n_blocks
    assert n_blocks == 36
    calls = {"label": 0, "write": 0}
    real_label, real_write = api.label_block, api.write_components

    def label_then_fail(job, bid):
        calls["label"] += 1
        if calls["label"] > 10:
            raise RuntimeError("injected failure in the label phase")
        return real_label(job, bid)

    def write_then_fail(job, bid, table):
        calls["write"] += 1
        if calls["write"] > 5:
            raise RuntimeError("injected failure in the write phase")
        return real_write(job, bid, table)

    run = lambda: bw.blockwise_connected_components(  # noqa: E731
        path, dest, block, 6, client=SYNC, progress=False
    )
    monkeypatch.setattr(api, "label_block", label_then_fail)
    with pytest.raises(RuntimeError, match="label phase"):
        run()
    records = dest.parent / "cc.zarr.blockwise"
    assert len(list((records / "keys").iterdir())) == 10 and not dest.exists()
    with pytest.raises(ValueError, match="connectivity: was 6, now 26"):  # records pin the job
        bw.blockwise_connected_components(path, dest, block, 26, client=SYNC, progress=False)

    monkeypatch.setattr(api, "label_block", real_label)
    monkeypatch.setattr(api, "write_components", write_then_fail)
    with pytest.raises(RuntimeError, match="write phase"):
        run()
    assert len(list((records / "write").iterdir())) == 5 and not dest.exists()

    calls["write"] = -100  # no more failures; count what the rerun still does
    monkeypatch.setattr(api, "label_block", label_then_fail)
    calls["label"] = 0
    vol, n = run()
    assert calls["label"] == 0  # labels, faces and table were recorded: not redone
    assert calls["write"] == -100 + n_blocks  # every block was asked; finished ones returned at once
    assert n == int(ref.max())
    np.testing.assert_array_equal(vol.read(), ref)
    # a rerun of a finished job returns the same output without work
    monkeypatch.setattr(api, "write_components", None)
    vol2, n2 = run()
    assert n2 == n
    np.testing.assert_array_equal(vol2.read(), ref)


def test_uint64_ids_above_2_32_and_input_unchanged(load_shared, tmp_path):
    blocks = load_shared("dvid_uint64_blocks.npz")
    a, b, c, d = (blocks[k] for k in sorted(blocks.files))
    labels = np.ascontiguousarray(np.block([[a, b], [c, d]]))  # (64, 128, 128) uint64
    assert labels.dtype == np.uint64 and labels.max() > 2**32
    src = tmp_path / "dvid.zarr"
    nj.volumes.write_zarr3(src, labels, (8.0, 8.0, 8.0), chunks=(32, 64, 64))
    before = tree_digest(src)

    vol, n = bw.blockwise_connected_components(
        src, tmp_path / "cc.zarr", (40, 48, 64), 26, client=SYNC, progress=False
    )
    ref = in_memory_cc(labels, 26)
    assert n == int(ref.max())
    np.testing.assert_array_equal(vol.read(), ref)

    vol, old_ids = bw.blockwise_renumber(src, tmp_path / "rn.zarr", (40, 48, 64), client=SYNC, progress=False)
    ref_ids, mapping = fastremap.renumber(labels.copy(), preserve_zero=True)
    assert vol.dtype == np.uint32
    np.testing.assert_array_equal(vol.read(), ref_ids)
    assert old_ids.dtype == np.uint64 and len(old_ids) == len(mapping)
    assert all(old_ids[new] == old for old, new in mapping.items() if old)
    np.testing.assert_array_equal(old_ids[vol.read()], labels)  # the mapping inverts the output
    ids, nj_mapping = nj.ops.renumber(labels)  # the in-memory op numbers the same way
    np.testing.assert_array_equal(vol.read(), ids)
    assert nj_mapping == {int(old_ids[k]): k for k in range(len(old_ids))}

    assert tree_digest(src) == before


def test_union_semantic_blockwise(tmp_path):
    rng = np.random.default_rng(3)
    pool = np.array([0, 7, 999_999, 1_000_000, 1_500_000, 2_000_000, 2**40], np.uint64)
    labels = pool[rng.integers(0, len(pool), (20, 33, 30))]
    src = nj.Volume.from_array(labels, (40.0, 4.0, 4.0))
    vol = bw.blockwise_union_semantic(
        src, tmp_path / "u.zarr", (8, 16, 16), "cremi3d", ignore_classes=("cleft",), client=SYNC, progress=False
    )
    ref = nj.ops.union_semantic(labels, "cremi3d", ignore_classes=("cleft",))
    assert vol.dtype == np.uint8
    np.testing.assert_array_equal(vol.read(), ref)


def test_in_place_store_and_refusals(tmp_path):
    labels = winding((20, 24, 28), n_worms=4, steps=300, seed=7)
    src = nj.Volume.from_array(labels, (1.0, 1.0, 1.0))
    ref = in_memory_cc(labels, 6)
    vol, n = bw.blockwise_connected_components(src, "memory://bw-test/out", (8, 8, 8), client=SYNC, progress=False)
    np.testing.assert_array_equal(vol.read(), ref)

    dest = tmp_path / "cc.zarr"
    bw.blockwise_connected_components(src, dest, (8, 8, 8), client=SYNC, progress=False)
    with pytest.raises(FileExistsError, match="cc.zarr"):  # finished, with other settings
        bw.blockwise_connected_components(src, dest, (16, 8, 8), client=SYNC, progress=False)
    other = tmp_path / "other.zarr"
    other.mkdir()
    with pytest.raises(FileExistsError, match="other.zarr"):
        bw.blockwise_connected_components(src, other, (8, 8, 8), client=SYNC, progress=False)
    with pytest.raises(ValueError, match="connectivity"):
        bw.blockwise_connected_components(src, tmp_path / "x", (8, 8, 8), 8, client=SYNC)
    with pytest.raises(ValueError, match="block_shape"):
        bw.blockwise_connected_components(src, tmp_path / "x", (8, 8), client=SYNC)
    with pytest.raises(TypeError, match="float32"):
        bw.blockwise_connected_components(
            nj.Volume.from_array(labels.astype(np.float32), (1, 1, 1)), tmp_path / "y", (8, 8, 8), client=SYNC
        )


def test_first_voxels_and_solve_against_references():
    rng = np.random.default_rng(0)
    ids = cc3d.connected_components(rng.integers(0, 3, (9, 10, 11)), connectivity=6, out_dtype=np.uint32)
    n = int(ids.max())
    _, first = np.unique(ids.ravel(), return_index=True)
    np.testing.assert_array_equal(first_voxels(ids, n), first[1:])
    # 5 provisional ids in two blocks: 1-4 and 2-5 joined -> {1,4}, {2,5}, {3}
    keys = [np.array([30, 2, 50]), np.array([10, 1])]
    lut, n = solve(keys, [np.array([[1, 4]]), np.array([[2, 5]])])
    assert n == 3
    assert lut.tolist() == [0, 2, 1, 3, 2, 1]  # {2,5} first voxel 1, {1,4} 10, {3} 50


@pytest.mark.gpu
def test_gpu_blocks_equal_cpu(pinky, tmp_path):
    path, labels = pinky
    ref = cc3d.connected_components(labels, connectivity=26, out_dtype=np.uint32)
    vol, n = bw.blockwise_connected_components(
        path, tmp_path / "gpu.zarr", (48, 50, 37), 26, client=SYNC, device="gpu", progress=False
    )
    assert n == int(ref.max())
    np.testing.assert_array_equal(vol.read(), ref)


@pytest.mark.parametrize("connectivity", [6, 26])
def test_uint64_ids_above_2_63_in_a_block_with_one_row_or_voxel(connectivity):
    labels = np.zeros((4, 6, 8), np.uint64)
    labels[1, 2, 3:] = 2**63 + 5  # block (0, 0, 0)/(0, 0, 1): foreground is one x-row
    labels[3, 5, 7] = 2**64 - 1  # the last block: one voxel
    labels[2, 0, 0] = 2**63
    src = nj.Volume.from_array(labels, (1, 1, 1))
    vol, n = bw.blockwise_connected_components(
        src, f"memory://{uuid.uuid4().hex}/cc", (2, 3, 4), connectivity, client=SYNC, progress=False
    )
    ref = cc3d.connected_components(labels.view(np.int64), connectivity=connectivity, out_dtype=np.uint32)
    assert n == int(ref.max()) == 3
    np.testing.assert_array_equal(vol.read(), ref)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=hnp.arrays(np.uint64, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=7),
                      elements=st.sampled_from([0, 0, 1, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1])),
    block=st.tuples(*[st.integers(1, 4)] * 3),
    connectivity=st.sampled_from([6, 18, 26]),
)
def test_blockwise_equals_in_memory_for_ids_near_2_64(labels, block, connectivity):
    ids, n = nj.ops.connected_components(labels, connectivity)
    vol, bn = bw.blockwise_connected_components(
        nj.Volume.from_array(labels, (1, 1, 1)), f"memory://{uuid.uuid4().hex}/cc", block, connectivity,
        client=SYNC, progress=False,
    )
    assert bn == n
    np.testing.assert_array_equal(vol.read(), ids)


def test_bool_masks_are_labelled_block_by_block(tmp_path):
    mask = winding((12, 14, 16), n_worms=3, steps=200, seed=2) > 0
    src = nj.Volume.from_array(mask, (1, 1, 1))
    vol, n = bw.blockwise_connected_components(
        src, tmp_path / "cc.zarr", (5, 6, 7), 26, client=SYNC, progress=False
    )
    ids, ref_n = nj.ops.connected_components(mask, 26)
    assert n == ref_n
    np.testing.assert_array_equal(vol.read(), ids)
    vol, old = bw.blockwise_renumber(src, tmp_path / "rn.zarr", (5, 6, 7), client=SYNC, progress=False)
    np.testing.assert_array_equal(vol.read(), mask.astype(np.uint32))
    assert old.tolist() == [False, True]


def test_missing_chunks_negative_ids_and_locked_outputs(tmp_path):
    """Inputs get the in-memory checks: a missing chunk is an error naming the store, the chunk
    and the block (unless allow_missing); negative ids are refused naming the block; a local
    output being written by another process is refused, naming it."""
    import subprocess
    import sys
    import time

    from neurons_jax.safeio import OutputBusyError
    from neurons_jax.volumes import MissingChunkError

    labels = winding((16, 16, 16), n_worms=3, steps=200, seed=4)
    src = tmp_path / "in.zarr"
    nj.volumes.write_zarr3(src, labels, chunks=(8, 8, 8))
    (src / "c" / "1" / "1" / "0").unlink()
    with pytest.raises(MissingChunkError) as e:
        bw.blockwise_connected_components(src, tmp_path / "cc.zarr", (8, 8, 8), client=SYNC, progress=False)
    msg = str(e.value)
    assert msg.startswith(f"zarr3 store file://{src}/: chunk {{1, 1, 0}} stored at local file") and "(block 6 of 8)" in msg
    assert not (tmp_path / "cc.zarr").exists()
    vol, n = bw.blockwise_connected_components(src, tmp_path / "cc2.zarr", (8, 8, 8), client=SYNC,
                                               progress=False, allow_missing=True)
    zeroed = labels.copy()
    zeroed[8:16, 8:16, 0:8] = 0
    np.testing.assert_array_equal(vol.read(), in_memory_cc(zeroed, 6))

    neg = labels.astype(np.int32)
    neg[15, 15, 15] = -3
    with pytest.raises(ValueError, match=r"block 7 \(z 8:16, y 8:16, x 8:16\): negative label ids are not supported \(found minimum -3\)"):
        bw.blockwise_renumber(nj.Volume.from_array(neg), tmp_path / "rn.zarr", (8, 8, 8), client=SYNC, progress=False)

    flag = tmp_path / "held"
    code = ("import sys, time, os; from neurons_jax.safeio import OutputLock\n"
            f"with OutputLock({str(tmp_path / 'busy.zarr')!r}, 'another job'):\n"
            f"    open({str(flag)!r}, 'w').close()\n"
            f"    while os.path.exists({str(flag)!r}): time.sleep(0.02)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(OutputBusyError, match=rf"busy.zarr: another run is writing it \(another job, pid {holder.pid} on host"):
            bw.blockwise_connected_components(nj.Volume.from_array(labels), tmp_path / "busy.zarr", (8, 8, 8),
                                              client=SYNC, progress=False)
        assert not (tmp_path / "busy.zarr.blockwise").exists()
    finally:
        flag.unlink(missing_ok=True)
        holder.wait(30)
