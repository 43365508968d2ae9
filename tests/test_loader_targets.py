"""Loader(targets=...): targets from labels warped over the grown patch, equal to the target
functions on the batch's own arrays wherever the batch's own patch holds the context they need;
never masked for lack of context; random targets identical for 0 and 2 workers and on restore;
the GPU stage equal to the CPU stage."""

from __future__ import annotations

import numpy as np
import pytest
import synth

import neurons_jax as nj
from neurons_jax.pipeline import Loader

OFFSETS = [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, -7, 0), (0, 0, -7)]
PATCH = (6, 40, 40)


def specs():
    return {"aff": nj.targets.Affinities(offsets=OFFSETS), "dist": nj.targets.Distance(clip=60.0),
            "pp": nj.targets.PointPrompts(n_pos=2, n_neg=3)}


@pytest.fixture(scope="module")
def snemi():
    return synth.dataset("snemi3d", shape=(24, 160, 160), seed=5)


@pytest.mark.parametrize("augment", ["default", None])
def test_loader_targets_equal_the_functions_on_the_batch(snemi, augment):
    with Loader({"s": (snemi, 1.0)}, PATCH, 2, seed=3, augment=augment, output="numpy", targets=specs()) as L:
        b = next(L)
    assert b["aff"].shape == (2, *PATCH, len(OFFSETS)) and b["aff"].dtype == np.uint8
    assert b["dist"].shape == (2, *PATCH, 1) and b["dist"].dtype == np.float32
    # the context holds every offset partner: nothing is masked for lack of it
    assert b["aff_mask"].min() == 1
    ref, ref_mask = nj.targets.affinities(b["instance"], OFFSETS)
    near = slice(0, 3)  # nearest neighbours: the patch's own pieces decide them exactly
    inside = ref_mask[..., near] == 1
    assert np.array_equal(b["aff"][..., near][inside], ref[..., near][inside])
    assert (ref_mask[..., near] == 0).any()  # the reference lacks context at the border ...
    # ... long-range partners may be one body through context outside the patch: never fewer 1s
    far = ref_mask[..., 3:] == 1
    assert np.all(b["aff"][..., 3:][far] >= ref[..., 3:][far])
    # distance clipped at 60 nm (10 voxels in-plane at 6 nm, 2 sections at 30 nm): equal to the
    # function on the batch away from the patch border, where both see the same labels
    d = nj.targets.distance(b["instance"], (30, 6, 6), clip=60.0)
    core = (slice(None), slice(2, -2), slice(10, -10), slice(10, -10))
    assert np.allclose(b["dist"][..., 0][core], d[core], rtol=1e-5)
    # prompts: positives inside their instance, negatives outside
    for i in range(2):
        for j in np.flatnonzero(b["pp_valid"][i]):
            z, y, x = b["pp"][i, j]
            assert (b["instance"][i, z, y, x] == b["pp_instance"][i]) == bool(b["pp_positive"][i, j])


def test_random_targets_are_the_same_for_0_and_2_workers_and_on_restore(snemi):
    t = {"pp": nj.targets.PointPrompts(n_pos=2, n_neg=2)}
    with Loader({"s": (snemi, 1.0)}, PATCH, 2, seed=4, output="numpy", targets=t) as a:
        first = [next(a) for _ in range(3)]
        state = None
    with Loader({"s": (snemi, 1.0)}, PATCH, 2, seed=4, output="numpy", targets=t, worker_count=2) as b:
        second = [next(b) for _ in range(3)]
    for x, y in zip(first, second):
        for k in ("pp", "pp_valid", "pp_instance", "instance", "image"):
            assert np.array_equal(x[k], y[k]), k
    with Loader({"s": (snemi, 1.0)}, PATCH, 2, seed=4, output="numpy", targets=t) as c:
        next(c)
        state = c.get_state()
        want = next(c)
    with Loader({"s": (snemi, 1.0)}, PATCH, 2, seed=4, output="numpy", targets=t) as d:
        d.set_state(state)
        got = next(d)
    assert np.array_equal(got["pp"], want["pp"]) and np.array_equal(got["pp"], first[1]["pp"])


def test_targets_do_not_change_the_batch_arrays(snemi):
    """The augmentation params are drawn before the targets' numbers: image, labels and mask of
    a loader with targets equal those of the same loader without (same positions: same context)."""
    t = {"pp": nj.targets.PointPrompts()}  # no margin: the same context as without targets
    with Loader({"s": (snemi, 1.0)}, PATCH, 2, seed=6, output="numpy", targets=t) as a:
        x = next(a)
    with Loader({"s": (snemi, 1.0)}, PATCH, 2, seed=6, output="numpy") as b:
        y = next(b)
    for k in ("image", "semantic", "instance", "mask", "position"):
        assert np.array_equal(x[k], y[k]), k


def test_bad_targets_are_refused(snemi):
    with pytest.raises(ValueError, match="key 'image'"):
        Loader({"s": (snemi, 1.0)}, PATCH, 2, output="numpy", targets={"image": nj.targets.Boundaries()})
    with pytest.raises(TypeError, match="target spec"):
        Loader({"s": (snemi, 1.0)}, PATCH, 2, output="numpy", targets={"aff": OFFSETS})


@pytest.mark.gpu
def test_gpu_stage_targets_equal_the_cpu_stage(snemi):
    t = {"aff": nj.targets.Affinities(offsets=OFFSETS), "bnd": nj.targets.Boundaries()}
    with Loader({"s": (snemi, 1.0)}, PATCH, 2, seed=7, output="numpy", targets=t, device="cpu") as a:
        cpu = next(a)
    with Loader({"s": (snemi, 1.0)}, PATCH, 2, seed=7, output="numpy", targets=t, device="gpu") as b:
        gpu = next(b)
    for k in ("aff", "aff_mask", "bnd", "instance", "semantic"):
        g = gpu[k].get() if hasattr(gpu[k], "get") else np.asarray(gpu[k])
        assert np.array_equal(cpu[k], g), k
