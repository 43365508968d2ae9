"""The MICrONS reader: alignment by physical voxel size (4 nm EM vs 8 nm segmentation), absolute
voxel offsets, XYZ -> ZYX, versions, the downsample path, the adjacent test crop, prepare."""

from __future__ import annotations

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
    assert np.abs(ds.image.read().astype(np.float32) - mean).max() <= 1  # rounding only
    _assert_aligned(ds.image.read(), ds.label.read())


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
