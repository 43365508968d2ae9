"""Host cost per sample of the GPU path (what a GPU host must still do): read + union + pack.

On a GPU the Loader's workers only read each sample, map its labels to union classes, pack them
with the instance ids and write the batch into shared memory; augmentation, relabelling and
targets run on the device. This measures that host work per 32x256x256 sample on one core
(no Grain, one thread), before and after issue 14, in the same run, alternating:

* before: the whole worst-case context (``PatchSource.__getitem__``), ``union_semantic`` +
  ``np.where`` + ``pack_labels`` (four passes), ``np.stack`` of the batch;
* after: the sample's own footprint (``ReadSample``: ``augment.footprint``), the fused
  ``hostpack.union_pack`` pass, the batch written once into a reused block (``StackBatch``).

Both with the TensorStore cache cold (a fresh cache pool, so chunks are decoded: a volume far
larger than the cache) and warm (the 250x500x500 volume fits the default 512 MiB pool).
Data: ../shared/data/fib25_sample2.npz tiled 2x in y and x, prepared as zarr3 (as bench_pipeline).

    .venv/bin/python benchmarks/bench_host.py --samples 24
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
from bench_pipeline import load_volume  # noqa: E402


def build(root: Path, patch):
    import neurons_jax as nj
    from neurons_jax.augment import AugmentConfig
    from neurons_jax.transforms import DrawParams, HostLabels, ReadSample, StackBatch

    if not root.exists():
        img, lab = load_volume()
        nj.datasets.prepare("generic", img, root, label=lab, voxel_size=(10, 10, 10), progress=False)
    ds = nj.datasets.generic(str(root), split="train")
    loader = nj.pipeline.Loader({"fib25": (ds, 1.0)}, patch, 4, seed=0, output="numpy", device="cpu")
    vs = [tuple(p.image.voxel_size) for p in ds.pairs]
    labeler = HostLabels(ds.rule, (), vs)
    return {
        "src": loader.sources[0], "draw": DrawParams(AugmentConfig(), patch), "labeler": labeler,
        "read": ReadSample(loader.sources, [labeler], loader.context_shape), "stacker": StackBatch(),
        "loader": loader,
    }


def before(t, i: int) -> dict:
    """The pre-issue-14 host path of one sample: whole context, remap + where + pack."""
    from neurons_jax.ops import union_semantic
    from neurons_jax.stage import pack_labels

    e = t["src"][i]
    label = e.pop("label")
    semantic = union_semantic(label, t["labeler"].rule)
    e["packed"] = pack_labels(semantic, np.where(semantic != 0, label, 0))
    return e


def after(t, i: int) -> dict:
    e = t["src"].locate(i)
    e = t["draw"](e, np.random.default_rng(i))
    return t["read"](e)


def fresh_cache() -> None:
    """A new TensorStore context (empty cache pool) for the volumes opened next."""
    from neurons_jax import volumes

    volumes._context = None


def run(t, which: str, n: int, warm: bool, batch: int = 4) -> dict:
    import neurons_jax as nj  # noqa: F401

    fn = before if which == "before" else after
    src = t["src"]
    if not warm:  # a new cache pool, and the volumes reopened in it: every chunk is decoded
        fresh_cache()
        for p in src.dataset.pairs:
            for v in (p.image, p.label):
                v._store = None
    else:
        for i in range(n):
            fn(t, i)  # fill the cache with these samples' chunks
    per, stack = [], []
    els = []
    for i in range(n):
        t0 = time.perf_counter()
        els.append(fn(t, i))
        per.append(time.perf_counter() - t0)
        if len(els) == batch:
            t0 = time.perf_counter()
            if which == "before":
                {k: np.stack([e[k] for e in els]) for k in ("image", "packed", "mask")}
            else:
                ref = t["stacker"](els)
                t["loader"]._reader.open_batch(ref)
                t["loader"]._reader.release(ref)
            stack.append((time.perf_counter() - t0) / batch)
            els = []
    return {"median_ms": 1e3 * float(np.median(per)), "stack_ms_per_sample": 1e3 * float(np.median(stack)),
            "total_ms": 1e3 * (float(np.median(per)) + float(np.median(stack)))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=24)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--patch", default="32x256x256")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_host.json"))
    a = p.parse_args()
    patch = tuple(int(v) for v in a.patch.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = build(Path(tmp) / "fib25", patch)
        for warm in (True, False):
            res: dict = {"before": [], "after": []}
            for _ in range(a.repeats):
                for which in ("before", "after"):  # alternating
                    res[which].append(run(t, which, a.samples, warm)["total_ms"])
            row = {"cache": "warm" if warm else "cold", **{k: float(np.median(v)) for k, v in res.items()},
                   "repeats": res}
            row["ratio"] = row["before"] / row["after"]
            rows.append(row)
            print(f"{a.patch} cache {row['cache']}: before {row['before']:6.1f} ms  after {row['after']:6.1f} ms "
                  f"per sample  x{row['ratio']:.2f}", flush=True)
        t["loader"].close()
        t["stacker"].pool.close()
    out = {"machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
           "patch": a.patch, "rows": rows, "command": " ".join(sys.argv)}
    write_json(a.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
