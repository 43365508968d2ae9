"""boundary_separated_instances: instances from interior/boundary labels, on both backends."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
import scipy.ndimage as ndi

import neurons_jax as nj
from neurons_jax.backend import stencil, to_numpy


def run(xp, semantic: np.ndarray, connectivity: int = 6, grow: bool = True, **kw):
    ids, n = nj.ops.boundary_separated_instances(
        xp.asarray(semantic), connectivity=connectivity, grow=grow, **kw
    )
    assert isinstance(ids, xp.ndarray) and ids.dtype == np.uint32 and ids.shape == semantic.shape
    return to_numpy(ids), n


def pairs(shape, conn):
    """(src, dst) slices of every neighbour offset of a 3D connectivity."""
    for offset in stencil(conn):
        src = tuple(slice(max(0, -d), s - max(0, d)) for d, s in zip(offset, shape))
        dst = tuple(slice(max(0, d), s - max(0, -d)) for d, s in zip(offset, shape))
        yield src, dst


def grow_reference(semantic, conn, interior=1, boundary=2):
    """The documented rule, written plainly on whole volumes: components of the interior, then
    steps in which every boundary voxel without an id takes the smallest neighbouring id."""
    ids = cc3d.connected_components((semantic == interior).astype(np.uint8), connectivity=conn)
    ids = ids.astype(np.uint32)
    todo = semantic == boundary
    while True:
        best = np.full(ids.shape, np.iinfo(np.uint32).max, np.uint32)
        for src, dst in pairs(ids.shape, conn):
            v = np.where(ids[dst] == 0, best[src], ids[dst])
            best[src] = np.minimum(best[src], v)
        take = todo & (ids == 0) & (best != np.iinfo(np.uint32).max)
        if not take.any():
            return ids
        ids[take] = best[take]


def three_class(gt, conn):
    """1 = interior, 2 = boundary: voxels with a neighbour of another non-zero id (both sides)."""
    touch = np.zeros(gt.shape, bool)
    for src, dst in pairs(gt.shape, conn):
        touch[src] |= (gt[src] != 0) & (gt[dst] != 0) & (gt[src] != gt[dst])
    return np.where(gt == 0, 0, np.where(touch, 2, 1)).astype(np.uint8)


def assert_same_instances(ids, gt):
    """Equal up to a renumbering of the non-zero ids."""
    np.testing.assert_array_equal(ids == 0, gt == 0)
    both = np.unique(np.stack([ids.ravel(), gt.ravel()]), axis=1)
    assert both.shape[1] == len(np.unique(ids)) == len(np.unique(gt))


def recoverable(gt, conn):
    """Instances (from real ground truth) that 3-class labels determine: every instance has
    one connected interior and every boundary voxel touches its own interior; voxels that
    break this become background until none does."""
    while True:
        gt = cc3d.connected_components(gt, connectivity=conn)
        sem = three_class(gt, conn)
        own = np.zeros(gt.shape, bool)
        for src, dst in pairs(gt.shape, conn):
            own[src] |= (gt[src] == gt[dst]) & (sem[dst] == 1)
        inner = cc3d.connected_components((sem == 1).astype(np.uint8), connectivity=conn)
        link = np.unique(np.stack([gt[sem == 1], inner[sem == 1]]), axis=1)
        ids, count = np.unique(link[0], return_counts=True)
        lost = np.setdiff1d(np.unique(gt[gt != 0]), ids)
        drop = ((sem == 2) & ~own) | np.isin(gt, np.concatenate([ids[count > 1], lost]))
        if not drop.any():
            return gt, sem
        gt = np.where(drop, 0, gt)


def test_touching_objects_split_and_grow_back():
    sem = np.array([[1, 1, 2, 2, 1, 1, 0, 2, 0, 1, 2, 1]], np.uint8)
    ids, n = run(np, sem, 4)
    assert n == 4
    # boundary voxels join the nearer side; the lone one stays 0; a tie goes to the smaller id
    assert ids.tolist() == [[1, 1, 1, 2, 2, 2, 0, 0, 0, 3, 3, 4]]
    ids, n = run(np, sem, 4, grow=False)
    assert ids.tolist() == [[1, 1, 0, 0, 2, 2, 0, 0, 0, 3, 0, 4]]


@pytest.mark.parametrize("shape,conn", [((1, 40, 37), 6), ((9, 14, 11), 6), ((9, 14, 11), 18),
                                        ((9, 14, 11), 26), ((1, 1, 30, 33), 26)])
def test_growth_follows_the_documented_rule(xp, shape, conn):
    rng = np.random.default_rng(len(shape) + conn)
    sem = rng.choice(np.array([0, 1, 2, 2, 2], np.uint8), size=shape)  # mostly boundary
    ids, n = run(xp, sem, conn)
    ref = np.stack([grow_reference(s, conn) for s in sem.reshape((-1, *sem.shape[-3:]))])
    np.testing.assert_array_equal(ids, ref.reshape(shape))
    assert np.all(n == np.array([r.max() for r in ref]).reshape(np.shape(n)))


def test_batch_equals_one_at_a_time(xp):
    rng = np.random.default_rng(7)
    sem = rng.choice(np.array([0, 1, 1, 2], np.uint8), size=(3, 6, 13, 12))
    ids, n = run(xp, sem, 26)
    assert n.shape == (3,)
    for b in range(3):
        one, one_n = run(xp, sem[b], 26)
        assert one_n == n[b]
        np.testing.assert_array_equal(ids[b], one)


def test_recovers_fib25_instances_from_three_class_labels(xp, load_shared):
    gt = load_shared("fib25_sample2.npz")["groundtruth"][100:136, 60:96, 150:186]
    gt = gt.repeat(2, 0).repeat(2, 1).repeat(2, 2)  # neurites two voxels thick at least
    gt, sem = recoverable(gt, 6)
    assert (sem == 2).sum() > 1000 and len(np.unique(gt)) > 5
    ids, n = run(xp, sem, 6)
    assert n == len(np.unique(gt)) - 1
    assert_same_instances(ids, gt)


def test_recovers_lucchi_mitochondria_as_2d_batch(xp, load_shared):
    mito = load_shared("lucchi_mito_27slices.npz")["mito"][:8, 200:456, 300:556]
    inst = np.stack([cc3d.connected_components(m, connectivity=4) for m in mito])
    grown = ndi.grey_dilation(inst, size=(1, 9, 9))  # widen them until neighbours touch
    gt = np.where(inst == 0, grown, inst)[:, None]  # (B, 1, Y, X): a batch of sections
    sem = np.stack([three_class(g, 6) for g in gt])
    assert (sem == 2).sum() > 300  # touching mitochondria exist
    assert (sem == 2).any(axis=(1, 2, 3)).sum() >= 4
    ids, n = run(xp, sem, 6)
    for b in range(len(gt)):
        assert n[b] == len(np.unique(gt[b])) - 1
        assert_same_instances(ids[b], cc3d.connected_components(gt[b], connectivity=6))
    ids2d, n2d = run(xp, sem[3, 0], 4)
    np.testing.assert_array_equal(ids2d, ids[3, 0])


def test_custom_class_values_and_other_values_are_background(xp):
    sem = np.array([[[7, 7, 9, 3, 7]]], np.uint16)
    ids, n = run(xp, sem, 6, interior=7, boundary=9)
    assert n == 2 and ids.tolist() == [[[1, 1, 1, 0, 2]]]
    ids, n = run(xp, sem, 6, interior=70_000, boundary=9)  # a value the dtype cannot hold
    assert n == 0 and not ids.any()


@pytest.mark.parametrize(
    "semantic,kw,error,match",
    [
        (np.zeros((3, 3, 3), np.float32), {}, TypeError, "semantic must be an integer or bool array"),
        (np.zeros((3, 3, 3), np.float16), {}, TypeError, "got dtype float16"),
        (np.zeros((3, 3, 3), np.uint8), {"interior": 2}, ValueError, "must differ"),
        (np.zeros((3, 3, 3), np.uint8), {"connectivity": 8}, ValueError, "got 8"),
        (np.zeros((3, 3), np.uint8), {"connectivity": 5}, ValueError, r"\(4, 8\) .*got 5"),
        (np.zeros((3, 3), np.uint8), {"boundary": 1.5}, TypeError, "boundary must be an integer"),
    ],
)
def test_bad_input_gives_the_same_error_on_both_backends(xp, semantic, kw, error, match):
    with pytest.raises(error, match=match):
        nj.ops.boundary_separated_instances(xp.asarray(semantic), **kw)


def test_memory_order_does_not_change_the_result(xp):
    rng = np.random.default_rng(11)
    sem = rng.choice(np.array([0, 1, 1, 2, 2], np.uint8), size=(7, 9, 8))
    ids, n = run(xp, sem, 18)
    for arr in (np.asfortranarray(sem), sem.transpose(2, 1, 0).copy().transpose(2, 1, 0)):
        other, other_n = run(xp, arr, 18)
        assert other_n == n
        np.testing.assert_array_equal(other, ids)
