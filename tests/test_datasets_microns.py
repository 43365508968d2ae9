"""The MICrONS reader: alignment by physical voxel size (4 nm EM vs 8 nm segmentation), absolute
voxel offsets, XYZ -> ZYX, versions, the downsample path, the adjacent test crop, prepare, and
reads bounded in all three axes (blocks, a read limit; a 200000^2 layer without chunks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorstore as ts

import neurons_jax as nj
from neurons_jax import sample
from neurons_jax.volumes import PRECOMPUTED

D = nj.datasets
OX, OY, OZ = sample.MICRONS_OFFSET


def _layer(path, scale_index=0):
    """A precomputed scale as an array indexed by absolute (x, y, z) voxels."""
    s = ts.open({"driver": PRECOMPUTED, "kvstore": {"driver": "file", "path": str(path) + "/"},
                 "scale_index": scale_index}).result()
    return s[..., 0]


def _membrane_score(image, label):
    """Mean EM intensity on the label's in-plane boundaries, for image shifts of -2..2 px."""
    b = sample.boundaries(label)
    img = image.astype(np.float32)
    scores = {}
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            shifted = np.roll(img, (dy, dx), axis=(1, 2))[:, 3:-3, 3:-3]
            scores[dy, dx] = float(shifted[b[:, 3:-3, 3:-3]].mean())
    return scores


def _assert_aligned(image, label):
    scores = _membrane_score(image, label)
    best = min(scores, key=scores.get)
    assert best == (0, 0), scores
    interior = float(image[~sample.boundaries(label)].mean())
    assert scores[0, 0] < interior - 40, (scores[0, 0], interior)


def test_default_crop_is_aligned_and_absolute(workspace):
    root = workspace["microns"]
    tr, va, te = (D.microns(root, split=s) for s in ("train", "valid", "test"))
    assert tr.voxel_size == (40.0, 8.0, 8.0) and tr.label.dtype == np.uint64
    assert tr.image.shape == (32, 144, 144) and va.image.shape == (8, 144, 144)
    assert te.image.shape == (40, 144, 144)
    seg = _layer(root / "seg_m1300")
    full = np.asarray(seg[OX:OX + 144, OY:OY + 144, OZ:OZ + 40].read().result()).T  # XYZ -> ZYX
    np.testing.assert_array_equal(np.concatenate([tr.label.read(), va.label.read()]), full)
    adjacent = np.asarray(seg[OX + 144:OX + 288, OY:OY + 144, OZ:OZ + 40].read().result()).T
    np.testing.assert_array_equal(te.label.read(), adjacent)
    assert full.min() > 2**59  # MICrONS-like uint64 ids survive
    for ds in (tr, va, te):
        _assert_aligned(ds.image.read(), ds.label.read())


def test_explicit_crop_matches_the_layers_and_the_4nm_em(workspace):
    root = workspace["microns"]
    origin, size = (OX + 13, OY + 29, OZ + 5), (33, 47, 11)  # x, y, z; odd on purpose
    ds = D.microns(root, origin=origin, size=size, split="train", valid_fraction=0)
    assert ds.image.shape == ds.label.shape == (11, 47, 33)
    x, y, z = origin
    seg = np.asarray(_layer(root / "seg_m1300")[x:x + 33, y:y + 47, z:z + 11].read().result()).T
    np.testing.assert_array_equal(ds.label.read(), seg)
    # the EM it returns is the 8 nm scale: the mean of the 4 nm pixels at twice the coordinates
    em4 = np.asarray(_layer(root / "em", 0)[2 * x:2 * x + 66, 2 * y:2 * y + 94, z:z + 11].read().result()).T
    mean = em4.reshape(11, 47, 2, 33, 2).astype(np.float32).mean(axis=(2, 4))
    err = np.abs(ds.image.read().astype(np.float32) - mean)
    assert err.mean() < 3 and np.percentile(err, 99) < 12, (err.mean(), err.max())  # jpeg, both scales
    naive = em4[:, :47, :33]  # what aligning by mip index would return: half the region
    assert np.abs(naive.astype(np.float32) - mean).mean() > 20


def test_downsample_driver_when_em_lacks_the_segmentation_scale(workspace, tmp_path):
    root = workspace["microns"]
    src = _layer(root / "em", 0)
    lo = [int(v) for v in src.domain.inclusive_min]
    arr = np.asarray(src.read().result())
    spec = {
        "driver": PRECOMPUTED, "kvstore": {"driver": "file", "path": str(tmp_path / "em") + "/"},
        "multiscale_metadata": {"data_type": "uint8", "num_channels": 1, "type": "image"},
        "scale_metadata": {"resolution": [4, 4, 40], "size": list(arr.shape), "voxel_offset": lo,
                           "encoding": "raw", "chunk_size": [64, 64, 8]},
    }
    ts.open(spec, create=True).result().write(arr[..., None]).result()
    (tmp_path / "seg_m1300").symlink_to(root / "seg_m1300")
    ds = D.microns(tmp_path, split="valid")
    assert "downsampled (2, 2, 1)" in ds.image.name
    x0, y0, z0 = OX, OY, OZ + 32
    block = arr[2 * x0 - lo[0]:2 * (x0 + 144) - lo[0], 2 * y0 - lo[1]:2 * (y0 + 144) - lo[1],
                z0 - lo[2]:z0 + 8 - lo[2]].T
    mean = block.reshape(8, 144, 2, 144, 2).astype(np.float32).mean(axis=(2, 4))
    whole = ds.image.read()
    assert np.abs(whole.astype(np.float32) - mean).max() <= 1  # rounding only
    _assert_aligned(whole, ds.label.read())
    os.environ["NEURONS_JAX_MICRONS_BLOCK_VOXELS"] = "5000"  # ~30 chunk-aligned blocks
    try:
        np.testing.assert_array_equal(ds.image.read(), whole)
    finally:
        del os.environ["NEURONS_JAX_MICRONS_BLOCK_VOXELS"]


def test_versions_and_prepare(workspace, prepared):
    root = workspace["microns"]
    new, old = D.microns(root, seg_version=1300), D.microns(root, seg_version="v343")
    a, b = new.label.read(), old.label.read()
    assert a.shape == b.shape and (a != b).any()
    assert len(np.unique(b)) < len(np.unique(a))  # v343: some segments still merged
    np.testing.assert_array_equal(new.image.read(), old.image.read())
    for split in ("train", "valid", "test"):
        p, n = D.microns(prepared["microns"], split=split), D.microns(root, split=split)
        np.testing.assert_array_equal(p.label.read(), n.label.read())
        np.testing.assert_array_equal(p.image.read(), n.image.read())
        assert p.voxel_size == n.voxel_size
    with pytest.raises(ValueError, match="prepared with seg_version=1300"):
        D.microns(prepared["microns"], seg_version=343)
    with pytest.raises(ValueError, match=r"unknown seg_version 500; expected one of \[117, 343, 943, 1300\]"):
        D.microns(root, seg_version=500)
    with pytest.raises(FileNotFoundError, match="seg_m943/info"):
        D.microns(root, seg_version=943)


def test_crop_errors(workspace):
    root = workspace["microns"]
    with pytest.raises(ValueError, match="outside the segmentation bounds"):
        D.microns(root, origin=(OX - 1, OY, OZ), size=(8, 8, 8))
    with pytest.raises(ValueError, match="test crop .* outside"):
        D.microns(root, origin=(OX + 200, OY, OZ), size=(64, 64, 8), split="test")
    with pytest.raises(ValueError, match="size must be positive.*empty"):
        D.microns(root, size=(0, 8, 8))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.microns(root / "nope")


def test_mirror_url_over_http(workspace):
    """A mirror (here a loopback HTTP server) with the public sub-paths streams the same crop."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(workspace["microns"]))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as srv:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{srv.server_address[1]}/"
            remote, local = D.microns(url, split="valid"), D.microns(workspace["microns"], split="valid")
            assert remote.image.name.startswith(url + "em/")
            np.testing.assert_array_equal(remote.label.read(), local.label.read())
            np.testing.assert_array_equal(remote.image.read(), local.image.read())
        finally:
            srv.shutdown()


def test_public_layers_table():
    import importlib

    mod = importlib.import_module("neurons_jax.datasets.microns")
    em, seg, public = mod.layers(None, 1300)
    assert public and em.endswith("minnie65/em/") and seg.endswith("minnie65/seg_m1300/")
    assert mod.layers("public", 117)[1] == "https://bossdb-open-data.s3.amazonaws.com/iarpa_microns/minnie/minnie65/seg/"
    assert mod.layers("gs://bucket/minnie65", 343)[1] == "gs://bucket/minnie65/seg_m343/"
    assert mod.DEFAULT_ORIGIN == (140000, 100000, 20000) and mod.DEFAULT_SIZE == (128, 128, 128)


# ----------------------------------------------------------------------------- bounded reads
def test_blocks_tile_the_box_within_the_budget():
    mod = __import__("neurons_jax.datasets.microns", fromlist=["blocks"])
    box = (slice(3, 40), slice(5, 300), slice(0, 517))
    for budget, chunk, origin in ((10**9, None, None), (20000, None, None), (20000, (8, 64, 64), (1, -3, 0)),
                                  (1, (8, 64, 64), (0, 0, 0))):
        seen = np.zeros((40, 300, 517), np.uint8)
        for b in mod.blocks(box, budget, chunk, origin):
            seen[b] += 1
            n = [s.stop - s.start for s in b]
            assert np.prod(n) <= max(budget, np.prod(chunk or (1,))), (budget, n)
            if chunk:  # cut on the chunk grid only
                for s, c, o, full in zip(b, chunk, origin, box):
                    assert s.start == full.start or (s.start - o) % c == 0
        assert (seen[box] == 1).all() and seen.sum() == np.prod([s.stop - s.start for s in box])
    assert mod.block_shape((64, 3000, 3000), 1 << 20, (16, 512, 512)) == (16, 512, 512)
    assert mod.block_shape((64, 3000, 3000), 1 << 24, (16, 512, 512)) == (64, 512, 512)
    assert mod.block_shape((64, 3000, 3000), 1 << 22, (16, 512, 512)) == (16, 512, 512)


def test_reads_in_blocks_equal_one_read_and_a_read_limit_applies(workspace, monkeypatch):
    root = workspace["microns"]
    ds = D.microns(root, split="train", origin=(OX + 3, OY + 5, OZ + 1), size=(101, 77, 19), valid_fraction=0)
    image, label = ds.image.read(), ds.label.read()
    monkeypatch.setenv("NEURONS_JAX_MICRONS_BLOCK_VOXELS", "4096")
    np.testing.assert_array_equal(ds.image.read(), image)
    np.testing.assert_array_equal(ds.label.read(), label)
    monkeypatch.setenv("NEURONS_JAX_MICRONS_MAX_READ_BYTES", str(8 * 77 * 101 * 8))  # 8 sections
    with pytest.raises(ValueError, match=r"seg_m1300.*: a read of 19 x 77 x 101 voxels \(z, y, x\) needs "
                                         r"1\.1 MiB, more than the read limit 486\.1 KiB \(NEURONS_JAX_MICRONS_MAX"):
        ds.label.read()
    np.testing.assert_array_equal(ds.label.read((slice(0, 8), slice(None), slice(None))), label[:8])
    monkeypatch.setenv("NEURONS_JAX_MICRONS_BLOCK_VOXELS", "many")
    with pytest.raises(ValueError, match="NEURONS_JAX_MICRONS_BLOCK_VOXELS: expected a positive integer; got 'many'"):
        ds.image.read()


def _huge_layers(root):
    """EM (4 nm, 400000^2 x 64) and segmentation (8 nm, 200000^2 x 64) infos, no chunk files."""
    for name, typ, dtype, res, n, chunk in (("em", "image", "uint8", [4, 4, 40], 400000, [1024, 1024, 16]),
                                            ("seg_m1300", "segmentation", "uint64", [8, 8, 40], 200000, [512, 512, 16])):
        (root / name).mkdir(parents=True)
        (root / name / "info").write_text(json.dumps({
            "@type": "neuroglancer_multiscale_volume", "type": typ, "data_type": dtype, "num_channels": 1,
            "scales": [{"key": "s0", "resolution": res, "size": [n, n, 64], "voxel_offset": [0, 0, 0],
                        "chunk_sizes": [chunk], "encoding": "raw"}]}))


_HUGE = """
import json, resource, sys, time
import numpy as np, neurons_jax as nj
from neurons_jax.cli import main
root, out = sys.argv[1], sys.argv[2]
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
ds = nj.datasets.microns(root, "train")   # the default crop of a local root: 100000 x 200000 x 51
base, t0, res = rss(), time.monotonic(), {"shape": list(ds.label.shape)}
try:
    ds.label.read()
except ValueError as e:
    res["refused"], res["refused_s"] = str(e), time.monotonic() - t0
res["patch_sum"] = int(ds.image.read((slice(0, 8), slice(1000, 1512), slice(5000, 5512))).sum())
crop = nj.datasets.microns(root, "train", origin=(0, 0, 0), size=(2048, 2048, 8), valid_fraction=0)
res["crop_sum"] = int(crop.label.read().sum())   # 8 x 2048 x 2048 uint64: 256 MiB, the limit
res["rc"] = main(["prepare", "microns", root, out, "--allow-missing", "--origin", "0", "0", "0",
                 "--size", "3000", "3000", "8"])
res["grew"] = rss() - base
print(json.dumps(res))
"""


def test_huge_layer_without_chunks_stays_within_the_budget(tmp_path):
    """A 200000^2 segmentation (its EM 400000^2, through the downsample driver), no chunk files:
    a whole-crop read is refused at once, naming the size; a 256 MiB read and a prepare of a
    3000^2 crop succeed; memory never grows past the read limit (plus TensorStore's cache)."""
    _huge_layers(tmp_path / "layers")
    env = {**os.environ, "NEURONS_JAX_ALLOW_MISSING": "1", "NEURONS_JAX_CACHE_BYTES": str(32 << 20),
           "NEURONS_JAX_MICRONS_MAX_READ_BYTES": str(256 << 20), "NEURONS_JAX_MICRONS_BLOCK_VOXELS": str(1 << 20)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_HUGE), str(tmp_path / "layers"), str(tmp_path / "p")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["shape"] == [51, 200000, 100000]
    assert "a read of 51 x 200000 x 100000 voxels (z, y, x) needs 7.4 TiB, more than the read limit 256.0 MiB" \
        in res["refused"] and res["refused_s"] < 1
    assert res["patch_sum"] == 0 and res["crop_sum"] == 0 and res["rc"] == 0
    assert res["grew"] < (256 << 20) + (160 << 20), res["grew"] / 2**20  # the 256 MiB array, little else
    ds = D.microns(tmp_path / "p", split="train", valid_fraction=0)
    assert ds.label.shape == ds.image.shape == (8, 3000, 3000)


def test_huge_layer_default_crop_fails_fast_with_one_line(tmp_path):
    """Without allowing missing chunks, preparing the default (petavoxel) crop fails at the first
    box, in one line naming the layer; nothing is left behind."""
    _huge_layers(tmp_path / "layers")
    env = {k: v for k, v in os.environ.items() if k != "NEURONS_JAX_ALLOW_MISSING"}
    proc = subprocess.run([sys.executable, "-m", "neurons_jax.cli", "prepare", "microns", str(tmp_path / "layers"),
                           str(tmp_path / "p")], env=env, capture_output=True, text=True, timeout=60)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("neurons-jax")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert str(tmp_path / "layers") in lines[0]
    assert not (tmp_path / "p").exists()


def test_layer_whose_chunks_exceed_the_read_limit_is_refused_at_open(tmp_path, monkeypatch):
    _huge_layers(tmp_path)
    info = json.loads((tmp_path / "seg_m1300" / "info").read_text())
    info["scales"][0]["chunk_sizes"] = [[200000, 200000, 1]]  # one chunk per section: 298 GiB
    (tmp_path / "seg_m1300" / "info").write_text(json.dumps(info))
    monkeypatch.setenv("NEURONS_JAX_MICRONS_MAX_READ_BYTES", str(1 << 30))
    with pytest.raises(ValueError, match=r"seg_m1300.*: its chunks of 1 x 200000 x 200000 voxels \(z, y, x\) "
                                         r"need 298\.0 GiB each to decode, more than the read limit 1\.0 GiB"):
        D.microns(tmp_path, split="train")
