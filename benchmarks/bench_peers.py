"""Our Loader beside gunpowder, torch-em and the seed's MONAI pipeline: samples/s, alternating.

Data: ../shared/data/fib25_sample2.npz (250^3, 10 nm, dense neuron ids) tiled 2x in y and x to
250 x 500 x 500 (as bench_pipeline.py), prepared once with ``nj.datasets.prepare("generic", ...)``
into zarr3 (zstd level 3, chunks 32 x 128 x 128). gunpowder and torch-em read *the same two zarr3
arrays*: a zarr3 group ``peers.zarr`` whose members ``raw`` and ``labels`` are links to the
prepared ``image.zarr`` and ``label.zarr``. MONAI (the seed pipeline) caches the tiled volume in
memory, as the seed did. Every framework runs in its own process and its own venv
(``benchmarks/peers/setup.sh``; ours in .venv), one after the other in each repeat
(ours, gunpowder, torch-em, torch-em + connected components, MONAI, then ours again, ...).

Rate: steady state (``bench_pipeline.time_batches``): each batch's arrival is timed and only
the batches after the first one the consumer waited for count (start-up buffers drained).
Per row: the median of all repeats, and the median of the three *quietest* repeats, quiet
meaning the least CPU used by other processes on the machine during the repeat (``/proc/stat``
busy time minus this benchmark's own children); ratios ours/peer are taken within a repeat.

    make bench-peers                                # sets up the peer venvs, then runs this
    .venv/bin/python benchmarks/bench_peers.py --repeats 5
    .venv/bin/python benchmarks/bench_peers.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "peers"
VENVS = {
    "ours": ROOT / ".venv",
    "gunpowder": PEERS / ".venv-gunpowder",
    "torch_em": PEERS / ".venv-torch-em",
    "torch_em_cc": PEERS / ".venv-torch-em",
    "monai_seed": PEERS / ".venv-monai",
}
FRAMEWORKS = list(VENVS)
PEER_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                             "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS")}

# Each row's augmentation set, as written into the JSON and BENCHMARKS.md.
AUGMENTATIONS = {
    "ours": "full default nj.augment.AugmentConfig(): flips, rot90, xy and z transposes "
            "(isotropic), fused warp (rotation +-45 deg p=0.5, scale 0.9-1.1 p=0.5, 3D elastic "
            "200 nm / sigma <=12 nm p=0.5, misalignment <=48 nm p=0.2), EM defects (missing "
            "sections, low contrast, lines, charging, motion blur, missing parts), contrast, "
            "brightness, gamma, per-section intensity, blur, noise; union labels + per-sample "
            "instance relabelling (connected components); real context read (no padding); "
            "output jax.Array",
    "gunpowder": "ZarrSource -> Normalize(raw) -> RandomLocation() -> ElasticAugment("
                 "control_point_spacing=(20,20,20), jitter_sigma=(1,1,1), rotation_interval="
                 "(0,pi/2), scale_interval=(0.9,1.1), prob_slip=0.05, prob_shift=0.05, "
                 "max_misalign=5, subsample=8) -> SimpleAugment(transpose_only=[1,2]) -> "
                 "IntensityAugment(raw, "
                 "0.9, 1.1, -0.1, 0.1, slab=(1,-1,-1)) -> DefectAugment(raw, prob_missing=0.03, "
                 "prob_low_contrast=0.01, contrast_scale=0.5, axis=0) -> PreCache(cache_size=50, "
                 "num_workers=2) -> Stack(4)",
    "torch_em": "torch_em.default_segmentation_loader defaults: standardize(raw), kornia "
                "RandomHorizontalFlip3D / RandomVerticalFlip3D / RandomDepthicalFlip3D, random "
                "crop of the patch itself (no context), labels as float32 ids; num_workers=2, "
                "shuffle=True",
    "torch_em_cc": "as torch_em + label_transform=torch_em.transform.label.connected_components",
    "monai_seed": "the seed pipeline of bench_pipeline.py: CacheDataset (whole volume cached, "
                  "deep-copied per sample) + SpatialPadd, RandSpatialCropd, RandFlipd x2, "
                  "RandRotate90d, RandGaussianNoised, RandAdjustContrastd; torch DataLoader",
}


# ----------------------------------------------------------------------------- data (ours' venv)
def prepare(data_dir: Path) -> Path:
    """Prepared zarr3 dataset + the peers' group of links to its two arrays (once)."""
    sys.path.insert(0, str(HERE))
    from bench_pipeline import load_volume

    import neurons_jax as nj

    prep = data_dir / "fib25_prepared"
    if not (prep / "metadata.json").exists():
        img, lab = load_volume()
        nj.datasets.prepare("generic", img, prep, label=lab, voxel_size=(10, 10, 10), progress=False)
    group = data_dir / "peers.zarr"
    if not (group / "zarr.json").exists():
        group.mkdir(parents=True, exist_ok=True)
        vol = prep / "volumes" / "volume"
        for name, target in (("raw", vol / "image.zarr"), ("labels", vol / "label.zarr")):
            if not (group / name).exists():
                os.symlink(target, group / name)
        tmp = group / "zarr.json.tmp"
        tmp.write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
        os.replace(tmp, group / "zarr.json")
    return data_dir


# ----------------------------------------------------------------------------- one run, one venv
def run_ours(data_dir: Path, patch, a) -> dict:
    from bench_pipeline import per_sample, time_batches

    import neurons_jax as nj

    ds = nj.datasets.generic(str(data_dir / "fib25_prepared"), split="train")
    loader = nj.pipeline.Loader({"fib25": (ds, 1.0)}, patch, a.batch_size, seed=0,
                                worker_count=a.workers)
    it = iter(loader)
    r = time_batches(lambda: next(it)["image"].block_until_ready(), max(2, 2 * a.workers),
                     a.batches)
    loader.close()
    return per_sample(r, a.batch_size, 0.0)


def run_gunpowder(data_dir: Path, patch, a) -> dict:
    import math

    import gunpowder as gp
    from bench_pipeline import per_sample, time_batches

    raw, labels = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS")
    vs = gp.Coordinate((10, 10, 10))
    source = gp.ZarrSource(
        str(data_dir / "peers.zarr"), {raw: "raw", labels: "labels"},
        {raw: gp.ArraySpec(voxel_size=vs, interpolatable=True),
         labels: gp.ArraySpec(voxel_size=vs, interpolatable=False)},
    )
    pipeline = (
        source
        + gp.Normalize(raw)
        + gp.RandomLocation()
        + gp.ElasticAugment(control_point_spacing=(20, 20, 20), jitter_sigma=(1.0, 1.0, 1.0),
                            rotation_interval=(0, math.pi / 2), scale_interval=(0.9, 1.1),
                            prob_slip=0.05, prob_shift=0.05, max_misalign=5, subsample=8)
        + gp.SimpleAugment(transpose_only=[1, 2])  # z <-> y needs 256 sections at 32x256x256
        + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1, slab=(1, -1, -1))
        + gp.DefectAugment(raw, prob_missing=0.03, prob_low_contrast=0.01, contrast_scale=0.5,
                           axis=0)
        + gp.PreCache(cache_size=50, num_workers=a.workers)
        + gp.Stack(a.batch_size)
    )
    request = gp.BatchRequest()
    shape = gp.Coordinate(patch) * vs
    request.add(raw, shape)
    request.add(labels, shape)
    with gp.build(pipeline):
        r = time_batches(lambda: pipeline.request_batch(request), max(2, 2 * a.workers), a.batches)
    return per_sample(r, a.batch_size, 0.0)


def run_torch_em(data_dir: Path, patch, a, cc: bool) -> dict:
    import torch
    import torch_em
    from bench_pipeline import per_sample, time_batches

    torch.set_num_threads(1)
    path = str(data_dir / "peers.zarr")
    warm = max(2, 2 * a.workers)
    kw = {"label_transform": torch_em.transform.label.connected_components} if cc else {}
    loader = torch_em.default_segmentation_loader(
        path, "raw", path, "labels", batch_size=a.batch_size, patch_shape=patch,
        n_samples=(a.batches + warm + 4 * a.workers) * a.batch_size, num_workers=a.workers,
        shuffle=True, **kw,
    )
    it = iter(loader)
    r = time_batches(lambda: next(it), warm, a.batches)
    return per_sample(r, a.batch_size, 0.0)


def run_monai(patch, a) -> dict:
    from bench_pipeline import bench_monai, load_volume

    img, lab = load_volume()
    return bench_monai(img, lab, patch, a.batch_size, a.workers, a.batches, elastic=False)


def run_one(which: str, patch, a) -> dict:
    sys.path.insert(0, str(HERE))
    data_dir = Path(a.data_dir)
    if which == "ours":
        return run_ours(data_dir, patch, a)
    if which == "gunpowder":
        return run_gunpowder(data_dir, patch, a)
    if which in ("torch_em", "torch_em_cc"):
        return run_torch_em(data_dir, patch, a, cc=which == "torch_em_cc")
    if which == "monai_seed":
        return run_monai(patch, a)
    raise ValueError(f"--one: unknown framework {which!r}; expected one of {FRAMEWORKS}")


# ----------------------------------------------------------------------------- orchestration
def busy_cpu_s() -> float:
    """Busy CPU seconds of the whole machine so far (``/proc/stat``), all cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def python_of(which: str) -> Path:
    return VENVS[which] / "bin" / "python"


def run_child(which: str, ps: str, a) -> dict:
    py = python_of(which)
    if not py.exists():
        return {"error": f"{py} missing: run `bash benchmarks/peers/setup.sh` (or make bench-peers)"}
    cmd = [str(py), __file__, "--one", f"{which}:{ps}", "--batches", str(a.batches),
           "--batch-size", str(a.batch_size), "--workers", str(a.workers),
           "--data-dir", str(a.data_dir)]
    env = {**os.environ, **(PEER_ENV if which != "ours" else {})}
    busy0, own0, t0 = busy_cpu_s(), children_cpu_s(), time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {a.timeout:.0f} s"}
    wall = time.perf_counter() - t0
    foreign = max(0.0, (busy_cpu_s() - busy0) - (children_cpu_s() - own0)) / wall
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {r.returncode}", "foreign_cores": foreign}
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if not a.keep_arrivals:
        out.pop("arrivals_s", None)
    return {**out, "wall_s": wall, "foreign_cores": foreign}


def summarise(reps: list[dict], frameworks: list[str], quiet_n: int = 3) -> dict:
    """Per framework: median samples/s over its repeats and over the ``quiet_n`` quietest of
    them; per peer: the median of the per-repeat ratios ours / peer over the repeats where
    both ran (all, and the quietest ``quiet_n`` of those)."""

    def ok(r: dict, f: str) -> bool:
        return "samples_per_s" in r.get(f, {})

    def quietest(rs: list[dict]) -> list[dict]:
        return sorted(rs, key=lambda r: r["foreign_cores"])[:quiet_n]

    out: dict = {"repeats": len(reps)}
    for f in frameworks:
        mine = [r for r in reps if ok(r, f)]
        if not mine:
            out[f] = {"error": next((r[f]["error"] for r in reps if "error" in r.get(f, {})), "none")}
            continue
        quiet = quietest(mine)
        row = {"median": statistics.median(r[f]["samples_per_s"] for r in mine),
               "quiet_median": statistics.median(r[f]["samples_per_s"] for r in quiet),
               "quiet_repeats": [r["repeat"] for r in quiet], "runs": len(mine),
               "all": [r[f]["samples_per_s"] for r in mine]}
        both = [r for r in mine if ok(r, "ours")]
        if f != "ours" and both:
            ratio = [r["ours"]["samples_per_s"] / r[f]["samples_per_s"] for r in both]
            row["ours_over_peer"] = statistics.median(ratio)
            row["ours_over_peer_quiet"] = statistics.median(
                r["ours"]["samples_per_s"] / r[f]["samples_per_s"] for r in quietest(both))
        out[f] = row
    return out


def resummarise(path: Path) -> None:
    """Recompute the summaries of a results file from its repeats (after a method change)."""
    d = json.loads(path.read_text())
    for row in d["rows"]:
        frameworks = [k for k in row["repeats"][0] if k not in ("repeat", "foreign_cores")]
        row["summary"] = summarise(row["repeats"], frameworks)
    write_json(path, d)


def versions(frameworks: list[str]) -> dict:
    code = ("import importlib.metadata as m, platform, sys\n"
            "out = {'python': platform.python_version()}\n"
            "for n in sys.argv[1:]:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(out)")
    names = ["neurons-jax", "jax", "grain", "gunpowder", "zarr", "augment-nd", "torch",
             "torch-em", "python-elf", "kornia", "monai", "numpy", "scipy", "scikit-image"]
    out = {}
    for f in dict.fromkeys(frameworks):
        py = python_of(f)
        if py.exists():
            r = subprocess.run([str(py), "-c", code, *names], capture_output=True, text=True,
                               cwd="/")  # not the checkout: its egg-info is no install
            out[f] = r.stdout.strip()
    return out


def cpu_model() -> str:
    """The CPU's model name (``bench_pipeline.cpu_model``)."""
    from bench_pipeline import cpu_model as model

    return model()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batches", type=int, default=32, help="timed batches per run")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--patches", nargs="+", default=["32x128x128", "32x256x256"])
    p.add_argument("--which", nargs="+", default=FRAMEWORKS, choices=FRAMEWORKS)
    p.add_argument("--quick", action="store_true",
                   help="a short check: 1 repeat, 24 batches, 32x128x128 only")
    p.add_argument("--data-dir", default=os.environ.get("NJ_BENCH_PEERS_DATA", "/tmp/nj_bench_peers"))
    p.add_argument("--timeout", type=float, default=900, help="seconds per run")
    p.add_argument("--keep-arrivals", action="store_true", help="keep every batch's arrival time")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--summarise", metavar="JSON", help="recompute the summaries of a results file")
    p.add_argument("--out", default=str(HERE / "results" / "bench_peers.json"))
    a = p.parse_args()
    if a.one:  # child: one framework, one patch size, in its own venv
        which, ps = a.one.split(":")
        print(json.dumps(run_one(which, tuple(int(v) for v in ps.split("x")), a), default=float))
        return 0
    if a.summarise:
        resummarise(Path(a.summarise))
        return 0
    if a.prepare_only:
        prepare(Path(a.data_dir))
        return 0
    if a.quick:
        a.repeats, a.batches, a.patches = 1, 24, ["32x128x128"]
    Path(a.data_dir).mkdir(parents=True, exist_ok=True)
    r = subprocess.run([str(python_of("ours")), __file__, "--prepare-only", "--data-dir", a.data_dir])
    if r.returncode != 0:
        raise SystemExit(f"preparing the data in {a.data_dir} failed (exit {r.returncode})")
    rows = []
    for ps in a.patches:
        reps = []
        for k in range(a.repeats):
            rep: dict = {"repeat": k}
            for which in a.which:
                rep[which] = run_child(which, ps, a)
                rr = rep[which]
                msg = (f"{rr['samples_per_s']:7.2f}/s (naive {rr['naive_samples_per_s']:.2f})"
                       if "samples_per_s" in rr else f"error: {rr['error']}")
                print(f"{ps} repeat {k} {which:>12}: {msg}  other load "
                      f"{rr.get('foreign_cores', 0):.2f} cores", flush=True)
            rep["foreign_cores"] = statistics.mean(rep[w].get("foreign_cores", 0) for w in a.which)
            reps.append(rep)
        summary = summarise(reps, a.which)
        rows.append({"patch": ps, "batch": a.batch_size, "workers": a.workers,
                     "summary": summary, "repeats": reps})
        for w in a.which:
            s = summary[w]
            if "median" in s:
                ratio = (f"  ours/peer x{s['ours_over_peer']:.2f} (quiet x{s['ours_over_peer_quiet']:.2f})"
                         if "ours_over_peer" in s else "")
                print(f"{ps} {w:>12}: median {s['median']:.2f}/s, quietest-3 "
                      f"{s.get('quiet_median', float('nan')):.2f}/s{ratio}", flush=True)
    out = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {cpu_model()}",
        "load_average_end": os.getloadavg(),
        "versions": versions(a.which),
        "augmentations": {w: AUGMENTATIONS[w] for w in a.which},
        "method": "steady state: batches after the first one the consumer waited for "
                  "(bench_pipeline.steady_rate); quiet = least CPU of other processes",
        "rows": rows,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    write_json(a.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
