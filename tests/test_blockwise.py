"""Blockwise label ops (Dask's work run in this process): equal to the in-memory ops on real and
random volumes in both numberings (``order="raster"``: cc3d's; ``order="blocks"``: checked
against the rule computed from the in-memory ids), through many levels of the hierarchical
merge, resumable after an interruption, uint64 ids, input left untouched."""

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
from neurons_jax.ops.blockwise.generated import GeneratedSource
from neurons_jax.ops.blockwise.hierarchy import join
from neurons_jax.ops.blockwise.label import first_voxels
from neurons_jax.ops.blockwise.plan import Hierarchy

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


def blocks_order_reference(ref: np.ndarray, block) -> np.ndarray:
    """The documented ``order="blocks"`` numbering, from the in-memory ids ``ref``: components
    by their first block (C order of the block grid), then by the raster order of their first
    voxel inside that block, compact 1..n (a loop over blocks, not labels)."""
    new = np.zeros(int(ref.max()) + 1, np.int64)
    nxt = 1
    grid = [-(-s // b) for s, b in zip(ref.shape, block)]
    for idx in np.ndindex(*grid):
        box = tuple(slice(i * b, (i + 1) * b) for i, b in zip(idx, block))
        u, first = np.unique(ref[box].ravel(), return_index=True)
        keep = u > 0
        u = u[keep][np.argsort(first[keep])]  # ids in raster order of their first voxel here
        u = u[new[u] == 0]
        new[u] = np.arange(nxt, nxt + len(u))
        nxt += len(u)
    return new[ref]


def check_output(out: np.ndarray, ref: np.ndarray, order: str, block) -> None:
    """``raster``: equal to cc3d; ``blocks``: a bijection of cc3d's ids (the same partition)
    that is exactly the documented rule."""
    if order == "raster":
        np.testing.assert_array_equal(out, ref)
        return
    joint = np.unique((out.astype(np.uint64) << np.uint64(32)) | ref.astype(np.uint64))
    k, n = len(np.unique(ref)), int(ref.max())
    assert len(joint) == k and len(np.unique(joint >> np.uint64(32))) == k  # one id <-> one id
    assert int(out.max()) == n
    np.testing.assert_array_equal(out, blocks_order_reference(ref, block))


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


@pytest.mark.parametrize("order", ["raster", "blocks"])
@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("block", [(64, 64, 64), (48, 50, 37)], ids=["divides", "ragged"])
def test_pinky_equals_in_memory(pinky, tmp_path, connectivity, block, order):
    path, labels = pinky
    ref = in_memory_cc(labels, connectivity)
    vol, n = bw.blockwise_connected_components(
        path, tmp_path / "cc.zarr", block, connectivity, client=SYNC, progress=False, order=order
    )
    assert n == int(ref.max()) > 100
    assert vol.dtype == np.uint32 and vol.voxel_size == (40.0, 8.0, 8.0)
    check_output(vol.read(), ref, order, block)
    # the records of the finished job are reduced to the plan and the summary: provisional
    # labels, tables and merge records are gone
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
    cases = [((8, 12, 10), "raster"), ((7, 9, 11), "blocks")]  # 48 and 80 blocks
    if connectivity == 26:
        cases.append(((3, 4, 5), "blocks"))  # 792 blocks, 4 levels of 2x2x2 groups
    for block, order in cases:
        dest = f"memory://{uuid.uuid4().hex}/cc"  # no fsyncs
        vol, n = bw.blockwise_connected_components(
            src, dest, block, connectivity, client=SYNC, progress=False, order=order
        )
        assert n == int(ref.max())
        check_output(vol.read(), ref, order, block)


def test_many_levels_on_256_cubed_and_numbering_independent_of_the_groups(load_shared):
    """All of pinky40 (256^3) in 512 blocks of 32^3: 3 levels of 2x2x2 groups, or one level of
    a single group of all blocks; both orders equal the in-memory ids (raster) or the rule
    (blocks), whatever the hierarchy."""
    labels = np.ascontiguousarray(load_shared("pinky40_seg_256.npz")["labels"])
    ref = in_memory_cc(labels, 26)
    src = nj.Volume.from_array(labels, (40.0, 8.0, 8.0))
    block = (32, 32, 32)
    assert Hierarchy(bw.BlockGrid(labels.shape, block).grid, (2, 2, 2)).top == 3
    outs = {}
    for order, group in [("raster", (2, 2, 2)), ("blocks", (2, 2, 2)), ("blocks", (8, 8, 8))]:
        vol, n = bw.blockwise_connected_components(
            src, f"memory://{uuid.uuid4().hex}/cc", block, 26, client=SYNC, progress=False,
            order=order, group_shape=group,
        )
        assert n == int(ref.max())
        outs[order, group] = vol.read()
    np.testing.assert_array_equal(outs["raster", (2, 2, 2)], ref)
    check_output(outs["blocks", (2, 2, 2)], ref, "blocks", block)
    np.testing.assert_array_equal(outs["blocks", (8, 8, 8)], outs["blocks", (2, 2, 2)])


def test_interrupted_job_resumes_to_the_same_output(pinky, tmp_path, monkeypatch):
    path, labels = pinky
    ref = in_memory_cc(labels, 6)
    dest, block = tmp_path / "cc.zarr", (48, 50, 37)
    n_blocks = bw.BlockGrid(labels.shape, block).n_blocks
    assert n_blocks == 36
    calls = {"label": 0, "merge": 0, "write": 0}
    real_label, real_up, real_write = api.label_block, api.up_task, api.write_components

    def label_then_fail(job, bid):
        calls["label"] += 1
        if calls["label"] > 10:
            raise RuntimeError("injected failure in the label phase")
        return real_label(job, bid)

    def merge_then_fail(job, level, gid):
        calls["merge"] += 1
        if calls["merge"] > 2:
            raise RuntimeError("injected failure in the merge phase")
        return real_up(job, level, gid)

    def write_then_fail(job, bid, offsets, dtype):
        calls["write"] += 1
        if calls["write"] > 5:
            raise RuntimeError("injected failure in the write phase")
        return real_write(job, bid, offsets, dtype)

    run = lambda: bw.blockwise_connected_components(  # noqa: E731
        path, dest, block, 6, client=SYNC, progress=False, order="blocks"
    )
    monkeypatch.setattr(api, "label_block", label_then_fail)
    with pytest.raises(RuntimeError, match="label phase"):
        run()
    records = dest.parent / "cc.zarr.blockwise"
    assert len(list((records / "label").iterdir())) == 10 and not dest.exists()
    with pytest.raises(ValueError, match="connectivity: was 6, now 26"):  # records pin the job
        bw.blockwise_connected_components(path, dest, block, 26, client=SYNC, progress=False, order="blocks")
    with pytest.raises(ValueError, match="order: was 'blocks', now 'raster'"):
        bw.blockwise_connected_components(path, dest, block, 6, client=SYNC, progress=False)

    monkeypatch.setattr(api, "label_block", real_label)
    monkeypatch.setattr(api, "up_task", merge_then_fail)
    with pytest.raises(RuntimeError, match="merge phase"):
        run()
    assert len(list((records / "up" / "1").iterdir())) == 2 and not dest.exists()

    monkeypatch.setattr(api, "up_task", real_up)
    monkeypatch.setattr(api, "write_components", write_then_fail)
    with pytest.raises(RuntimeError, match="write phase"):
        run()
    assert len(list((records / "write").iterdir())) == 5 and not dest.exists()

    calls["write"] = calls["label"] = -100  # no more failures; count what the rerun still does
    monkeypatch.setattr(api, "label_block", label_then_fail)
    vol, n = run()
    assert calls["label"] == -100 + n_blocks  # every block was asked; each found its record
    assert calls["write"] == -100 + n_blocks
    assert n == int(ref.max())
    check_output(vol.read(), ref, "blocks", block)
    # a rerun of a finished job returns the same output without work
    monkeypatch.setattr(api, "write_components", None)
    vol2, n2 = run()
    assert n2 == n
    np.testing.assert_array_equal(vol2.read(), vol.read())


def test_lost_provisional_labels_are_labelled_again(pinky, tmp_path, monkeypatch):
    """Provisional labels are written without fsync: a block whose chunks are missing or
    damaged when read back is labelled again from the input (same ids), not written wrong."""
    path, labels = pinky
    ref = in_memory_cc(labels, 26)

    def stop(job, bid, offsets, dtype):
        raise RuntimeError("stopped before the write phase")

    run = lambda: bw.blockwise_connected_components(  # noqa: E731
        path, tmp_path / "cc.zarr", (64, 64, 64), 26, client=SYNC, progress=False
    )
    real = api.write_components
    monkeypatch.setattr(api, "write_components", stop)
    with pytest.raises(RuntimeError, match="stopped before"):
        run()
    prov = tmp_path / "cc.zarr.blockwise" / "provisional"
    chunks = sorted(p for p in prov.rglob("*") if p.is_file() and p.name != "zarr.json")
    assert len(chunks) == 8 * 2  # 8 blocks of two 32x64x64 chunks (c/z/y/x, block = z // 2, y, x)
    chunks[0].unlink()  # lost: reads as zeros
    chunks[9].write_bytes(b"damaged")  # unreadable
    calls = []
    monkeypatch.setattr(api, "write_components", lambda *a: (calls.append(a[1]), real(*a)))
    from neurons_jax.ops.blockwise import label as label_mod

    relabelled = []
    real_label = label_mod.label_array
    monkeypatch.setattr(label_mod, "label_array", lambda *a: (relabelled.append(1), real_label(*a))[1])
    vol, n = run()
    assert len(calls) == 8 and len(relabelled) == 2  # the two damaged blocks, labelled again
    np.testing.assert_array_equal(vol.read(), ref)


def test_uint64_ids_above_2_32_and_input_unchanged(load_shared, tmp_path):
    blocks = load_shared("dvid_uint64_blocks.npz")
    a, b, c, d = (blocks[k] for k in sorted(blocks.files))
    labels = np.ascontiguousarray(np.block([[a, b], [c, d]]))  # (64, 128, 128) uint64
    assert labels.dtype == np.uint64 and labels.max() > 2**32
    src = tmp_path / "dvid.zarr"
    nj.volumes.write_zarr3(src, labels, (8.0, 8.0, 8.0), chunks=(32, 64, 64))
    before = tree_digest(src)

    ref = in_memory_cc(labels, 26)
    for order in ("raster", "blocks"):
        vol, n = bw.blockwise_connected_components(
            src, tmp_path / f"cc-{order}.zarr", (40, 48, 64), 26, client=SYNC, progress=False, order=order
        )
        assert n == int(ref.max())
        check_output(vol.read(), ref, order, (40, 48, 64))

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


def test_first_voxels_join_and_hierarchy_against_references():
    rng = np.random.default_rng(0)
    ids = cc3d.connected_components(rng.integers(0, 3, (9, 10, 11)), connectivity=6, out_dtype=np.uint32)
    n = int(ids.max())
    _, first = np.unique(ids.ravel(), return_index=True)
    np.testing.assert_array_equal(first_voxels(ids, n), first[1:])
    # join against scipy's connected components of the same graph, numbered by smallest item
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    items = np.sort(rng.choice(10**12, 300, replace=False))
    edges = rng.integers(0, 300, (200, 2))
    comp, home = join(items, edges)
    m, ref = connected_components(coo_matrix((np.ones(200), edges.T), shape=(300, 300)), directed=False)
    assert len(home) == m and np.all(np.diff(home) > 0)
    pairs = np.unique(np.stack([comp, ref]), axis=1)
    assert pairs.shape[1] == m and len(np.unique(pairs[0])) == m  # the same partition
    np.testing.assert_array_equal(home[comp], [items[comp == c].min() for c in comp])
    # every pair of neighbouring blocks (26-neighbourhood) meets in a group at its level
    h = Hierarchy((5, 3, 7), (2, 2, 2))
    assert h.top == 3 and h.grid_at(3) == (1, 1, 1)
    a = np.arange(105).repeat(105)
    b = np.tile(np.arange(105), 105)
    lev = h.pair_levels(a, b)
    assert np.all([h.ancestor(x, lv) == h.ancestor(y, lv) for x, y, lv in zip(a, b, lev)])
    assert np.all([h.ancestor(x, lv - 1) != h.ancestor(y, lv - 1) for x, y, lv in zip(a, b, lev) if lv])
    assert sorted(c for g in range(h.n_groups(1)) for c in h.children(1, g)) == list(range(105))
    with pytest.raises(ValueError, match="never groups along an axis"):
        Hierarchy((4, 4, 4), (2, 1, 2))


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
    order=st.sampled_from(["raster", "blocks"]),
)
def test_blockwise_equals_in_memory_for_ids_near_2_64(labels, block, connectivity, order):
    ids, n = nj.ops.connected_components(labels, connectivity)
    vol, bn = bw.blockwise_connected_components(
        nj.Volume.from_array(labels, (1, 1, 1)), f"memory://{uuid.uuid4().hex}/cc", block, connectivity,
        client=SYNC, progress=False, order=order,
    )
    assert bn == n
    if n:
        check_output(vol.read(), ids, order, block)
    else:
        assert not vol.read().any()


def test_output_grows_to_uint64_ids_and_order_auto(monkeypatch):
    """n >= 2**32 gives uint64 ids (the threshold lowered here: 2**32 components need 2**32
    voxels); "auto" is raster up to RASTER_MAX_VOXELS voxels, blocks above."""
    labels = winding((16, 18, 20), n_worms=3, steps=300, seed=5)
    ref = in_memory_cc(labels, 6)
    src = nj.Volume.from_array(labels, (1, 1, 1))
    monkeypatch.setattr(api, "UINT64_FROM", int(ref.max()))
    vol, n = bw.blockwise_connected_components(src, f"memory://{uuid.uuid4().hex}/cc", (8, 9, 10), client=SYNC, progress=False)
    assert vol.dtype == np.uint64 and n == int(ref.max())
    np.testing.assert_array_equal(vol.read(), ref)  # auto -> raster at this size
    monkeypatch.setattr(api, "UINT64_FROM", int(ref.max()) + 1)
    monkeypatch.setattr(api, "RASTER_MAX_VOXELS", labels.size - 1)
    vol, n = bw.blockwise_connected_components(src, f"memory://{uuid.uuid4().hex}/cc", (8, 9, 10), client=SYNC, progress=False)
    assert vol.dtype == np.uint32
    check_output(vol.read(), ref, "blocks", (8, 9, 10))  # auto -> blocks above it
    with pytest.raises(ValueError, match="order must be one of 'auto', 'raster', 'blocks'; got 'z'"):
        bw.blockwise_connected_components(src, "memory://x/y", (8, 9, 10), client=SYNC, order="z")
    with pytest.raises(ValueError, match="group_shape must be three positive ints"):
        bw.blockwise_connected_components(src, "memory://x/y", (8, 9, 10), client=SYNC, group_shape=(1, 1, 1))


@pytest.mark.parametrize("connectivity", [6, 26])
def test_generated_source_equals_in_memory(connectivity):
    """The generated volume (cells and winding tubes, uint64 ids up to 2**64-1) read block by
    block: its component count is what the generator implies, both orders match cc3d."""
    spec = {"driver": "nj_generated", "shape": [70, 150, 130], "seed": 2}
    gen = GeneratedSource(spec["shape"], 2)
    labels = gen.read(tuple(slice(0, s) for s in gen.shape))
    ref = in_memory_cc(labels, connectivity)
    assert int(ref.max()) == gen.n_components and gen.n_tubes >= 6
    assert labels.max() > 2**63
    for order, block in [("raster", (32, 64, 48)), ("blocks", (24, 50, 64))]:
        vol, n = bw.blockwise_connected_components(
            spec, f"memory://{uuid.uuid4().hex}/cc", block, connectivity, client=SYNC, progress=False, order=order
        )
        assert n == gen.n_components
        check_output(vol.read(), ref, order, block)


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
