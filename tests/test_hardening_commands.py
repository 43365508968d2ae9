"""Issue 13 (nothing lost, nothing silent, nothing unbounded) for the Loader, preview, info, train.

Each finding: the exit status, the first line of the message, and that no user file changed.
NaN/inf images stop the Loader where the patch is read; ``info`` reads a bounded sample and
exits 2 when nothing is readable; ``preview`` refuses a picture past its budget before reading
data; ``ignore_classes`` takes one string; ``--pad`` on preview and train; ``--smoke`` keeps an
explicit ``--steps``; ``train`` without ``--dataset`` reuses one cached workspace; workers leave
no "Exception ignored" tracebacks or leaked shared memory; ``--dataset generic=...`` works on
the command line as in a config.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax import cli
from neurons_jax.commands._example import load_train_example
from neurons_jax.datasets.summary import sample_windows, sampled_unique_ids
from neurons_jax.pipeline import Loader
from neurons_jax.preview import check_picture_size, montage
from neurons_jax.sampling import NonFiniteImageError, first_nonfinite

ROOT = Path(__file__).resolve().parents[1]
NAN_X = slice(64, 128)  # every 4x32x32 patch's context (and every 8x64x64 one) crosses it


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def error_line(capsys) -> str:
    """The CLI's one error line on stderr (progress bars or notes may come before it)."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("neurons-jax ") and ": error: " in ln]
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def nan_snemi(workspace, tmp_path_factory) -> Path:
    """The sample SNEMI3D native root with a float32 image holding a NaN band (x 64:128)."""
    root = tmp_path_factory.mktemp("nan") / "snemi3d"
    shutil.copytree(workspace["snemi3d"], root)
    with h5py.File(root / "AC4_inputs.h5", "r+") as f:
        key = next(iter(f))
        img = f[key][...].astype(np.float32)
        img[:, :, NAN_X] = np.nan
        del f[key]
        f.create_dataset(key, data=img)
    return root


# ----------------------------------------------------------------------------- 1. NaN / inf
def test_first_nonfinite():
    a = np.ones((3, 4, 5), np.float32)
    assert first_nonfinite(a) is None and first_nonfinite(a.astype(np.uint8)) is None
    a[2, 1, 3], a[2, 3, 0] = np.inf, np.nan
    assert first_nonfinite(a) == (2, 1, 3)
    big = np.full((4,), np.finfo(np.float64).max)  # the sum overflows, every voxel is finite
    assert first_nonfinite(big) is None


def test_nan_band_in_hdf5_stops_the_loader(nan_snemi):
    before = digest(nan_snemi)
    for split, patch in (("train", (4, 32, 32)), ("valid", (4, 192, 192))):
        ds = nj.datasets.snemi3d(nan_snemi, split)
        with Loader({"s": (ds, 1.0)}, patch, 2, split=split, output="numpy") as loader:
            with pytest.raises(NonFiniteImageError) as e:
                next(iter(loader))
        first = str(e.value).splitlines()[0]
        assert first.startswith(f"dataset 's' volume AC4 ({nan_snemi}/AC4_inputs.h5:main): image voxel z,y,x=(")
        assert " is nan (source coordinates; in the region " in first and f"of the {split} volume" in first
        x = int(first.split("z,y,x=(")[1].split(")")[0].split(", ")[2])
        assert NAN_X.start <= x < NAN_X.stop
    assert digest(nan_snemi) == before


def test_inf_in_zarr3_stops_the_loader(tmp_path):
    img = np.random.default_rng(0).random((8, 48, 48)).astype(np.float32)
    img[5, 20, 10:40] = -np.inf  # in the valid half (z 4:8)
    nj.volumes.write_zarr3(tmp_path / "img.zarr3", img, (10, 10, 10))
    lab = np.ones(img.shape, np.uint32)
    ds = nj.datasets.generic(str(tmp_path / "img.zarr3"), "valid", label=lab, voxel_size=(10, 10, 10),
                             valid_fraction=0.5)
    with Loader({"z": (ds, 1.0)}, (4, 48, 48), 1, split="valid", output="numpy") as loader:
        with pytest.raises(NonFiniteImageError, match=r"^dataset 'z' volume volume \(.*img\.zarr3.*\): "
                                                      r"image voxel z,y,x=\(5, 20, 10\) is -inf \(source coordinates; "
                                                      r"in the region \(4, 48, 48\) read at z,y,x=\(0, 0, 0\) of the valid volume"):
            list(loader)


def test_nan_band_through_preview_and_train(nan_snemi, tmp_path, capsys):
    before = digest(nan_snemi)
    png = tmp_path / "p.png"
    assert cli.main(["preview", "--dataset", f"snemi3d={nan_snemi}", "-o", str(png)]) == 2
    line = error_line(capsys)
    assert line.startswith("neurons-jax preview: error: dataset 'snemi3d' volume AC4 (")
    assert " is nan (source coordinates; in the region " in line and not png.exists()
    assert cli.main(["train", "--dataset", f"snemi3d={nan_snemi}", "--smoke"]) == 2
    line = error_line(capsys)
    assert line.startswith("neurons-jax train: error: dataset 'snemi3d' volume AC4 (") and " is nan " in line
    assert digest(nan_snemi) == before


# ----------------------------------------------------------------------------- 2. info
class CountingSource:
    """A lazy label source of any shape that records every read (nothing is allocated but reads)."""

    def __init__(self, shape):
        self.shape, self.dtype, self.reads = tuple(shape), np.dtype(np.uint32), []

    def read(self, slices):
        shape = tuple(s.stop - s.start for s in slices)
        self.reads.append(math.prod(shape))
        z, y, x = np.meshgrid(*(np.arange(s.start, s.stop) for s in slices), indexing="ij")
        return ((z // 7 + y // 500 + x // 500) % 50).astype(np.uint32)

    def describe(self):
        return f"counting{self.shape}"


def test_info_reads_are_bounded():
    src = CountingSource((300, 20_000, 30_000))  # 1.8e11 voxels: a section alone is 6e8
    vol = nj.Volume(src, (40, 8, 8))
    ids, share = sampled_unique_ids(vol, max_voxels=1 << 20)
    assert sum(src.reads) <= 1 << 20 and max(src.reads) <= 256 * 256
    assert share == sum(src.reads) / vol.size and len(ids) > 10
    # a small volume is read whole, in bounded slabs
    boxes = sample_windows((64, 512, 512), 1 << 24)
    assert sum(math.prod(b.stop - b.start for b in box) for box in boxes) == 64 * 512 * 512
    assert max(math.prod(b.stop - b.start for b in box) for box in boxes) <= 1 << 22


def test_info_says_it_sampled(prepared, capsys):
    assert cli.main(["info", str(prepared["snemi3d"]), "--max-voxels", "100000", "--splits", "train"]) == 0
    out = capsys.readouterr().out
    assert "background, neuron (" in out and "sampled 5.00% of the voxels" in out


@pytest.mark.parametrize("kind,make", [("snemi3d", None), ("mitoem2", "dir"), ("cremi3d", "junk")])
def test_info_exits_2_when_nothing_is_readable(tmp_path, capsys, kind, make):
    root = tmp_path / "root"
    if make:
        root.mkdir()
    if make == "junk":
        (root / "notes.txt").write_text("not a dataset")
    before = digest(tmp_path)
    assert cli.main(["info", str(root), "--kind", kind]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    line = captured.err.splitlines()[0]
    assert line.startswith(f"neurons-jax info: error: {root}: no readable {kind} split (train, valid")
    assert "test: " in line and line.endswith(")")
    assert digest(tmp_path) == before


# ----------------------------------------------------------------------------- 3. preview budget
def test_preview_refuses_a_huge_picture_before_reading(prepared, tmp_path, capsys):
    png = tmp_path / "p.png"
    assert cli.main(["preview", "--dataset", f"mitoem2={tmp_path / 'never_opened'}", "--scale", "1000",
                     "-o", str(png)]) == 2
    line = error_line(capsys)
    assert line.startswith("neurons-jax preview: error: --scale 1000 with patch 8x64x64 (--patch) and 4 "
                           "samples (--batch-size) makes a 192016 x 256100 pixel picture (137 GiB); "
                           "the limit is 256 MiB: use --scale 42 or less")
    assert not png.exists()
    assert cli.main(["preview", "--dataset", f"mitoem2={prepared['mitoem2']}", "--scale", "0", "-o", str(png)]) == 2
    assert error_line(capsys).startswith("neurons-jax preview: error: --scale must be a positive integer")
    assert check_picture_size(4, (8, 64, 64), 42) == (8080, 10852)  # 3 x 64 x 42 + 16, 4 x (64 x 42 + 20) + 20
    batch = {"image": np.zeros((1, 1, 8, 8, 1), np.float32), "semantic": np.zeros((1, 1, 8, 8), np.uint8),
             "instance": np.zeros((1, 1, 8, 8), np.uint32), "dataset": np.zeros(1, int),
             "position": np.zeros((1, 3), int)}
    with pytest.raises(ValueError, match="^--scale 100000 with patch 1x8x8"):
        montage(batch, ["a"], scale=100_000)


# ----------------------------------------------------------------------------- 4. ignore_classes
def test_ignore_classes_takes_one_string(prepared):
    sources = nj.datasets.sources_from_specs({"s": ("snemi3d", str(prepared["snemi3d"]), 1.0)})
    kw = dict(patch_shape=(4, 32, 32), batch_size=2, seed=0, augment=None, output="numpy")
    one = Loader(sources, ignore_classes="neuron", **kw)
    assert one.ignore_classes == ("neuron",)
    a, b = next(one), next(Loader(sources, ignore_classes=("neuron",), **kw))
    np.testing.assert_array_equal(a["semantic"], b["semantic"])
    assert not (a["semantic"] == nj.UNION_CLASSES.index("neuron")).any()
    with pytest.raises(ValueError, match=r"^ignore_classes: unknown class\(es\) \['neurons'\]"):
        Loader(sources, ignore_classes="neurons", **kw)
    with pytest.raises(TypeError, match="^ignore_classes: expected a class name or a sequence"):
        Loader(sources, ignore_classes=3, **kw)


# ----------------------------------------------------------------------------- 5. newcomer trips
def test_pad_on_preview_and_train(prepared, tmp_path, capsys):
    png = tmp_path / "big.png"
    args = ["--dataset", f"mitoem2={prepared['mitoem2']}", "--patch", "4", "192", "192"]
    assert cli.main(["preview", *args, "-o", str(png)]) == 2
    line = error_line(capsys)
    assert line.startswith("neurons-jax preview: error: dataset 'mitoem2' volume Beta/beta_000: shape "
                           "(40, 160, 160) is smaller than the context region")
    assert "(--pad: the padding is masked out)" in line and not png.exists()
    assert cli.main(["preview", *args, "--pad", "--scale", "1", "-o", str(png)]) == 0
    assert png.is_file()
    assert cli.main(["train", *args, "--smoke"]) == 2
    assert "--pad" in error_line(capsys)
    assert cli.main(["train", *args, "--smoke", "--steps", "1", "--batch-size", "1", "--pad"]) == 0


def test_smoke_keeps_explicit_sizes():
    ex = load_train_example()
    p = __import__("argparse").ArgumentParser()
    ex.add_arguments(p)
    smoke = ex.config_from_args(p.parse_args(["--smoke"]))
    assert (smoke.steps, smoke.patch_shape, smoke.batch_size, smoke.features) == (3, (4, 32, 32), 2, (4, 8))
    mixed = ex.config_from_args(p.parse_args(["--smoke", "--steps", "7", "--patch", "2", "16", "16"]))
    assert (mixed.steps, mixed.patch_shape, mixed.batch_size) == (7, (2, 16, 16), 2)
    plain = ex.config_from_args(p.parse_args([]))
    assert (plain.steps, plain.patch_shape, plain.batch_size) == (60, (8, 64, 64), 4)


def test_train_without_dataset_reuses_one_cached_workspace(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("NEURONS_JAX_CACHE_DIR", str(cache))
    temp_before = set(os.listdir(tempfile.gettempdir()))
    assert cli.main(["train", "--smoke", "--steps", "1"]) == 0
    assert "sample data: " in capsys.readouterr().err
    sizes = digest(cache)
    assert cli.main(["train", "--smoke", "--steps", "2"]) == 0
    out = capsys.readouterr()
    assert f"sample data: {cache / 'sample_workspace_seed0'} (reused;" in out.err
    assert out.out.splitlines()[-1].startswith("loss ") and out.out.count("step ") == 2  # --steps 2 kept
    assert digest(cache) == sizes  # nothing rewritten
    leaked = [n for n in set(os.listdir(tempfile.gettempdir())) - temp_before if n.startswith("neurons_jax_ws_")]
    assert not leaked


def test_generic_on_the_command_line_as_in_a_config(workspace, tmp_path, capsys):
    snemi = workspace["snemi3d"]
    gen = tmp_path / "ac4"
    assert cli.main(["prepare", "generic", f"{snemi / 'AC4_inputs.h5'}", str(gen), "--quiet",
                     "--label", f"{snemi / 'AC4_labels.h5'}", "--voxel-size", "30", "6", "6"]) == 0
    capsys.readouterr()
    (tmp_path / "c.json").write_text(json.dumps({"datasets": {"generic": ["generic", str(gen), 1.0]}}))
    assert cli.main(["preview", str(tmp_path / "c.json"), "-o", str(tmp_path / "a.png")]) == 0
    assert cli.main(["preview", "--dataset", f"generic={gen}:1", "-o", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert nj.datasets.parse_dataset_spec(f"generic={gen}:1") == ("generic", str(gen), 1.0)
    assert cli.main(["train", "--dataset", f"generic={gen}", "--smoke", "--steps", "1"]) == 0


WORKER_SCRIPT = """
import sys
import neurons_jax as nj

def main():
    specs = {"s": ("snemi3d", sys.argv[1], 1.0)}
    loader = nj.pipeline.Loader(nj.datasets.sources_from_specs(specs), (4, 32, 32), 2, worker_count=2,
                                output=sys.argv[2], augment=None)
    batches = [b for _, b in zip(range(4), loader)]  # held to the end, loader not closed: exit cleans up
    print("shapes", batches[-1]["image"].shape, type(batches[-1]["image"]).__name__)
    if len(sys.argv) > 3:
        bad = nj.datasets.sources_from_specs({"s": ("snemi3d", sys.argv[3], 1.0)})
        try:
            next(nj.pipeline.Loader(bad, (4, 32, 32), 2, worker_count=2, output="numpy"))
        except ValueError as e:
            print(type(e).__name__, str(e).splitlines()[0])

if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("output", ["numpy", "jax"])
def test_workers_exit_cleanly(prepared, nan_snemi, tmp_path, output):
    script = tmp_path / "w.py"
    script.write_text(WORKER_SCRIPT)
    extra = [str(nan_snemi)] if output == "numpy" else []
    r = subprocess.run([sys.executable, str(script), str(prepared["snemi3d"]), output, *extra], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "shapes (2, 4, 32, 32, 1)" in r.stdout
    assert "ndarray" in r.stdout if output == "numpy" else "ArrayImpl" in r.stdout
    assert "Exception ignored" not in r.stderr and "leaked shared_memory" not in r.stderr, r.stderr[-3000:]
    if extra:
        assert "NonFiniteImageError dataset 's' volume AC4 (" in r.stdout


def test_workers_without_main_guard_say_so(prepared, tmp_path):
    """Refused in the parent, before any worker starts (a worker dying while its parent writes
    the pipeline to it would deadlock the parent)."""
    script = tmp_path / "noguard.py"
    text = WORKER_SCRIPT.replace('if __name__ == "__main__":\n    main()', "main()")
    script.write_text(text)
    line = text.splitlines().index("main()") + 1
    r = subprocess.run([sys.executable, str(script), str(prepared["snemi3d"]), "numpy"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last == (f"RuntimeError: {script}:{line}: Loader(worker_count > 0) started from the top level of "
                    "the main script, outside `if __name__ == \"__main__\":`; put the code that builds and "
                    "iterates the Loader under `if __name__ == \"__main__\":` (the workers are spawned "
                    "processes, which re-import the script)")
    assert "Exception ignored" not in r.stderr


def test_main_guard_detection():
    import ast

    from neurons_jax.workers import _guarded

    src = ("import x\n"
           "main()\n"
           "if __name__ == '__main__':\n    main()\n"
           "try:\n    if '__main__' == __name__:\n        main()\nexcept KeyboardInterrupt:\n    pass\n"
           "with ctx():\n    main()\n")
    body = ast.parse(src).body
    assert [_guarded(body, n) for n in (2, 4, 7, 11)] == [False, True, True, False]
