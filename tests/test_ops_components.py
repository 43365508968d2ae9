"""connected_components and relabel_after_crop: bitwise equal to cc3d, on both backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cc3d
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import neurons_jax as nj
from neurons_jax.backend import stencil, to_numpy
from neurons_jax.ops import _raster

DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int32, np.int64]
CASES = [((13, 17), 4), ((13, 17), 8), ((7, 11, 9), 6), ((7, 11, 9), 18), ((7, 11, 9), 26)]


def reference(labels: np.ndarray, connectivity: int):
    return cc3d.connected_components(
        np.ascontiguousarray(labels), connectivity=connectivity, out_dtype=np.uint32, return_N=True
    )


def run(xp, labels: np.ndarray, connectivity: int, func=None):
    func = func or nj.ops.connected_components
    ids, n = func(xp.asarray(labels), connectivity)
    assert isinstance(ids, xp.ndarray)
    assert ids.dtype == np.uint32 and ids.shape == labels.shape
    return to_numpy(ids), n


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,connectivity", CASES)
def test_random_volumes_match_cc3d(xp, dtype, shape, connectivity):
    rng = np.random.default_rng(sum(shape) + connectivity)
    lo = -2 if np.dtype(dtype).kind == "i" else 0
    labels = rng.integers(lo, 3, size=shape).astype(dtype)  # few values: many components
    ids, n = run(xp, labels, connectivity)
    ref, ref_n = reference(labels, connectivity)
    assert n == ref_n and isinstance(n, int)
    np.testing.assert_array_equal(ids, ref)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_real_volumes_match_cc3d(xp, load_shared, connectivity):
    volumes = [
        load_shared("pinky40_seg_256.npz")["labels"],  # whole, 256^3
        load_shared("fib25_sample2.npz")["groundtruth"][:64, :128, :128],
        *load_shared("dvid_uint64_blocks.npz").values(),  # uint64 ids above 2**32
    ]
    for labels in volumes:
        ids, n = run(xp, labels, connectivity)
        ref, ref_n = reference(labels, connectivity)
        assert n == ref_n
        np.testing.assert_array_equal(ids, ref)
    if connectivity == 6:  # the count stated in ../shared/data/README.md
        assert run(xp, volumes[0], 6)[1] == 362


def test_fortran_order_and_views_number_in_c_order(xp, load_shared):
    labels = load_shared("pinky40_seg_256.npz")["labels"][:40, :50, :60]
    for arr in (np.asfortranarray(labels), labels[::2, 1::3, ::-1]):
        ids, n = run(xp, arr, 26)
        ref, ref_n = reference(np.ascontiguousarray(arr), 26)
        assert n == ref_n
        np.testing.assert_array_equal(ids, ref)


@pytest.fixture(params=["one thread", "threads, several planes per step"])
def raster_paths(request, monkeypatch):
    """Both ways the Fortran-order renumbering runs: one thread, one plane per step; or split
    over threads with several planes per step (what small planes and large volumes take)."""
    if request.param != "one thread":
        monkeypatch.setattr(_raster, "MIN_PARALLEL", 0)
        monkeypatch.setattr(_raster, "MAX_THREADS", 3)
        monkeypatch.setattr(_raster, "CHUNK", 64)
    return request.param


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    labels=hnp.arrays(np.uint64, hnp.array_shapes(min_dims=2, max_dims=3, max_side=9),
                      elements=st.sampled_from([0, 0, 1, 2, 2**63 + 1, 2**64 - 1])),
    pick=st.integers(0, 2),
)
def test_fortran_order_is_labelled_in_place_with_c_numbering(raster_paths, labels, pick):
    conn = [4, 8, 8][pick] if labels.ndim == 2 else [6, 18, 26][pick]
    f = np.asfortranarray(labels)
    ids, n = nj.ops.connected_components(f, conn)
    ref, ref_n = reference(labels.view(np.int64), conn)
    assert n == ref_n
    np.testing.assert_array_equal(ids, ref)
    assert ids.flags.f_contiguous  # labelled where it lies, not in a C copy
    np.testing.assert_array_equal(f, labels)  # the input is untouched


def test_fortran_order_makes_no_transposing_copy(load_shared):
    import tracemalloc

    labels = np.asfortranarray(load_shared("pinky40_seg_256.npz")["labels"][:96, :128, :128].astype(np.uint64))
    ref = reference(np.ascontiguousarray(labels), 6)[0]
    nj.ops.connected_components(np.asfortranarray(labels[:8]), 6)  # imports are not the point
    tracemalloc.start()
    try:
        ids, _ = nj.ops.connected_components(labels, 6)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(ids, ref)
    # the uint32 output and a few plane-sized buffers; a C copy of the input alone is 8 B/voxel
    assert peak < 0.75 * labels.nbytes, f"peak {peak} B for a {labels.nbytes} B input"


def test_uint64_ids_that_share_their_low_bits_stay_apart(xp):
    labels = np.array([[[1, 2**32 + 1, 2**32 + 1], [2**63 + 1, 2**63 + 1, 2**64 - 1]]], np.uint64)
    ids, n = run(xp, labels, 6)
    assert n == 4
    assert ids.tolist() == [[[1, 2, 2], [3, 3, 4]]]


def _one_row_or_voxel() -> list[np.ndarray]:
    """Volumes whose foreground is one x-row or one voxel (cc3d's fast paths), and two rows."""
    out = []
    for where in [(1, 2, slice(1, 5)), (0, 0, slice(None)), (1, 2, 3), (0, 0, 0)]:
        a = np.zeros((2, 3, 5), np.uint64)
        a[where] = 2**64 - 1
        out.append(a)
    two = np.zeros((2, 3, 5), np.uint64)
    two[0, 1, 1:3], two[1, 2, 2:] = 2**63, 2**63 + 7
    return [*out, two]


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("labels", _one_row_or_voxel(), ids=["row", "first row", "voxel", "first voxel", "two rows"])
def test_uint64_ids_above_2_63_in_a_single_row_or_voxel(xp, labels, connectivity):
    ids, n = run(xp, labels, connectivity)
    as_int64 = reference(labels.view(np.int64), connectivity)  # cc3d on the same bits, signed
    assert n == as_int64[1] == len(np.unique(labels)) - 1
    np.testing.assert_array_equal(ids, as_int64[0])
    for plane in (labels[1], labels[0]):  # 2D: the same fast paths
        ids2, n2 = run(xp, plane, 4)
        np.testing.assert_array_equal(ids2, reference(plane.view(np.int64), 4)[0])


@pytest.mark.parametrize("conn3,conn2", [(6, 4), (18, 8), (26, 8)])
def test_2d_input_takes_3d_connectivities_as_cc3d_does(xp, conn3, conn2):
    img = np.random.default_rng(conn3).integers(0, 3, (23, 19)).astype(np.uint16)
    ids, n = run(xp, img, conn3)
    ref, ref_n = reference(img, conn2)
    np.testing.assert_array_equal(ids, ref)
    assert n == ref_n and (ids == reference(img, conn3)[0]).all()  # cc3d's own 2D reading
    if conn3 == 6:  # the default
        default, n_default = nj.ops.connected_components(xp.asarray(img))
        np.testing.assert_array_equal(to_numpy(default), ref)
        sem = (img % 3).astype(np.uint8)
        inst, k = nj.ops.boundary_separated_instances(xp.asarray(sem))
        ref_inst, ref_k = nj.ops.boundary_separated_instances(sem, connectivity=4)
        np.testing.assert_array_equal(to_numpy(inst), ref_inst)
        assert k == ref_k


def test_bool_masks_are_labelled_as_uint8(xp):
    mask = np.random.default_rng(5).random((6, 9, 11)) < 0.4
    for labels, conn in ((mask, 26), (mask[2], 8)):
        ids, n = run(xp, labels, conn)
        ref, ref_n = reference(labels.astype(np.uint8), conn)
        assert n == ref_n
        np.testing.assert_array_equal(ids, ref)
    ids, n = nj.ops.boundary_separated_instances(xp.asarray(mask), connectivity=6)
    ref, ref_n = nj.ops.boundary_separated_instances(mask.astype(np.uint8), connectivity=6)
    np.testing.assert_array_equal(to_numpy(ids), ref)


@pytest.mark.parametrize(
    "labels,connectivity,expected_n",
    [
        (np.zeros((0, 4, 5), np.uint32), 6, 0),
        (np.zeros((3, 0), np.uint8), 4, 0),
        (np.zeros((5, 6, 7), np.uint16), 26, 0),
        (np.zeros((1, 1, 1), np.uint64), 6, 0),
        (np.full((1, 1, 1), 9, np.uint64), 26, 1),
        (np.full((1, 1), 3, np.uint8), 8, 1),
        (np.arange(1, 8, dtype=np.uint32).reshape(7, 1, 1), 26, 7),
        (np.ones((4, 1, 5), np.int16), 18, 1),
    ],
)
def test_edge_cases(xp, labels, connectivity, expected_n):
    ids, n = run(xp, labels, connectivity)
    assert n == expected_n
    if labels.size:
        np.testing.assert_array_equal(ids, reference(labels, connectivity)[0])


@pytest.mark.parametrize("connectivity", [6, 26])
def test_batch_equals_one_at_a_time(xp, load_shared, connectivity):
    pinky = load_shared("pinky40_seg_256.npz")["labels"]
    batch = np.stack([pinky[:24, :40, :48], pinky[100:124, 60:100, 9:57], np.zeros((24, 40, 48))])
    batch = batch.astype(np.uint32)
    ids, n = run(xp, batch, connectivity)
    assert isinstance(n, np.ndarray) and n.dtype == np.int64 and n.shape == (3,)
    for b in range(3):
        ref, ref_n = reference(batch[b], connectivity)
        assert n[b] == ref_n
        np.testing.assert_array_equal(ids[b], ref)
    assert n[2] == 0


def test_batch_of_2d_images_as_single_sections(xp):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 3, size=(4, 1, 21, 19)).astype(np.uint8)
    for conn3, conn2 in ((6, 4), (26, 8), (18, 8)):
        ids, n = run(xp, images, conn3)
        for b in range(4):
            ref, ref_n = reference(images[b, 0], conn2)
            assert n[b] == ref_n
            np.testing.assert_array_equal(ids[b, 0], ref)


def test_empty_batch(xp):
    ids, n = run(xp, np.zeros((0, 3, 4, 5), np.uint8), 6)
    assert n.shape == (0,)


def test_relabel_after_crop_splits_cut_ids(xp, load_shared):
    labels = load_shared("fib25_sample2.npz")["groundtruth"][:40, :64, :64].astype(np.uint64)
    labels = labels + np.uint64(2**40)  # MICrONS-like uint64 ids
    labels[:, 30:33, :] = 0  # a cut through the patch
    ids, n = run(xp, labels, 6, nj.ops.relabel_after_crop)
    ref, ref_n = reference(labels, 6)
    assert n == ref_n > len(np.unique(labels)) - 1
    np.testing.assert_array_equal(ids, ref)


@pytest.mark.parametrize(
    "labels,connectivity,error,match",
    [
        (np.zeros((4, 4, 4), np.float32), 6, TypeError, "integer or bool array .*got dtype float32"),
        (np.zeros((4, 4, 4), np.complex64), 6, TypeError, "got dtype complex64"),
        (np.zeros((4, 4, 4), np.uint8), 4, ValueError, r"one of \(6, 18, 26\) .*got 4"),
        (np.zeros((4, 4), np.uint8), 5, ValueError, r"one of \(4, 8\) \(or 6, 18, 26 as cc3d .*got 5"),
        (np.zeros((2, 4, 4, 4), np.uint8), 8, ValueError, r"one of \(6, 18, 26\) for 4D .*got 8"),
        (np.zeros((4, 4, 4), np.uint8), 5, ValueError, "got 5"),
        (np.zeros((4, 4, 4), np.uint8), True, ValueError, "got True"),
        (np.zeros(4, np.uint8), 6, ValueError, r"2D \(Y, X\), 3D .*got shape \(4,\)"),
        (np.zeros((1,) * 5, np.uint8), 6, ValueError, "got shape"),
        # a (Z, Y, X, C) volume is not a batch of Z volumes: refused, naming the shape
        (np.zeros((16, 20, 24, 1), np.uint8), 6, ValueError,
         r"shape \(16, 20, 24, 1\) look like \(Z, Y, X, C\) with a channel axis of 1; 4D input means a batch \(B, Z, Y, X\)"),
        (np.zeros((8, 16, 16, 3), np.uint8), 26, ValueError, r"channel axis of 3; 4D input means a batch"),
    ],
)
def test_bad_input_gives_the_same_error_on_both_backends(xp, labels, connectivity, error, match):
    for func in (nj.ops.connected_components, nj.ops.relabel_after_crop):
        with pytest.raises(error, match=match):
            func(xp.asarray(labels), connectivity)
    if labels.ndim == 4 and labels.shape[-1] <= 4:
        from neurons_jax.ops.components import component_ids

        with pytest.raises(error, match=match):
            component_ids(xp.asarray(labels), connectivity)


@pytest.mark.parametrize("shape", [(2, 16, 16, 16), (3, 1, 40, 40), (1, 32, 32, 2), (4, 8, 8, 4), (2, 5, 6, 7)])
def test_real_batches_are_not_mistaken_for_channels(xp, shape):
    labels = (np.arange(np.prod(shape)).reshape(shape) % 3).astype(np.uint8)
    ids, n = run(xp, labels, 6)
    for b in range(shape[0]):
        ref, ref_n = reference(labels[b], 6)
        np.testing.assert_array_equal(ids[b], ref)
        assert n[b] == ref_n


def _offsets_pairs(shape, offset):
    src = tuple(slice(max(0, -d), s - max(0, d)) for d, s in zip(offset, shape))
    dst = tuple(slice(max(0, d), s - max(0, -d)) for d, s in zip(offset, shape))
    return src, dst


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    labels=hnp.arrays(np.uint16, hnp.array_shapes(min_dims=3, max_dims=3, max_side=9),
                      elements=st.integers(0, 3)),
    connectivity=st.sampled_from([6, 18, 26]),
)
def test_components_are_the_connected_pieces_of_each_label(xp, labels, connectivity):
    ids, n = run(xp, labels, connectivity)
    # background stays background, and ids are exactly 1..n
    np.testing.assert_array_equal(ids == 0, labels == 0)
    assert set(np.unique(ids[ids > 0]).tolist()) == set(range(1, n + 1))
    # refinement: every id covers one input value
    pairs = np.unique(np.stack([ids.ravel(), labels.ravel()]), axis=1)
    assert pairs.shape[1] == len(np.unique(ids))
    # maximality: equal non-zero neighbours share an id
    for offset in stencil(connectivity):
        src, dst = _offsets_pairs(labels.shape, offset)
        same = (labels[src] == labels[dst]) & (labels[src] != 0)
        np.testing.assert_array_equal(ids[src][same], ids[dst][same])
    # each id is connected: labelling the ids again changes nothing
    np.testing.assert_array_equal(reference(ids, connectivity)[0], ids)


def test_importing_and_running_the_ops_on_numpy_never_imports_cupy():
    code = (
        "import sys, numpy as np, neurons_jax as nj; "
        "nj.ops.connected_components(np.ones((2, 2, 2), np.uint8)); "
        "nj.ops.union_semantic(np.ones(3, np.uint8), 'mitoem2'); "
        "assert 'cupy' not in sys.modules, 'cupy was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
