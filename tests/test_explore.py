"""``nj.explore`` / ``neurons-jax explore``: figures equal NumPy, cc3d and fastremap on the arrays.

References are computed on whole arrays read at once (NumPy percentiles, bincounts of
``union_semantic``, ``np.unique`` ids, cc3d components, a NumPy 6-neighbour comparison), the
streamed run is forced into many slabs, and the report's files are checked.
"""

from __future__ import annotations

import json
import re
import tracemalloc

import cc3d
import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax.cli import main
from neurons_jax.exploration.histogram import StreamingHistogram
from neurons_jax.exploration.report import referenced_files
from neurons_jax.exploration.stats import PERCENTILES

KINDS = ("snemi3d", "cremi3d", "microns", "mitoem2")


def boundary_reference(lab: np.ndarray, labelled: np.ndarray) -> int:
    """Labelled voxels with a 6-neighbour of another id (NumPy, whole array)."""
    other = np.zeros(lab.shape, bool)
    for ax in range(3):
        d = np.diff(lab.astype(np.int64), axis=ax) != 0
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        other[tuple(lo)] |= d
        other[tuple(hi)] |= d
    return int((other & labelled).sum())


def reference(image: np.ndarray, label: np.ndarray, kind: str) -> dict:
    rule = nj.rules.get_rule(kind)
    sem = nj.ops.union_semantic(label, kind)
    counts = np.bincount(sem.ravel(), minlength=5)
    if rule.instances == "ids":
        ids, sizes = np.unique(label[sem > 0], return_counts=True)
        n = len(ids)
    else:
        cc = cc3d.connected_components((label == rule.interior).astype(np.uint8), connectivity=6)
        sizes = np.bincount(cc.ravel())[1:]
        n = int(cc.max())
    return {"shares": counts / counts.sum(), "n": n, "sizes": np.sort(sizes),
            "percentiles": np.percentile(image, PERCENTILES),
            "boundary": boundary_reference(label, sem > 0) / max(1, int((sem > 0).sum()))}


@pytest.fixture(scope="module")
def explored(workspace, tmp_path_factory):
    out = tmp_path_factory.mktemp("explore")
    specs = [f"{k}={workspace[k]}" for k in KINDS]
    # a small slab budget: every volume is read in many slabs
    return nj.explore(specs, out, max_bytes=1 << 20, quiet=True), out


def test_stats_equal_numpy_on_the_arrays(explored, workspace):
    stats, _ = explored
    seen = 0
    for kind in KINDS:
        d = stats["datasets"][kind]
        assert d["kind"] == kind
        for split, sp in d["splits"].items():
            ds = nj.datasets.open_dataset(kind, workspace[kind], split)
            assert [v["name"] for v in sp["volumes"]] == [p.name for p in ds.pairs]
            for v, pair in zip(sp["volumes"], ds.pairs):
                image, label = pair.image.read(), pair.label.read()
                ref = reference(image, label, kind)
                where = f"{kind}/{split}/{pair.name}"
                assert v["chunks"] > 1, where
                assert v["shape"] == list(image.shape) and v["voxel_size_nm"] == list(pair.image.voxel_size)
                assert v["extent_um"] == pytest.approx([n * s / 1000 for n, s in zip(image.shape, pair.image.voxel_size)])
                shares = [v["classes"][c]["share"] for c in nj.UNION_CLASSES]
                assert shares == pytest.approx(ref["shares"], abs=1e-12), where
                assert v["instances"]["count"] == ref["n"], where
                by_class = v["instances"]["by_class"]
                total = sum(c["voxels"]["total"] for c in by_class.values() if "voxels" in c)
                assert total == int(ref["sizes"].sum()), where
                if len(by_class) == 1 and ref["n"]:  # one instance class: its size figures
                    vox = next(iter(by_class.values()))["voxels"]
                    assert (vox["min"], vox["median"], vox["max"]) == (
                        ref["sizes"].min(), np.median(ref["sizes"]), ref["sizes"].max()), where
                p = v["intensity"]["percentiles"]
                assert v["intensity"]["exact"] and [p[f"{q:g}"] for q in PERCENTILES] == ref["percentiles"].tolist(), where
                assert v["boundary"]["fraction"] == pytest.approx(ref["boundary"], abs=1e-12), where
                seen += 1
    assert seen >= 17


def test_mitoem2_one_row_per_cell_type(explored, workspace):
    stats, _ = explored
    for split, sp in stats["datasets"]["mitoem2"]["splits"].items():
        groups = {g["group"]: g for g in sp["groups"]}
        assert set(groups) == {"Beta", "Mossy"}, split
        for name, g in groups.items():
            members = [v for v in sp["volumes"] if v["name"].startswith(name + "/")]
            assert g["volumes"] == [v["name"] for v in members]
            assert g["instances"]["count"] == sum(v["instances"]["count"] for v in members)
            assert g["voxels"] == sum(v["voxels"] for v in members)
    beta = next(g for g in stats["datasets"]["mitoem2"]["splits"]["train"]["groups"] if g["group"] == "Beta")
    assert beta["voxel_size_nm"] == [16.0, 16.0, 16.0]


def test_report_references_only_files_that_exist(explored):
    stats, out = explored
    html = (out / "report.html").read_text()
    refs = referenced_files(html)
    assert len(refs) == 2 * sum(len(sp["volumes"]) for d in stats["datasets"].values() for sp in d["splits"].values())
    for r in refs:
        assert not re.match(r"^[a-z]+:", r), r  # relative paths only: no http(s), no file: URLs
        assert (out / r).is_file(), r
    assert "<script" not in html and "@import" not in html and "url(" not in html
    assert json.loads((out / "stats.json").read_text()) == json.loads(json.dumps(stats))
    from PIL import Image

    for r in refs:
        Image.open(out / r).load()


def test_prepared_root_gives_the_native_figures(workspace, prepared):
    native = nj.explore(f"cremi3d={workspace['cremi3d']}", splits=("train",), quiet=True)
    prep = nj.explore(prepared["cremi3d"], splits=("train",), quiet=True)  # the kind from metadata.json
    a = native["datasets"]["cremi3d"]["splits"]["train"]["volumes"]
    b = prep["datasets"]["cremi3d"]["splits"]["train"]["volumes"]
    for x, y in zip(a, b):
        for key in ("shape", "classes", "instances", "boundary", "intensity"):
            assert x[key] == y[key], key


def test_streamed_with_bounded_memory():
    """A volume 40x larger than the slab budget: the traced peak (NumPy buffers) stays below the
    volume's own bytes, the figures equal a one-slab run, and components spanning many slabs are
    joined (compared with cc3d on the whole array)."""
    rng = np.random.default_rng(0)
    shape = (192, 192, 192)  # 7 M voxels: 14 MB of uint16 image, 7 MB of uint8 labels
    blobs = np.zeros(shape, np.float32)
    idx = rng.integers(0, [shape[0], shape[1], shape[2]], size=(120, 3))
    blobs[tuple(idx.T)] = 1
    from scipy import ndimage

    blobs = ndimage.gaussian_filter(blobs, (6, 3, 3)) > 0.0003  # ~50 blobs, each across ~30 z planes
    label = blobs.astype(np.uint8)
    label[ndimage.binary_dilation(blobs) & ~ndimage.binary_erosion(blobs, iterations=1) & blobs] = 2
    image = rng.integers(0, 65535, shape, dtype=np.uint16)
    ds = nj.datasets.generic(image, "train", label=label, voxel_size=(30, 8, 8), rule="mitoem2", valid_fraction=0)
    budget = 1 << 18  # 256 KiB of slab working memory: one plane a slab, 192 slabs
    nj.explore(nj.datasets.generic(image[:4], "train", label=label[:4], voxel_size=(30, 8, 8), rule="mitoem2",
                                   valid_fraction=0), quiet=True)  # imports and caches before tracing
    tracemalloc.start()
    try:
        streamed = nj.explore(ds, max_bytes=budget, quiet=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole = nj.explore(ds, max_bytes=1 << 30, quiet=True)
    v = streamed["datasets"]["mitoem2"]["splits"]["train"]["volumes"][0]
    w = whole["datasets"]["mitoem2"]["splits"]["train"]["volumes"][0]
    assert v["chunks"] >= 40 and w["chunks"] == 1
    for key in ("classes", "instances", "boundary", "intensity"):
        assert v[key] == w[key], key
    ref = reference(image, label, "mitoem2")
    assert v["instances"]["count"] == ref["n"] > 20
    sizes_total = v["instances"]["by_class"]["mitochondria"]["voxels"]["total"]
    assert sizes_total == int(ref["sizes"].sum())
    assert v["instances"]["by_class"]["mitochondria"]["voxels"]["max"] == int(ref["sizes"].max())
    # slab buffers + the fixed tables (a 65536-bin uint16 histogram, component sizes): ~4 MB here,
    # where reading the pair at once would take its 21 MB before any work
    assert peak < (6 << 20) < (image.nbytes + label.nbytes) // 3, (peak, image.nbytes + label.nbytes)


def test_real_fib25_525_instances_and_background(load_shared):
    d = load_shared("fib25_sample2.npz")
    image, gt = d["image"], d["groundtruth"]
    ds = nj.datasets.generic(image, "train", label=gt, voxel_size=(10, 10, 10), valid_fraction=0)
    stats = nj.explore(ds, max_bytes=64 << 20, quiet=True)
    v = stats["datasets"]["generic"]["splits"]["train"]["volumes"][0]
    assert v["shape"] == [250, 250, 250] and v["chunks"] > 1
    assert v["instances"]["count"] == 525  # the data README: 525 bodies + 0
    bg = int((gt == 0).sum())
    assert v["classes"]["background"]["voxels"] == bg > 0
    assert v["classes"]["neuron"]["voxels"] == gt.size - bg
    ids, sizes = np.unique(gt[gt > 0], return_counts=True)
    neuron = v["instances"]["by_class"]["neuron"]
    assert neuron["voxels"]["max"] == sizes.max() and neuron["voxels"]["median"] == np.median(sizes)
    assert neuron["um3"]["max"] == pytest.approx(sizes.max() * 1e-6)
    assert [v["intensity"]["percentiles"][f"{q:g}"] for q in PERCENTILES] == np.percentile(image, PERCENTILES).tolist()


def test_float_images_are_approximated_within_the_bin_width():
    rng = np.random.default_rng(1)
    image = rng.normal(0.3, 0.1, (12, 64, 64)).astype(np.float32)
    image[0, 0, :3] = [np.nan, np.inf, -np.inf]
    label = np.zeros(image.shape, np.uint32)
    ds = nj.datasets.generic(image, "train", label=label, voxel_size=(40, 4, 4), valid_fraction=0)
    it = nj.explore(ds, max_bytes=1 << 16, quiet=True)["datasets"]["generic"]["splits"]["train"]["volumes"][0]["intensity"]
    finite = image[np.isfinite(image)]
    assert it["non_finite"] == 3 and not it["exact"] and 0 < it["abs_error"] < 1e-4
    ref = np.percentile(finite, PERCENTILES)
    got = np.array([it["percentiles"][f"{q:g}"] for q in PERCENTILES])
    assert np.all(np.abs(got - ref) <= it["abs_error"])
    assert it["min"] == float(finite.min()) and it["max"] == float(finite.max())


def test_histogram_exact_integers_merge_and_coarsen():
    rng = np.random.default_rng(2)
    a = rng.integers(-3000, 3000, 50_000).astype(np.int16)
    h = StreamingHistogram(np.int16)
    for part in np.array_split(a, 7):
        h.add(part)
    q = [0, 0.1, 10, 33.3, 50, 99.9, 100]
    assert h.exact and h.percentiles(q).tolist() == np.percentile(a, q).tolist()
    wide = rng.integers(-2**30, 2**30, 20_000).astype(np.int32)
    c = StreamingHistogram(np.int32, max_bins=256)
    c.add(wide[:10_000])
    other = StreamingHistogram(np.int32, max_bins=256)
    other.add(wide[10_000:])
    c.merge(other)
    assert not c.exact and c.keys.size <= 256 and c.count == wide.size
    assert np.all(np.abs(c.percentiles(q) - np.percentile(wide, q)) <= c.abs_error)


def test_cli_explore_writes_report_and_fails_in_one_line(prepared, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["explore", f"snemi3d={prepared['snemi3d']}", str(prepared["mitoem2"]), "-o", str(out), "-q",
                 "--splits", "valid", "--max-memory", "1M", "--sections", "2"]) == 0
    said = capsys.readouterr().out
    assert "report.html" in said and "snemi3d, mitoem2" in said
    stats = json.loads((out / "stats.json").read_text())
    assert list(stats["datasets"]) == ["snemi3d", "mitoem2"] and stats["settings"]["max_bytes"] == 1 << 20
    assert list(stats["datasets"]["snemi3d"]["splits"]) == ["valid"]
    assert main(["explore", f"snemi3d={tmp_path / 'nowhere'}", "-o", str(tmp_path / "x"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("neurons-jax explore: error:") and "nowhere" in err[0]
    assert main(["explore", str(prepared["snemi3d"]), "-o", str(tmp_path / "y"), "--max-memory", "lots"]) == 2
    assert "--max-memory" in capsys.readouterr().err
