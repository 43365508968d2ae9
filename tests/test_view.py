"""``nj.view`` / ``neurons-jax view``: Neuroglancer layers, and the viewer in a real headless Chromium.

The browser test opens the served URL in Chromium (Debian package; skipped with the reason where
none is installed), reads the viewer state the client sends back (layers, voxel size) and checks
the screenshot is not blank: it differs from an empty viewer's.
"""

from __future__ import annotations

import io
import sys
import urllib.request

import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax.cli import main

ng = pytest.importorskip("neuroglancer", reason="neurons-jax[view] (neuroglancer) is not installed")

from neurons_jax.viewer import browser, layers, server  # noqa: E402

needs_browser = pytest.mark.skipif(browser.find_browser() is None, reason=browser.NO_BROWSER)


def test_dataset_layers_read_lazily_with_physical_voxel_size(prepared):
    got, notes = server.dataset_layers(f"cremi3d={prepared['cremi3d']}", volume="B")
    assert [g.name for g in got] == ["image", "labels", "classes", "instances"] and not notes
    ds = nj.datasets.cremi3d(prepared["cremi3d"], "train")
    pair = ds.pairs[1]
    assert all(g.voxel_size == pair.image.voxel_size == (40.0, 4.0, 4.0) for g in got)
    box = (slice(3, 5), slice(10, 60), slice(0, 40))
    lab = pair.label.read(box)
    sem = nj.ops.union_semantic(lab, "cremi3d")
    assert np.array_equal(got[2].data[box], sem)
    assert np.array_equal(got[3].data[box], np.where(sem > 0, lab, 0))
    assert np.array_equal(got[0].data[box], pair.image.read(box))
    viewer = server.build_viewer(got)
    state = viewer.state
    assert [layer.name for layer in state.layers] == ["image", "labels", "classes", "instances"]
    assert list(state.dimensions.names) == ["x", "y", "z"]
    assert [float(s) for s in state.dimensions.scales] == pytest.approx([4e-9, 4e-9, 40e-9])
    src = state.layers["classes"].source[0].url
    assert src.startswith("python://")
    with pytest.raises(ValueError, match="volume 'Z'"):
        server.dataset_layers(f"cremi3d={prepared['cremi3d']}", volume="Z")


def test_mitoem2_instances_are_the_boundary_separated_ones(prepared):
    got, _ = server.dataset_layers(prepared["mitoem2"], volume="Beta/beta_000")
    inst = next(g for g in got if g.name == "instances").data
    lab = nj.datasets.mitoem2(prepared["mitoem2"], "train").pairs[0].label.read()
    ref, n = nj.ops.boundary_separated_instances(lab)
    assert np.array_equal(inst, ref) and n > 3


def test_batch_layers_one_sample_with_targets():
    rng = np.random.default_rng(0)
    batch = {"image": rng.random((2, 4, 16, 16, 1), np.float32),
             "semantic": rng.integers(0, 5, (2, 4, 16, 16)).astype(np.uint8),
             "instance": rng.integers(0, 9, (2, 4, 16, 16)).astype(np.uint32),
             "mask": np.ones((2, 4, 16, 16), np.uint8),
             "affinities": rng.random((2, 4, 16, 16, 3), np.float32),
             "dataset": np.array([0, 1]), "position": np.zeros((2, 3), int)}
    got = layers.batch_layers(batch, sample=1, voxel_size=(30, 6, 6))
    assert [g.name for g in got] == ["image", "semantic", "instance", "mask",
                                     "affinities[0]", "affinities[1]", "affinities[2]"]
    assert np.array_equal(got[2].data, batch["instance"][1]) and got[2].kind == "segmentation"
    assert np.array_equal(got[5].data, batch["affinities"][1, ..., 1]) and got[5].kind == "image"
    assert all(g.voxel_size == (30.0, 6.0, 6.0) for g in got)
    with pytest.raises(ValueError, match="outside the batch of 2"):
        layers.batch_layers(batch, sample=2)


def test_missing_neuroglancer_names_the_extra(monkeypatch, prepared, capsys):
    monkeypatch.setitem(sys.modules, "neuroglancer", None)  # import neuroglancer -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'neurons-jax\[view\]'"):
        nj.view(f"snemi3d={prepared['snemi3d']}")
    assert main(["view", f"snemi3d={prepared['snemi3d']}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["neurons-jax view: error: the viewer needs the neuroglancer package: "
                   "pip install 'neurons-jax[view]'"]


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.int16)


@needs_browser
def test_viewer_in_headless_chromium(prepared, tmp_path):
    size = (640, 480)
    viewer = nj.view(f"snemi3d={prepared['snemi3d']}", layout="xy")
    url = viewer.get_viewer_url()
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as r:  # the served URL opens: the bundled client
        assert r.status == 200 and b"<html" in r.read(4096).lower()
    with browser.HeadlessBrowser(url, size):
        reply = browser.capture(viewer, size, timeout=90)
    state = reply.viewer_state  # as the client in the browser holds it
    assert [layer.name for layer in state.layers] == ["image", "labels", "classes", "instances"]
    vs = nj.datasets.snemi3d(prepared["snemi3d"]).voxel_size
    assert [float(s) for s in state.dimensions.scales] == pytest.approx([v * 1e-9 for v in vs[::-1]])
    shot = _pixels(reply.screenshot.image)
    assert shot.shape[:2] == (size[1], size[0])

    # the empty viewer: same space, one layer of zeros (a viewer without layers sends no screenshot)
    shape = nj.datasets.snemi3d(prepared["snemi3d"]).image.shape
    empty = server.build_viewer([layers.Layer("image", np.zeros(shape, np.uint8), "image", vs)], layout="xy")
    with browser.HeadlessBrowser(empty.get_viewer_url(), size):
        blank = _pixels(browser.capture(empty, size, timeout=90).screenshot.image)
    differs = np.abs(shot - blank).max(-1) > 30
    assert differs.mean() > 0.3, differs.mean()  # the volume fills most of the panel
    assert shot.reshape(-1, 3).std(0).max() > 20  # and is not one flat colour


@needs_browser
def test_cli_screenshot_of_a_mitoem2_volume(prepared, tmp_path, capsys):
    out = tmp_path / "beta.png"
    assert main(["view", f"mitoem2={prepared['mitoem2']}", "--volume", "Beta/beta_000", "--layout", "xy",
                 "--screenshot", str(out), "--size", "400", "300"]) == 0
    assert "wrote" in capsys.readouterr().out
    img = _pixels(out.read_bytes())
    assert img.shape == (300, 400, 3) and img.reshape(-1, 3).std(0).max() > 20


def test_view_of_a_loader_batch_takes_each_samples_voxel_size(prepared):
    src = nj.datasets.sources_from_specs({"m": ("mitoem2", str(prepared["mitoem2"]), 1.0)})
    with nj.pipeline.Loader(src, (8, 64, 64), 4, seed=3, output="numpy", augment=None) as loader:
        batch = next(iter(loader))
    for i in range(4):
        pair = loader.datasets[0].pairs[int(batch["volume"][i])]
        viewer = nj.view(batch, sample=i, loader=loader)
        assert [layer.name for layer in viewer.state.layers] == ["image", "semantic", "instance", "mask"]
        vz, vy, vx = pair.image.voxel_size
        assert [float(s) for s in viewer.state.dimensions.scales] == pytest.approx([vx * 1e-9, vy * 1e-9, vz * 1e-9])
