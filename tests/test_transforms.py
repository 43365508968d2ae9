"""The Loader's Grain transforms: per-dataset facts travel with the elements, and a newly
registered boundary-separated rule gets instances from its own classes (not mitochondria's)."""

from __future__ import annotations

import numpy as np
import pytest
import synth

import neurons_jax as nj
from neurons_jax import rules
from neurons_jax.datasets.base import Dataset
from neurons_jax.pipeline import Loader
from neurons_jax.transforms import HostLabels


@pytest.fixture
def toy_rule():
    # native 1 -> neuron interior, 2 -> cleft as the separating class
    rule = rules.register_rule("toy_bsep", [(1, 1, "neuron"), (2, 2, "cleft")], "boundary_separated",
                               overwrite=True)
    yield rule
    rules._RULES.pop("toy_bsep", None)


def test_host_labels_carry_the_datasets_facts(toy_rule):
    t = HostLabels(toy_rule, voxel_sizes=[(40, 4, 4), (30, 8, 8)])
    e = t({"label": np.array([[[0, 1, 2, 1]]], np.uint8), "volume": 1})
    assert e["instance_classes"].tolist() == [1, 2]
    assert e["voxel_size"].tolist() == [30, 8, 8]
    assert nj.stage.unpack_labels(e["packed"])[0].tolist() == [[[0, 1, 2, 1]]]
    ids_rule = HostLabels("snemi3d")({"label": np.array([[[0, 5]]], np.uint32), "volume": 0})
    assert ids_rule["instance_classes"].tolist() == [0, 0] and "voxel_size" not in ids_rule


def test_a_registered_boundary_rule_yields_instances_in_the_loader(toy_rule):
    mito = synth.dataset("mitoem2", seed=3)  # native 1 = interior, 2 = boundary
    toy = Dataset("toy_bsep", "train", mito.pairs, root="synthetic:toy")
    loader = Loader({"toy": (toy, 1.0)}, (4, 32, 32), batch_size=2, seed=1, augment=None, output="numpy")
    b = next(loader)
    sem, inst = b["semantic"], b["instance"]
    assert set(np.unique(sem)) <= {0, 1, 2} and (sem == 1).any()
    assert inst.max() > 0  # before: instance classes were hard-coded to mitochondria, so none
    assert (inst[sem == 1] > 0).all() and (inst[sem == 0] == 0).all()
    ref, _ = nj.ops.boundary_separated_instances(sem, interior=1, boundary=2)
    np.testing.assert_array_equal(inst[0], ref[0])
    loader.close()


def _unfused(label, rule, ignore=()):
    """What HostLabels did before the fused pass: remap, keep ids of labelled voxels, pack."""
    semantic = nj.ops.union_semantic(label, rule, ignore_classes=ignore)
    if rules.get_rule(rule).instances != "ids":
        return nj.stage.pack_labels(semantic, np.zeros(label.shape, np.uint32))
    inst = np.where(semantic != 0, label, 0)
    if int(inst.max(initial=0)) > nj.stage.MAX_INSTANCES:
        inst, _ = nj.ops.renumber(inst)
    return nj.stage.pack_labels(semantic, inst)


@pytest.mark.parametrize("kind", ["snemi3d", "cremi3d", "microns", "mitoem2", "generic"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.uint32, np.uint64])
def test_fused_union_pack_equals_remap_then_pack(kind, dtype):
    rng = np.random.default_rng(hash((kind, np.dtype(dtype).name)) % 2**32)
    info = np.iinfo(dtype)
    # small ids, ids at the packing limit, dtype extremes (CREMI's uint64-max no-data, MICrONS ids)
    special = [0, 1, 2, 3, 2**29 - 1, 2**29, 2**32 - 1, 2**40 + 3, 2**64 - 1, -1]
    special = [v for v in special if info.min <= v <= info.max]
    lab = rng.choice(np.array(special + list(rng.integers(0, min(info.max, 5000), 50)), dtype), (6, 7, 9))
    for ignore in ((), ("neuron",), ("mitochondria", "cleft")):
        got = HostLabels(kind, ignore_classes=ignore)({"label": lab.copy(), "volume": 0})["packed"]
        ref = _unfused(lab, kind, ignore)
        assert got.dtype == np.uint32 and np.array_equal(got, ref), (kind, dtype, ignore)
