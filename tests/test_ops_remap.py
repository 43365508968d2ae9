"""union_semantic: the per-dataset rules of docs/datasets.md, voxel by voxel, on both backends."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurons_jax as nj
from neurons_jax.backend import to_numpy

U64_MAX = 2**64 - 1
NEURON, CLEFT, MITO, MITO_BOUNDARY = 1, 2, 3, 4
UNSIGNED = [np.uint8, np.uint16, np.uint32, np.uint64]
INTERESTING = [0, 1, 2, 3, 255, 256, 65535, 65536, 999_999, 1_000_000, 1_999_999, 2_000_000,
               2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**63 - 1, 2**63, 2**63 + 1, U64_MAX - 1, U64_MAX]


def expected(values: list[int], kind: str) -> list[int]:
    """The union classes of docs/datasets.md, written out id by id."""
    out = []
    for v in values:
        if kind in ("snemi3d", "microns", "generic"):
            out.append(NEURON if v > 0 else 0)
        elif kind == "cremi3d":
            if v == 0 or v == U64_MAX:  # uint64 max is CREMI's "no data"
                out.append(0)
            elif v < 1_000_000:
                out.append(NEURON)
            elif v < 2_000_000:
                out.append(CLEFT)
            else:
                out.append(MITO)
        elif kind == "mitoem2":
            out.append({1: MITO, 2: MITO_BOUNDARY}.get(v, 0))
    return out


def run(xp, labels: np.ndarray, kind, ignore=()):
    out = nj.ops.union_semantic(xp.asarray(labels), kind, ignore)
    assert isinstance(out, xp.ndarray) and out.dtype == np.uint8 and out.shape == labels.shape
    return to_numpy(out)


@pytest.mark.parametrize("dtype", UNSIGNED)
@pytest.mark.parametrize("kind", ["snemi3d", "microns", "cremi3d", "mitoem2", "generic"])
def test_every_rule_on_the_ids_around_its_range_bounds(xp, dtype, kind):
    info = np.iinfo(dtype)
    values = [v for v in INTERESTING if v <= info.max]
    labels = np.array(values * 3, dtype).reshape(3, 1, len(values))
    out = run(xp, labels, kind)
    assert out.reshape(-1).tolist() == expected(values, kind) * 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(st.one_of(st.sampled_from(INTERESTING), st.integers(0, U64_MAX)),
                    min_size=1, max_size=40),
    dtype=st.sampled_from(UNSIGNED),
    kind=st.sampled_from(["snemi3d", "microns", "cremi3d", "mitoem2"]),
    ignore=st.sets(st.sampled_from(nj.UNION_CLASSES)),
)
def test_rules_voxel_by_voxel(xp, values, dtype, kind, ignore):
    values = [v % (np.iinfo(dtype).max + 1) for v in values]
    out = run(xp, np.array(values, dtype), kind, sorted(ignore))
    dropped = {nj.UNION_CLASSES.index(c) for c in ignore}
    want = [0 if c in dropped else c for c in expected(values, kind)]
    assert out.tolist() == want


def test_real_volumes(xp, load_shared):
    pinky = load_shared("pinky40_seg_256.npz")["labels"][:64]
    np.testing.assert_array_equal(run(xp, pinky, "snemi3d"), (pinky != 0).astype(np.uint8))
    for name, block in load_shared("dvid_uint64_blocks.npz").items():
        flat = block.reshape(-1)
        uniq, inverse = np.unique(flat, return_inverse=True)
        want = np.array(expected(uniq.tolist(), "cremi3d"), np.uint8)[inverse]
        np.testing.assert_array_equal(run(xp, block, "cremi3d").reshape(-1), want, err_msg=name)


def test_signed_labels_negative_ids_are_background(xp):
    labels = np.array([-5, -1, 0, 1, 999_999, 1_000_000, 2_000_000, 2**31 - 1], np.int32)
    assert run(xp, labels, "cremi3d").tolist() == [0, 0, 0, 1, 1, 2, 3, 3]
    assert run(xp, labels.astype(np.int8), "mitoem2").tolist() == [0, 0, 0, 3, 0, 0, 0, 0]


def test_ignore_classes_accepts_one_name_or_a_set(xp):
    labels = np.array([0, 1, 2, 3], np.uint8)
    assert run(xp, labels, "mitoem2", "mito_boundary").tolist() == [0, 3, 0, 0]
    assert run(xp, labels, "mitoem2", {"mito_boundary", "mitochondria"}).tolist() == [0, 0, 0, 0]


def test_a_registered_rule_with_a_long_table(xp):
    # 40 ranges: more edges than the comparison chain takes, so the CPU binary search runs
    ranges = [(10 * k + 1, 10 * k + 5, 1 + k % 4) for k in range(40)]
    nj.rules.register_rule("test_ops_long_table", ranges, overwrite=True)
    values = np.arange(0, 420, dtype=np.uint64)
    want = np.zeros(420, np.uint8)
    for lo, hi, c in ranges:
        want[lo : hi + 1] = c
    np.testing.assert_array_equal(run(xp, values, "test_ops_long_table"), want)
    big = np.tile(values, 2000)  # several CPU chunks
    np.testing.assert_array_equal(run(xp, big, "test_ops_long_table"), np.tile(want, 2000))


def test_empty_and_large_arrays(xp):
    assert run(xp, np.zeros((0, 3), np.uint32), "cremi3d").shape == (0, 3)
    labels = np.repeat(np.array([0, 5, 1_500_000, 3_000_000], np.uint32), 300_001)
    out = run(xp, labels, "cremi3d")  # spans chunk boundaries
    np.testing.assert_array_equal(np.bincount(out, minlength=4), [300_001] * 4)
    np.testing.assert_array_equal(out[::300_001], [0, 1, 2, 3])


@pytest.mark.parametrize(
    "labels,kind,ignore,error,match",
    [
        (np.zeros(3, np.float64), "snemi3d", (), TypeError, "integer or bool array .*float64"),
        (np.zeros(3, np.complex64), "snemi3d", (), TypeError, "got dtype complex64"),
        (np.zeros(3, np.uint8), "nope", (), ValueError, "unknown dataset kind 'nope'"),
        (np.zeros(3, np.uint8), "mitoem2", ("mito",), ValueError, "unknown union class 'mito'"),
        (np.zeros(3, np.uint8), "mitoem2", (3,), ValueError, "class names"),
    ],
)
def test_bad_input_gives_the_same_error_on_both_backends(xp, labels, kind, ignore, error, match):
    with pytest.raises(error, match=match):
        nj.ops.union_semantic(xp.asarray(labels), kind, ignore)
