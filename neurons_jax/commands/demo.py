"""``neurons-jax demo`` (what ``make demo`` runs): the whole job on the embedded sample data.

Writes the sample workspace in its kinds' native formats, prepares each dataset to zarr3, mixes
them with the weights shown, trains the Flax UNet example briefly on the CPU, writes
``demo_out/preview.png`` and ``demo_out/metrics.json`` and prints a summary table, then where
the sample data lies (``demo_out/workspace/KIND``: native files; ``demo_out/prepared/KIND``:
zarr3) and a command to try on it.

Example:
    $ neurons-jax demo --steps 40 --out demo_out
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path


def sample_kinds() -> tuple[str, ...]:
    """The kinds of the sample workspace (registered kinds with a sample writer)."""
    from neurons_jax.sample import sample_kinds

    return sample_kinds()


def add_arguments(p: argparse.ArgumentParser) -> None:
    kinds = sample_kinds()
    p.add_argument("--out", default="demo_out", help="output folder (workspace, preview, metrics)")
    p.add_argument("--steps", type=int, default=40, help="training steps (the loss should fall)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--patch", type=int, nargs=3, default=(8, 64, 64), metavar=("Z", "Y", "X"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", nargs=len(kinds), type=float, metavar=tuple(k.upper() for k in kinds),
                   default=[1.0] * len(kinds), help=f"mixing weights of {', '.join(kinds)} (default 1 each)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    import neurons_jax as nj
    from neurons_jax.preview import montage, save_png
    from neurons_jax.volumes import write_json

    from ._example import load_train_example

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    native_root, prep_root = out / "workspace", out / "prepared"
    kinds = sample_kinds()
    if not native_root.exists():
        native = nj.sample.write_workspace(native_root, seed=args.seed)
    else:  # a previous demo's workspace: the layout is fixed by write_workspace
        native = {k: native_root / k for k in kinds}
    print(f"sample workspace: {native_root} ({time.perf_counter() - t0:.1f} s)")
    weights = dict(zip(kinds, args.weights))
    specs, rows = {}, []
    for kind in kinds:
        root = nj.datasets.prepare(kind, native[kind], prep_root / kind)
        ds = nj.datasets.open_dataset(kind, root, "train")
        specs[kind] = (kind, str(root), weights[kind])
        sizes = sorted({tuple(p.image.voxel_size) for p in ds.pairs}, reverse=True)
        rows.append((kind, len(ds.pairs), sizes, weights[kind]))
    print(f"prepared {len(kinds)} datasets under {prep_root} ({time.perf_counter() - t0:.1f} s)")

    ex = load_train_example()
    cfg = dataclasses.replace(
        ex.TrainConfig(), datasets=specs, steps=args.steps, batch_size=args.batch_size,
        patch_shape=tuple(args.patch), seed=args.seed, log_every=max(1, args.steps // 6),
    )
    res = ex.train(cfg)
    losses = res["losses"]
    ids = np.concatenate([np.asarray(b["dataset"]) for b in res["batches"]])
    share = {k: float(np.mean(ids == i)) for i, k in enumerate(res["datasets"])}

    # preview of one batch from the same mixture (host arrays, no JAX needed)
    with nj.pipeline.Loader(nj.datasets.sources_from_specs(specs), cfg.patch_shape, 4,
                            seed=args.seed + 1, output="numpy") as loader:
        batch = next(iter(loader))
    png = save_png(montage(batch, loader.names, scale=2), out / "preview.png")

    k = max(1, min(5, len(losses) // 2))
    metrics = {
        "steps": len(losses), "loss_first": losses[0], "loss_last": losses[-1],
        "loss_first5_mean": float(np.mean(losses[:k])), "loss_last5_mean": float(np.mean(losses[-k:])),
        "losses": losses, "samples_per_s": res["samples_per_s"], "data_wait_share": res["data_wait_share"],
        "share_of_samples": share, "weights": weights, "timings": res["timings"],
        "datasets": {r[0]: {"volumes": r[1], "voxel_sizes_nm": [list(v) for v in r[2]]} for r in rows},
        "wall_s": time.perf_counter() - t0,
    }
    write_json(out / "metrics.json", metrics)

    print()
    print(f"{'dataset':<10} {'volumes':>7} {'voxel size (nm)':>18} {'weight':>7} {'share':>7}")
    for kind, n, sizes, w in rows:
        vs = ", ".join("x".join(f"{v:g}" for v in s) for s in sizes)
        print(f"{kind:<10} {n:>7} {vs:>18} {w:>7.2f} {share.get(kind, 0):>7.1%}")
    print(f"\nloss {metrics['loss_first5_mean']:.4f} (first {k}) -> {metrics['loss_last5_mean']:.4f} (last {k})")
    print(f"{res['samples_per_s']:.1f} samples/s, data wait {res['data_wait_share']:.1%} of step time")
    print(f"wrote {png} and {out / 'metrics.json'} in {metrics['wall_s']:.0f} s")
    print(f"\nsample data: native files in {native_root}/KIND, prepared zarr3 in {prep_root}/KIND "
          f"(KIND: {', '.join(kinds)})")
    two = [k for k in ("snemi3d", "mitoem2") if k in kinds] or list(kinds[:2])
    try_it = " ".join(f"--dataset {k}={prep_root / k}" + (":2" if i else "") for i, k in enumerate(two))
    print(f"try: neurons-jax info {prep_root / two[0]}")
    print(f"     neurons-jax preview {try_it} -o batch.png")
    return 0
