"""The Loader: mixing, determinism, checkpoint state, labels per dataset, splits, bad input."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
import synth

import neurons_jax as nj
from neurons_jax.pipeline import Loader
from neurons_jax.rules import class_index

PATCH = (4, 32, 32)


@pytest.fixture(scope="module")
def three():
    return {
        "snemi3d": (synth.dataset("snemi3d", seed=1), 1.0),
        "cremi3d": (synth.dataset("cremi3d", seed=2), 2.0),
        "mitoem2": (synth.dataset("mitoem2", seed=3), 0.5),
    }


def take(loader, n):
    out = [next(loader) for _ in range(n)]
    return out


def same_batches(a, b):
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]), err_msg=k)


def test_mixing_proportions_and_dataset_ids(three):
    loader = Loader(three, PATCH, batch_size=7, seed=3, augment=None, output="numpy")
    batches = take(loader, 10)
    ids = np.concatenate([b["dataset"] for b in batches])
    w = np.array([1.0, 2.0, 0.5])
    for n in (7, 21, 35, 70):
        counts = np.bincount(ids[:n], minlength=3)
        assert np.all(np.abs(counts - n * w / w.sum()) <= 1), (n, counts)
    # each sample really comes from the dataset its id names: without augmentation the image
    # is the volume's region at the reported position
    names = list(three)
    for b in batches[:3]:
        for i in range(len(b["dataset"])):
            ds = three[names[b["dataset"][i]]][0]
            z, y, x = b["position"][i]
            raw = ds.pairs[b["volume"][i]].image.read((slice(z, z + 4), slice(y, y + 32), slice(x, x + 32)))
            np.testing.assert_allclose(b["image"][i, ..., 0], raw / 255.0, atol=1e-6)


def test_same_seed_same_batches_and_state_restore(three):
    a = Loader(three, PATCH, batch_size=4, seed=11, output="numpy")
    first = take(a, 2)
    state = a.get_state()
    expected = take(a, 3)
    b = Loader(three, PATCH, batch_size=4, seed=11, output="numpy")
    same_batches(take(b, 2), first)
    c = Loader(three, PATCH, batch_size=4, seed=11, output="numpy")
    c.set_state(state)
    same_batches(take(c, 3), expected)
    d = Loader(three, PATCH, batch_size=4, seed=12, output="numpy")
    assert not np.array_equal(next(d)["position"], first[0]["position"])


@pytest.mark.slow
def test_worker_count_does_not_change_batches(three):
    a = Loader(three, PATCH, batch_size=4, seed=5, output="numpy", worker_count=0)
    b = Loader(three, PATCH, batch_size=4, seed=5, output="numpy", worker_count=2)
    try:
        same_batches(take(a, 3), take(b, 3))
    finally:
        b.close()


def test_labels_per_dataset(three):
    loader = Loader(three, PATCH, batch_size=8, seed=2, output="numpy")
    names = list(three)
    seen = set()
    for b in take(loader, 4):
        for i, d in enumerate(b["dataset"]):
            kind = names[d]
            sem, inst = b["semantic"][i], b["instance"][i]
            present = set(np.unique(sem).tolist())
            allowed = {
                "snemi3d": {0, 1},
                "cremi3d": {0, 1, 2, 3},
                "mitoem2": {0, 3, 4},
            }[kind]
            assert present <= allowed, (kind, present)
            seen |= present
            # instance ids compact 1..n and each one connected (6-connectivity)
            ids = np.unique(inst[inst > 0])
            np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
            assert cc3d.connected_components(inst, connectivity=6).max() == len(ids)
            assert np.all(inst[sem == 0] == 0)
            if kind == "mitoem2":
                assert np.all(inst[sem == 3] > 0)
    assert {1, 2, 3, 4} <= seen


def test_ignore_classes(three):
    loader = Loader(three, PATCH, batch_size=8, seed=2, output="numpy", ignore_classes=("mito_boundary", "cleft"))
    for b in take(loader, 3):
        assert not np.isin(b["semantic"], (class_index("mito_boundary"), class_index("cleft"))).any()


def test_valid_and_test_splits_are_deterministic_tiles():
    ds = synth.dataset("snemi3d", split="valid")
    a = Loader({"s": (ds, 1.0)}, (2, 32, 32), batch_size=4, split="valid", output="numpy")
    b = Loader({"s": (ds, 1.0)}, (2, 32, 32), batch_size=4, split="valid", output="numpy")
    ba, bb = list(a), list(b)
    assert len(ba) == len(a) > 0
    same_batches(ba, bb)
    pos = np.concatenate([x["position"][x["dataset"] >= 0] for x in ba])
    # tiles cover the whole volume
    cover = np.zeros(ds.image.shape, bool)
    for z, y, x in pos:
        cover[z : z + 2, y : y + 32, x : x + 32] = True
    assert cover.all()
    # the padded tail of the last batch is masked out
    last = ba[-1]
    assert np.all(last["mask"][last["dataset"] < 0] == 0)


def test_train_and_valid_never_overlap_in_z(workspace):
    train = nj.datasets.snemi3d(workspace["snemi3d"], split="train")
    valid = nj.datasets.snemi3d(workspace["snemi3d"], split="valid")
    for tp, vp in zip(train.pairs, valid.pairs):
        assert tp.image.origin[0] + tp.image.shape[0] <= vp.image.origin[0]
    loader = Loader({"s": (train, 1.0)}, PATCH, batch_size=4, seed=0, output="numpy")
    ctx = loader.context_shape
    hi = train.image.shape[0]
    for b in take(loader, 3):
        # context region (patch + margin) lies inside the train window
        z0 = b["position"][:, 0] - (ctx[0] - PATCH[0]) // 2
        assert np.all(z0 >= 0) and np.all(z0 + ctx[0] <= hi)


def test_sample_workspace_union_classes(prepared):
    specs = {k: (k, str(root), 1.0) for k, root in prepared.items()}
    loader = Loader(nj.datasets.sources_from_specs(specs), PATCH, batch_size=8, seed=0, output="numpy")
    names = list(specs)
    classes = {k: set() for k in names}
    for b in take(loader, 4):
        for i, d in enumerate(b["dataset"]):
            classes[names[d]] |= set(np.unique(b["semantic"][i]).tolist())
    assert classes["snemi3d"] <= {0, 1} and 1 in classes["snemi3d"]
    assert classes["microns"] <= {0, 1} and 1 in classes["microns"]
    assert classes["cremi3d"] <= {0, 1, 2, 3} and {1, 2} <= classes["cremi3d"]
    assert classes["mitoem2"] <= {0, 3, 4} and 3 in classes["mitoem2"]


def test_timings_reported(three):
    loader = Loader(three, PATCH, batch_size=4, seed=0, output="numpy")
    take(loader, 2)
    t = loader.timings()
    assert {"read", "wait", "transfer"} <= set(t)
    assert all(v["batches"] == 2 for v in t.values())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sources_w": -1.0}, "weight must be a positive finite number"),
        ({"sources_w": float("nan")}, "weight must be a positive finite number"),
        ({"ignore_classes": ("axon",)}, "unknown class"),
        ({"patch_shape": (4, 512, 32)}, "smaller than"),
        ({"split": "valid"}, "split"),
    ],
)
def test_bad_input(kwargs, match):
    ds = synth.dataset("snemi3d")
    w = kwargs.pop("sources_w", 1.0)
    args = {"patch_shape": PATCH, "batch_size": 4, "output": "numpy", **kwargs}
    with pytest.raises(ValueError, match=match):
        Loader({"s": (ds, w)}, **args)


def test_padding_when_asked():
    ds = synth.dataset("snemi3d", shape=(24, 40, 40))
    loader = Loader({"s": (ds, 1.0)}, (4, 48, 48), batch_size=2, augment=None, output="numpy", pad=True)
    b = next(loader)
    assert b["image"].shape == (2, 4, 48, 48, 1)
    assert (b["mask"] == 0).any() and (b["mask"] == 1).any()
    assert np.all(b["semantic"][b["mask"] == 0] == 0)


def test_2d_slice_mode(three):
    loader = Loader(three, (1, 48, 48), batch_size=6, seed=4, output="numpy")
    b = next(loader)
    assert b["image"].shape == (6, 1, 48, 48, 1) and b["semantic"].shape == (6, 1, 48, 48)
    assert loader.context_shape[0] == 1  # slices never read neighbouring sections
    assert b["instance"].max() > 0 and np.isfinite(b["image"]).all()


@pytest.mark.gpu
def test_gpu_stage_equals_cpu_stage(three):
    cpu = Loader(three, PATCH, batch_size=4, seed=9, device="cpu")
    gpu = Loader(three, PATCH, batch_size=4, seed=9, device="gpu")
    for a, b in zip(take(cpu, 3), take(gpu, 3)):
        for k in ("semantic", "instance", "mask", "dataset", "position"):
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)
        np.testing.assert_allclose(np.asarray(a["image"]), np.asarray(b["image"]), atol=1e-5)


def test_acceptance_map_draws_labelled_positions_directly():
    from neurons_jax.datasets.base import Dataset, VolumePair

    lab = np.zeros((8, 64, 128), np.uint32)
    lab[:, :, :48] = synth.instances((8, 64, 48), 10, 0)  # only the left part is labelled
    img = synth.render(lab, 0)
    pair = VolumePair("half", nj.Volume.from_array(img, (30, 6, 6)), nj.Volume.from_array(lab, (30, 6, 6)))
    ds = Dataset("snemi3d", "train", (pair,))

    def shares(min_fg):
        src = nj.sampling.PatchSource(ds, (4, 32, 32), (4, 32, 32), seed=1, min_foreground=min_fg)
        return np.array([(src[i]["label"] != 0).mean() for i in range(200)])

    picky, any_ = shares(0.99), shares(0.0)
    # positions come from cells whose window is labelled; jitter inside a cell (8 voxels in x
    # here) may bring in at most a quarter of unlabelled voxels
    assert picky.min() >= 0.75
    assert (any_ < 0.5).mean() > 0.3  # without acceptance, most of the volume is unlabelled
    with pytest.raises(ValueError, match="no patch position"):
        nj.sampling.PatchSource(ds, (4, 32, 32), (4, 32, 32), min_foreground=1.01)


def test_orbax_checkpoint_beside_model_state(three, tmp_path):
    import grain
    import orbax.checkpoint as ocp

    a = Loader(three, PATCH, batch_size=4, seed=21, output="numpy")
    take(a, 2)
    weights = {"w": np.arange(6.0).reshape(2, 3)}
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        mngr.save(2, args=ocp.args.Composite(model=ocp.args.StandardSave(weights),
                                             loader=grain.checkpoint.CheckpointSave(a.iterator)))
        mngr.wait_until_finished()
    expected = take(a, 2)
    b = Loader(three, PATCH, batch_size=4, seed=21, output="numpy")
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        got = mngr.restore(2, args=ocp.args.Composite(
            model=ocp.args.StandardRestore(weights), loader=grain.checkpoint.CheckpointRestore(b.iterator)))
    np.testing.assert_array_equal(got["model"]["w"], weights["w"])
    same_batches(take(b, 2), expected)


@pytest.mark.parametrize("w", [-1, 0, float("nan"), float("inf"), "x"])
def test_a_bad_weight_is_an_error_naming_the_source(three, w):
    ds = three["snemi3d"][0]
    with pytest.raises(ValueError, match=r"^sources\['a'\]: weight must be a positive finite number; got"):
        Loader({"a": (ds, w)}, PATCH, batch_size=2, output="numpy")
