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
