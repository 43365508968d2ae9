"""renumber: compact uint32 ids in order of first appearance, on both backends."""

from __future__ import annotations

import fastremap
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import neurons_jax as nj
from neurons_jax.backend import to_numpy


def reference(labels: np.ndarray, preserve_zero: bool = True):
    """Ids numbered by first appearance in C order, computed with np.unique."""
    flat = np.ascontiguousarray(labels).reshape(-1)
    uniq, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    keep = ~((uniq == 0) & preserve_zero)
    rank = np.zeros(len(uniq), np.int64)
    rank[np.flatnonzero(keep)[np.argsort(first[keep])]] = np.arange(1, keep.sum() + 1)
    mapping = dict(zip(uniq.tolist(), rank.tolist()))
    if preserve_zero:
        mapping[0] = 0
    return rank[inverse].astype(np.uint32).reshape(labels.shape), mapping


def run(xp, labels: np.ndarray, preserve_zero: bool = True):
    ids, mapping = nj.ops.renumber(xp.asarray(labels), preserve_zero=preserve_zero)
    assert isinstance(ids, xp.ndarray) and ids.dtype == np.uint32 and ids.shape == labels.shape
    assert all(type(k) is int and type(v) is int for k, v in mapping.items())
    return to_numpy(ids), mapping


@pytest.mark.parametrize("preserve_zero", [True, False])
def test_real_volumes_match_first_appearance_and_fastremap(xp, load_shared, preserve_zero):
    volumes = [
        load_shared("pinky40_seg_256.npz")["labels"][:32],
        load_shared("fib25_sample2.npz")["groundtruth"][:32],
        *load_shared("dvid_uint64_blocks.npz").values(),  # ids up to 5.2e10
    ]
    for labels in volumes:
        ids, mapping = run(xp, labels, preserve_zero)
        ref, ref_map = reference(labels, preserve_zero)
        np.testing.assert_array_equal(ids, ref)
        assert mapping == ref_map
        fr, fr_map = fastremap.renumber(labels, preserve_zero=preserve_zero)
        np.testing.assert_array_equal(ids, fr)
        assert mapping == fr_map


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int64, np.uint64])
def test_dtypes_and_orders(xp, dtype):
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    pool = np.array([info.min, 0, 1, 7, info.max - 1, info.max], dtype)
    labels = rng.choice(pool, size=(5, 6, 7))
    for arr in (labels, np.asfortranarray(labels), labels[:, ::-1]):
        for preserve_zero in (True, False):
            ids, mapping = run(xp, arr, preserve_zero)
            ref, ref_map = reference(arr, preserve_zero)
            np.testing.assert_array_equal(ids, ref)
            assert mapping == ref_map


def test_every_uint8_value_without_preserving_zero(xp):
    labels = np.arange(256, dtype=np.uint8)[::-1].copy()
    ids, mapping = run(xp, labels, preserve_zero=False)
    assert ids.tolist() == list(range(1, 257))  # 256 does not fit uint8; ids are uint32
    assert mapping[0] == 256 and mapping[255] == 1


def test_uint64_ids_above_2_32_compact_to_uint32(xp):
    labels = np.array([[2**40 + 1, 0, 1], [2**63 + 1, 2**40 + 1, 2**64 - 1]], np.uint64)
    ids, mapping = run(xp, labels)
    assert ids.tolist() == [[1, 0, 2], [3, 1, 4]]
    assert mapping == {0: 0, 2**40 + 1: 1, 1: 2, 2**63 + 1: 3, 2**64 - 1: 4}


def test_empty_and_all_zero(xp):
    assert run(xp, np.zeros((0, 4), np.uint32))[1] == {0: 0}
    assert run(xp, np.zeros((0, 4), np.uint32), preserve_zero=False)[1] == {}
    ids, mapping = run(xp, np.zeros((3, 4), np.uint64))
    assert not ids.any() and mapping == {0: 0}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    labels=hnp.arrays(np.uint64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=8),
                      elements=st.one_of(st.integers(0, 5), st.integers(0, 2**64 - 1))),
)
def test_renumber_is_a_bijection_on_nonzero_ids(xp, labels):
    ids, mapping = run(xp, labels)
    np.testing.assert_array_equal(ids == 0, labels == 0)
    nonzero = sorted(set(labels[labels != 0].tolist()))
    new = [mapping[v] for v in nonzero]
    assert sorted(new) == list(range(1, len(nonzero) + 1))  # one-to-one onto 1..k
    keys = np.array(sorted(mapping), np.uint64)
    values = np.array([mapping[int(k)] for k in keys], np.uint32)
    np.testing.assert_array_equal(values[np.searchsorted(keys, labels)], ids)


@pytest.mark.parametrize("dtype,match", [(np.float32, "float32"), (np.complex64, "complex64")])
def test_bad_dtype_gives_the_same_error_on_both_backends(xp, dtype, match):
    with pytest.raises(TypeError, match=f"renumber: labels must be an integer or bool array.*{match}"):
        nj.ops.renumber(xp.zeros((2, 2), dtype))


def test_bool_masks_renumber_as_uint8(xp):
    mask = np.array([[False, True], [True, False]])
    ids, mapping = run(xp, mask)
    assert ids.tolist() == [[0, 1], [1, 0]] and mapping == {0: 0, 1: 1}
    ids, mapping = run(xp, mask, preserve_zero=False)
    assert ids.tolist() == [[1, 2], [2, 1]] and mapping == {0: 1, 1: 2}


@pytest.mark.parametrize("value", [0, 7, 2**40, 2**64 - 1])
@pytest.mark.parametrize("preserve_zero", [True, False])
def test_a_0d_array_gives_a_0d_result(xp, value, preserve_zero):
    for dtype in (np.uint8, np.uint16, np.int32, np.uint64):
        if value > np.iinfo(dtype).max:
            continue
        labels = np.array(value, dtype)
        ids, mapping = run(xp, labels, preserve_zero)
        assert ids.shape == () and int(ids) == (0 if value == 0 and preserve_zero else 1)
        assert mapping == {**({0: 0} if preserve_zero else {}), value: int(ids)}
