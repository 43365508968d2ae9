"""The dataset-kind registry: a toy kind registered from this file alone goes through prepare,
``neurons-jax info``/``prepare``/``download``/``preview``, the sample workspace and the Loader;
built-in kinds in every CLI choice; ``reader(root, split, *, ...)`` signatures; dataset specs."""

from __future__ import annotations

import argparse
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import neurons_jax as nj
import neurons_jax.download as dl
from neurons_jax import cli
from neurons_jax.datasets import kit, registry
from neurons_jax.pipeline import Loader

D = nj.datasets
BUILTIN = ("snemi3d", "cremi3d", "microns", "mitoem2", "generic")
TOY = f"toy{uuid.uuid4().hex[:8]}"  # unique: nothing here leaks into other tests by name
VOXEL = (20.0, 5.0, 5.0)
SHAPES = {"train": (12, 48, 48), "valid": (6, 48, 48)}
PATCH = (4, 16, 16)
BACKGROUND_ID = 500  # outside every range of the toy rule: background


# ----------------------------------------------------------------------------- the toy kind
def toy_label(shape) -> np.ndarray:
    """12 x 12 px boxes: ids 1..16 (neurons), the diagonal 100.. (clefts), one box id 500."""
    _, ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx] // 12
    ids = 1 + y * (nx // 12) + x
    ids = np.where(y == x, 100 + y, ids)
    ids = np.where((y == 0) & (x == 3), BACKGROUND_ID, ids)
    ids[ids == 6] = 0  # one box unlabelled
    return np.broadcast_to(ids, shape).astype(np.uint16)


def toy_image(shape, seed) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def toy_native_entries(root, roles=("train", "valid", "test"), *, invert: bool = False) -> list:
    """``<role>_image.npy`` / ``<role>_label.npy`` per role, voxel size in ``toy.json``."""
    root = kit.check_root(root, TOY, "a folder with toy.json and <role>_image.npy / <role>_label.npy")
    vs = tuple(json.loads((root / "toy.json").read_text())["voxel_size"])
    out = []
    for role in roles:
        img_path, lab_path = root / f"{role}_image.npy", root / f"{role}_label.npy"
        if not img_path.is_file():
            raise FileNotFoundError(f"{img_path}: no {role} image")
        img = np.load(img_path)
        img = 255 - img if invert else img
        image = nj.Volume.from_array(img, vs, name=str(img_path))
        label = nj.Volume.from_array(np.load(lab_path), vs, name=str(lab_path))
        out.append(kit.Entry(kit.make_pair(role, image, label), role, "", [str(img_path), str(lab_path)]))
    return out


def toy_reader(root, split="train", *, invert: bool = False):
    kit.check_split(split)
    if kit.is_prepared(root):
        entries, _ = kit.prepared_entries(root, TOY, (split,))
    else:
        entries = toy_native_entries(root, (split,), invert=invert)
    return kit.make_dataset(TOY, root, split, entries, 0.0)


def toy_options(invert: bool = False) -> dict:
    return {"invert": bool(invert)}


def write_toy(root: Path, rng=None, splits=("train", "valid")) -> Path:
    """The toy's native files (also its sample-workspace writer: ``writer(root, rng)``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "toy.json").write_text(json.dumps({"voxel_size": VOXEL}))
    for i, split in enumerate(splits):
        np.save(root / f"{split}_image.npy", toy_image(SHAPES[split], i))
        np.save(root / f"{split}_label.npy", toy_label(SHAPES[split]))
    return root


def toy_download(output: Path, *, options, source: Path | None = None) -> list[Path]:
    """A downloader: copies the native files from ``source`` (``--from DIR``)."""
    if source is None:
        raise ValueError("--from: the toy downloader needs a source directory")
    output.mkdir(parents=True, exist_ok=True)
    options.say(f"copying {source}")
    return [Path(shutil.copy2(p, output / p.name)) for p in sorted(Path(source).iterdir())]


@pytest.fixture(scope="module")
def toy(workspace):  # the session workspace exists before the toy registers: it stays the built-ins'
    kind = D.register_kind(
        TOY,
        toy_reader,
        rule=[(1, 99, "neuron"), (100, 199, "cleft")],
        help="a toy kind: .npy volumes, neurons and clefts",
        root_help="a folder with toy.json and <role>_image.npy / <role>_label.npy",
        native_entries=toy_native_entries,
        options=toy_options,
        roles=("train", "valid", "test"),  # split by file; test is optional
        prepare_options=(D.option("--invert", dest="invert", action="store_const", const=True,
                                  help="invert the image"),),
        downloader=D.Downloader(toy_download, help="copy the toy files", http=False,
                                options=(D.option("--from", dest="source", type=Path, metavar="DIR",
                                                  help="where to copy from"),)),
        sample=lambda root, rng: write_toy(root, rng),
    )
    try:
        yield kind
    finally:
        D.unregister_kind(TOY)
    assert TOY not in D.kind_names() and TOY not in nj.rules.known_kinds()


def expected_semantic(label: np.ndarray) -> np.ndarray:
    sem = np.zeros(label.shape, np.uint8)
    sem[(label >= 1) & (label <= 99)] = nj.rules.class_index("neuron")
    sem[(label >= 100) & (label <= 199)] = nj.rules.class_index("cleft")
    return sem


def check_batch(batch: dict, datasets: list) -> None:
    """Union classes voxel by voxel; instances: one compact id per native foreground id."""
    for i, d in enumerate(batch["dataset"]):
        ds = datasets[d]
        z, y, x = batch["position"][i]
        box = (slice(z, z + PATCH[0]), slice(y, y + PATCH[1]), slice(x, x + PATCH[2]))
        pair = ds.pairs[batch["volume"][i]]
        label = pair.label.read(box)
        np.testing.assert_allclose(batch["image"][i, ..., 0], pair.image.read(box) / 255.0, atol=1e-6)
        sem, inst = batch["semantic"][i], batch["instance"][i]
        np.testing.assert_array_equal(sem, expected_semantic(label))
        assert np.all(inst[sem == 0] == 0) and np.all(inst[sem > 0] > 0)
        fg = sem > 0
        pairs = np.unique(np.stack([label[fg].astype(np.int64), inst[fg].astype(np.int64)]), axis=1)
        assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]  # a bijection
        np.testing.assert_array_equal(np.unique(inst[fg]), np.arange(1, pairs.shape[1] + 1))


# ----------------------------------------------------------------------------- the toy, end to end
def test_toy_kind_is_registered_everywhere(toy):
    assert D.kind_names()[: len(BUILTIN)] == BUILTIN and D.kind_names()[-1] == TOY
    assert D.get_kind(TOY) is toy and D.READER_FUNCTIONS[TOY] is toy_reader
    assert toy.rule == TOY and toy.label_rule.ranges == ((1, 99, 1), (100, 199, 2))
    assert nj.rules.get_rule(TOY).instances == "ids" and toy.main_role == "train"
    assert TOY in dl.DATASETS and TOY in nj.sample.KINDS
    assert TOY in cli_choices("prepare", "kind") and TOY in cli_choices("info", "kind")
    assert TOY in cli_choices("download", "dataset")
    assert D.parse_dataset_spec(f"{TOY}=somewhere:3") == (TOY, "somewhere", 3.0)


def test_toy_through_prepare_info_loader_preview(toy, tmp_path, capsys):
    native = write_toy(tmp_path / "native")
    out = D.prepare(TOY, native, tmp_path / "prepared", progress=False)
    assert "no test volumes" in capsys.readouterr().err  # the optional role is absent
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["reader"] == meta["kind"] == TOY and meta["reader_kwargs"] == {"invert": False}
    assert {v["name"]: v["role"] for v in meta["volumes"]} == {"train": "train", "valid": "valid"}
    assert meta["splits"] == {"train": [{"volume": "train", "z": [0, 12]}],
                              "valid": [{"volume": "valid", "z": [0, 6]}]}
    assert meta["label_rule"]["ranges"] == [[1, 99, 1], [100, 199, 2]]
    for split in ("train", "valid"):
        ds, nat = D.open_dataset(TOY, out, split), toy_reader(native, split)
        assert ds.kind == TOY and ds.voxel_size == VOXEL and ds.image.name.startswith("zarr3")
        np.testing.assert_array_equal(ds.label.read(), nat.label.read())
        np.testing.assert_array_equal(ds.image.read(), nat.image.read())

    assert cli.main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{TOY} at {out} (prepared)" in text and "20x5x5 nm" in text
    assert "background, neuron, cleft" in text and "test: unavailable" in text
    assert cli.main(["info", str(native), "--kind", TOY, "--splits", "valid"]) == 0
    assert "(native)" in (text := capsys.readouterr().out) and "valid" in text and "train " not in text

    # the command line's prepare, with the kind's own option (recorded in the metadata)
    assert cli.main(["prepare", TOY, str(native), str(tmp_path / "inverted"), "--invert", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "inverted")
    inv = json.loads((tmp_path / "inverted" / "metadata.json").read_text())
    assert inv["reader_kwargs"] == {"invert": True}
    np.testing.assert_array_equal(D.open_dataset(TOY, tmp_path / "inverted", "valid").image.read(),
                                  255 - np.load(native / "valid_image.npy"))

    # the Loader: a few batches, union classes and instances checked voxel by voxel
    sources = D.sources_from_specs({"toy": (TOY, str(out), 1.0)})
    datasets = [sources["toy"][0]]
    loader = Loader(sources, PATCH, batch_size=4, seed=0, augment=None, output="numpy", device="cpu")
    seen = set()
    try:
        for _ in range(3):
            batch = next(loader)
            assert batch["image"].shape == (4, *PATCH, 1) and batch["semantic"].dtype == np.uint8
            check_batch(batch, datasets)
            seen |= set(np.unique(batch["semantic"]).tolist())
    finally:
        loader.close()
    assert {1, 2} <= seen <= {0, 1, 2}
    valid = Loader(D.sources_from_specs({"toy": (TOY, str(out))}, "valid"), PATCH, batch_size=4,
                   split="valid", output="numpy", device="cpu")
    batches = list(valid)
    assert len(batches) == len(valid) > 0
    for b in batches:  # tiles of the whole volume: every class, each voxel checked
        check_batch({k: v[b["dataset"] >= 0] for k, v in b.items()}, [D.open_dataset(TOY, out, "valid")])
    assert set(np.unique(np.concatenate([b["semantic"] for b in batches])).tolist()) == {0, 1, 2}

    png = tmp_path / "preview.png"
    assert cli.main(["preview", "--dataset", f"{TOY}={out}:2", "--patch", *map(str, PATCH),
                     "--batch-size", "2", "--no-augment", "-o", str(png)]) == 0
    assert f"wrote {png}" in capsys.readouterr().out
    assert Image.open(png).size[0] > 0


def test_toy_download_and_sample_workspace(toy, workspace, tmp_path, capsys):
    src = write_toy(tmp_path / "remote")
    assert cli.main(["download", TOY, "-o", str(tmp_path / "got"), "--from", str(src)]) == 0
    io = capsys.readouterr()
    assert "copying" in io.err and f"next: neurons-jax prepare {TOY} {tmp_path / 'got'}" in io.err
    assert sorted(p.name for p in (tmp_path / "got").iterdir()) == sorted(p.name for p in src.iterdir())
    assert cli.main(["download", TOY, "-o", str(tmp_path / "x")]) == 2
    assert "--from: the toy downloader needs a source" in capsys.readouterr().err
    # a workspace written before the toy registered gains the toy folder, the rest untouched
    ws = tmp_path / "ws"
    shutil.copytree(Path(workspace["snemi3d"]).parent, ws, symlinks=True)
    roots = nj.sample.write_workspace(ws, seed=0)
    assert list(roots) == [*nj.sample.KINDS] and list(roots)[-1] == TOY
    assert toy_reader(roots[TOY], "valid").image.shape == SHAPES["valid"]
    assert nj.sample.write_workspace(ws, seed=0) == roots


# ----------------------------------------------------------------------------- command-line choices
def cli_choices(command: str, dest: str) -> list[str]:
    parser = cli.build_parser(command)
    for action in parser._actions:
        if action.dest == dest and action.choices is not None:
            return list(action.choices)
    raise AssertionError(f"{command}: no {dest} choices")


def test_builtin_kinds_in_every_cli_choice():
    assert cli_choices("prepare", "kind")[: len(BUILTIN)] == list(BUILTIN)
    assert cli_choices("info", "kind")[: len(BUILTIN)] == list(BUILTIN)
    assert cli_choices("download", "dataset")[:4] == ["snemi3d", "cremi3d", "microns", "mitoem2"]
    assert dl.DATASETS[:4] == ("snemi3d", "cremi3d", "microns", "mitoem2")
    assert nj.sample.KINDS[:4] == ("snemi3d", "cremi3d", "microns", "mitoem2")
    assert tuple(D.READER_FUNCTIONS)[: len(BUILTIN)] == BUILTIN
    from neurons_jax.datasets.prepare import READERS

    assert READERS[: len(BUILTIN)] == BUILTIN
    # help texts come from the records
    p = cli.build_parser("prepare")
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert all(helps[k] == D.get_kind(k).help and helps[k] for k in BUILTIN)
    mito = sub.choices["mitoem2"].format_help()
    assert "--subsets" in mito and "--mito" not in mito  # each kind only has its own options
    preview = cli.build_parser("preview").format_help()
    assert all(k in preview for k in BUILTIN)


def test_option_of_another_kind_is_refused(workspace, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["prepare", "snemi3d", str(workspace["snemi3d"]), str(tmp_path / "o"), "--mito"])
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- reader signatures
def test_readers_take_split_second(workspace):
    for kind in BUILTIN[:-1]:
        registry.check_reader(kind, D.get_kind(kind).reader)
    ds = D.mitoem2(workspace["mitoem2"], "valid")
    assert ds.split == "valid" and [p.name for p in ds.pairs] == ["Beta/beta_001", "Mossy/mossy_000"]
    assert D.microns(workspace["microns"], "test").pairs[0].name == "crop_test"
    assert [p.name for p in D.cremi3d(workspace["cremi3d"], "test").pairs] == ["C"]
    assert D.open_dataset("mitoem2", workspace["mitoem2"], "test", subsets=["Beta"]).pairs[0].name == "Beta/beta_002"
    img = np.zeros((10, 8, 8), np.uint8)
    assert D.generic(img, "valid", label=img, voxel_size=(1, 1, 1)).image.shape == (2, 8, 8)
    with pytest.raises(TypeError, match="label, voxel_size and rule are keyword-only"):
        D.generic(img, img)  # the old positional label
    with pytest.raises(TypeError, match="positional"):
        D.generic(img, img, (1, 1, 1))
    with pytest.raises(TypeError):
        D.mitoem2(workspace["mitoem2"], "train", ["Beta"])


def test_register_kind_checks_its_arguments():
    def split_third(root, subsets=None, split="train"): ...

    def ok(root, split="train", *, valid_fraction=0.2): ...

    with pytest.raises(TypeError, match=r"reader\(root, split=\"train\", \*, \.\.\.\).*split_third\(root, subsets=None"):
        D.register_kind("bad_sig", split_third, rule=[(1, 1, "neuron")])
    with pytest.raises(ValueError, match="'snemi3d' is already registered"):
        D.register_kind("snemi3d", ok)
    with pytest.raises(ValueError, match="name must start with a letter"):
        D.register_kind("a=b", ok, rule=[(1, 1, "neuron")])
    with pytest.raises(ValueError, match="no label rule 'norule' is registered"):
        D.register_kind("norule", ok)
    assert "bad_sig" not in D.kind_names() and "bad_sig" not in nj.rules.known_kinds()
    own = f"own{uuid.uuid4().hex[:6]}"
    nj.rules.register_rule(own, [(1, 9, "neuron")])  # a rule registered by nj.rules directly
    try:
        with pytest.raises(ValueError, match=f"a label rule '{own}' is already registered"):
            D.register_kind(own, ok, rule=[(1, 1, "neuron")])
        assert D.register_kind(own, ok).label_rule.ranges == ((1, 9, 1),)  # rule=None: that rule
        D.unregister_kind(own)
        assert own in nj.rules.known_kinds()  # not the registry's to remove
    finally:
        nj.rules.unregister_rule(own)
    name = f"alias{uuid.uuid4().hex[:6]}"
    kind = D.register_kind(name, ok, rule="mitoem2")  # another kind's rule, copied under its name
    try:
        assert kind.label_rule.instances == "boundary_separated"
        assert kind.label_rule.ranges == nj.rules.get_rule("mitoem2").ranges
        assert not kind.can("prepare") and name not in D.kind_names("prepare")
        with pytest.raises(ValueError, match=f"unknown dataset kind '{name}' for prepare .*cannot prepare"):
            D.prepare(name, "/nowhere", "/tmp/never")
    finally:
        D.unregister_kind(name)
    assert name not in nj.rules.known_kinds() and "mitoem2" in nj.rules.known_kinds()
    with pytest.raises(ValueError, match="unknown dataset kind 'nope'; expected one of snemi3d, cremi3d"):
        D.get_kind("nope")
    with pytest.raises(ValueError, match="for download .*'generic' cannot download.*snemi3d, cremi3d, microns, mitoem2"):
        dl.download("generic", "/tmp/never")


# ----------------------------------------------------------------------------- specs
@pytest.mark.parametrize(
    "text, expected",
    [
        ("snemi3d=prepared/snemi3d", ("snemi3d", "prepared/snemi3d", 1.0)),
        ("mitoem2=prepared/mitoem2:2.5", ("mitoem2", "prepared/mitoem2", 2.5)),
        ("generic=fib25.h5:image", ("generic", "fib25.h5:image", 1.0)),
        ("generic=fib25.h5:image:3", ("generic", "fib25.h5:image", 3.0)),
        ("microns=http://host:8000/minnie65/:1e-2", ("microns", "http://host:8000/minnie65/", 0.01)),
        ("microns=public", ("microns", "public", 1.0)),
    ],
)
def test_parse_dataset_spec(text, expected):
    assert D.parse_dataset_spec(text) == expected


@pytest.mark.parametrize(
    "text, match",
    [
        ("snemi3d=root:-1", r"dataset 'snemi3d=root:-1': weight must be a positive finite number; got '-1'"),
        ("snemi3d=root:nan", r"'snemi3d=root:nan': weight must be a positive finite number; got 'nan'"),
        ("snemi3d=root:0", r"'snemi3d=root:0': weight must be a positive"),
        ("snemi3d=root:inf", r"'snemi3d=root:inf': weight must be a positive"),
        ("snemi3d=root:", r"'snemi3d=root:': empty weight"),
        ("snemi3d=:2", r"'snemi3d=:2': empty ROOT"),
        ("snemi3d", r"'snemi3d': expected KIND=ROOT\[:WEIGHT\] with KIND one of snemi3d, .*generic"),
        ("fib=root", r"'fib=root': unknown kind 'fib'; expected one of snemi3d, cremi3d, microns, mitoem2, generic"),
    ],
)
def test_bad_dataset_specs_name_the_spec(text, match):
    with pytest.raises(ValueError, match=match):
        D.parse_dataset_spec(text)


def test_sources_from_specs(prepared):
    src = D.sources_from_specs({"s": ("snemi3d", str(prepared["snemi3d"]), 2), "m": ("mitoem2", prepared["mitoem2"])},
                               "valid")
    assert src["s"][1] == 2.0 and src["m"][1] == 1.0 and src["m"][0].split == "valid"
    assert src["s"][0].kind == "snemi3d" and src["m"][0].kind == "mitoem2"
    with pytest.raises(ValueError, match=r"dataset 's': weight must be a positive finite number; got -1"):
        D.sources_from_specs({"s": ("snemi3d", str(prepared["snemi3d"]), -1)})
    with pytest.raises(ValueError, match=r"dataset 'x': unknown dataset kind 'fib'"):
        D.sources_from_specs({"x": ("fib", "root", 1.0)})
    with pytest.raises(ValueError, match=r"dataset 'x': expected \(kind, root\[, weight\]\)"):
        D.sources_from_specs({"x": "snemi3d=root"})


def test_two_specs_of_one_kind_are_both_kept():
    specs = nj.datasets.specs_by_name(["snemi3d=a", "mitoem2=b:2", "snemi3d=c:3"])
    assert specs == {"snemi3d": ("snemi3d", "a", 1.0), "mitoem2": ("mitoem2", "b", 2.0),
                     "snemi3d_2": ("snemi3d", "c", 3.0)}
