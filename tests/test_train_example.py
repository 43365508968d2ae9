"""The Flax example and the demo: the loss falls, resume is exact, the demo writes its files."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from neurons_jax import cli
from neurons_jax.commands._example import load_train_example

ex = load_train_example()


@pytest.fixture(scope="module")
def specs(prepared):
    return {k: (k, str(prepared[k]), 1.0) for k in ("snemi3d", "cremi3d", "mitoem2")}


def small(specs, **kw):
    base = ex.TrainConfig(datasets=specs, patch_shape=(4, 32, 32), batch_size=2, features=(4, 8),
                          learning_rate=1e-2, log_every=0, seed=1)
    return dataclasses.replace(base, **kw)


def test_short_run_lowers_the_loss(specs):
    out = ex.train(small(specs, steps=16))
    losses = out["losses"]
    assert np.mean(losses[:5]) > np.mean(losses[-5:]), losses


def test_resume_continues_with_the_same_batches(specs, tmp_path):
    full = ex.train(small(specs, steps=6))
    ck = str(tmp_path / "ckpt")
    first = ex.train(small(specs, steps=3, ckpt_dir=ck))
    second = ex.train(small(specs, steps=6, ckpt_dir=ck, resume=True))
    assert second["start"] == 3
    assert first["batches"] + second["batches"] == full["batches"]
    np.testing.assert_allclose(first["losses"] + second["losses"], full["losses"], rtol=1e-4, atol=1e-5)
    for a, b in zip(_leaves(full["params"]), _leaves(second["params"])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def test_demo_writes_preview_and_metrics(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--steps", "3", "--out", str(out), "--patch", "4", "32", "32", "--batch-size", "2"]) == 0
    printed = capsys.readouterr().out
    assert "snemi3d" in printed and "samples/s" in printed
    # the last lines say where the sample data is, and what to try on it
    assert (f"sample data: native files in {out / 'workspace'}/KIND, prepared zarr3 in "
            f"{out / 'prepared'}/KIND (KIND: snemi3d, cremi3d, microns, mitoem2)") in printed
    assert printed.rstrip().splitlines()[-1] == (
        f"     neurons-jax preview --dataset snemi3d={out / 'prepared' / 'snemi3d'} "
        f"--dataset mitoem2={out / 'prepared' / 'mitoem2'}:2 -o batch.png")
    img = Image.open(out / "preview.png")
    img.load()
    assert img.size[0] > 64 and img.size[1] > 64
    px = np.asarray(img)
    assert px.std() > 5  # a real picture, not a blank canvas
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and len(metrics["losses"]) == 3
    assert set(metrics["share_of_samples"]) == {"snemi3d", "cremi3d", "microns", "mitoem2"}
    assert abs(sum(metrics["share_of_samples"].values()) - 1) < 1e-9


def test_preview_command(prepared, tmp_path):
    png = tmp_path / "p.png"
    rc = cli.main(["preview", "--dataset", f"mitoem2={prepared['mitoem2']}", "--dataset",
                   f"cremi3d={prepared['cremi3d']}:2", "--patch", "4", "32", "32", "-o", str(png)])
    assert rc == 0
    assert Image.open(png).size[1] > 32


# ----------------------------------------------------------------------------- target heads
@pytest.mark.parametrize("target, term", [("affinities", "affinity"), ("lsd", "lsd")])
def test_smoke_with_a_target_through_the_command(specs, capsys, target, term):
    """``neurons-jax train --smoke --targets T``: each step logs the target's finite, non-zero
    loss term beside the semantic one."""
    args = ["train", "--smoke", "--targets", target]
    for kind, root, _ in specs.values():
        args += ["--dataset", f"{kind}={root}"]
    assert cli.main(args) == 0
    steps = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert len(steps) == ex.SMOKE["steps"] and all(" semantic " in line for line in steps)
    values = [float(line.split(f" {term} ")[1].split()[0]) for line in steps]
    assert np.isfinite(values).all() and min(values) > 0, values


def _targets_cfg(specs, **kw):
    return small(specs, targets=("affinities", "lsd"), lsd_sigma_nm=ex.SMOKE["lsd_sigma_nm"], **kw)


@pytest.fixture(scope="module")
def held(specs):
    """A batch with both targets (seed 99: not one the training runs see), as NumPy copies."""
    loader = ex.make_loader(_targets_cfg(specs, seed=99, augment=False))
    try:  # copies: on a CPU backend the batch's arrays may be views of the loader's blocks
        return {k: np.array(v) for k, v in next(loader).items()}
    finally:
        loader.close()


def test_target_heads_learn(specs, held):
    """Eight steps lower the affinity BCE and the LSD MSE on a batch the run never saw."""
    from flax import nnx

    cfg = _targets_cfg(specs, steps=8, seed=0)
    out = ex.train(cfg)
    assert np.isfinite(out["losses"]).all()
    assert out["params"]["head"]["kernel"].shape[-1] == ex.N_CLASSES + 3 + 10  # classes, z/y/x, LSDs
    before = ex.UNet3D(cfg.features, heads=ex.heads(cfg), rngs=nnx.Rngs(cfg.seed))  # the run's init
    after = ex.UNet3D(cfg.features, heads=ex.heads(cfg), rngs=nnx.Rngs(cfg.seed))
    nnx.update(after, out["params"])
    loss = nnx.jit(ex.loss_fn)
    t0, t1 = loss(before, held)[1], loss(after, held)[1]
    for k in ("affinity", "lsd"):
        assert float(t1[k]) < float(t0[k]), (k, float(t0[k]), float(t1[k]))


def test_target_losses_come_from_the_targets(specs, held):
    """Each target term is computed from its batch key: changing the target changes the term,
    the masks weigh it, and its gradient reaches the head's own output channels."""
    from flax import nnx

    cfg = _targets_cfg(specs)
    assert held["affinity"].shape == (2, 4, 32, 32, 3) and held["lsd"].shape == (2, 4, 32, 32, 10)
    model = ex.UNet3D(cfg.features, heads=ex.heads(cfg), rngs=nnx.Rngs(0))
    flipped = {**held, "affinity": 1 - held["affinity"], "lsd": 1 - held["lsd"]}
    unmasked = {**flipped, "affinity_mask": np.zeros_like(held["affinity_mask"])}

    @nnx.jit  # one compilation for all of it
    def probe(model, batches):
        grads = nnx.grad(lambda m: ex.loss_fn(m, batches[0])[1]["affinity"])(model)
        return [ex.loss_fn(model, b)[1] for b in batches], grads["head"]["kernel"][...]

    (terms, other, none), g = probe(model, [held, flipped, unmasked])
    assert abs(float(terms["affinity"]) - float(other["affinity"])) > 1e-3
    assert abs(float(terms["lsd"]) - float(other["lsd"])) > 1e-4
    assert float(none["affinity"]) == 0.0 and float(none["lsd"]) == float(other["lsd"])
    g = np.abs(np.asarray(g)).sum(tuple(range(4)))  # per output channel of the shared head
    n = ex.N_CLASSES
    assert np.isfinite(g).all() and (g[n:n + 3] > 0).all() and (g[:n] == 0).all() and (g[n + 3:] == 0).all()
