"""``neurons-jax preview``: a PNG montage of one batch (image, union classes, instances).

Example:
    $ neurons-jax preview --dataset snemi3d=prepared/snemi3d --dataset mitoem2=prepared/mitoem2 -o batch.png
    $ neurons-jax preview config.json -o batch.png     # {"datasets": {"name": ["kind", "root", weight]}, ...}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..datasets.registry import kind_names

    p.add_argument("config", nargs="?", help="JSON config: {datasets: {name: [kind, root, weight]}, patch, batch_size, seed, split}")
    p.add_argument("--dataset", action="append", default=[], metavar="KIND=ROOT[:WEIGHT]",
                   help=f"a dataset to mix (repeatable); KIND one of {', '.join(kind_names())}")
    p.add_argument("--patch", type=int, nargs=3, default=(8, 96, 96), metavar=("Z", "Y", "X"))
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train", choices=("train", "valid", "test"))
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--scale", type=int, default=2, help="pixel zoom of each panel")
    p.add_argument("-o", "--output", default="preview.png")


def run(args: argparse.Namespace) -> int:
    import neurons_jax as nj
    from neurons_jax.preview import montage, save_png

    cfg = {}
    if args.config:
        cfg = json.loads(Path(args.config).read_text())
    specs = {k: tuple(v) for k, v in cfg.get("datasets", {}).items()}
    specs = specs or nj.datasets.specs_by_name(args.dataset)
    if not specs:
        raise ValueError("nothing to preview: give a CONFIG file or at least one --dataset KIND=ROOT")
    split = cfg.get("split", args.split)
    sources = nj.datasets.sources_from_specs(specs, split)
    loader = nj.pipeline.Loader(
        sources, tuple(cfg.get("patch", args.patch)), int(cfg.get("batch_size", args.batch_size)),
        seed=int(cfg.get("seed", args.seed)), split=split, output="numpy",
        augment=None if args.no_augment else "default",
    )
    batch = next(iter(loader))
    loader.close()
    path = save_png(montage(batch, loader.names, scale=args.scale), args.output)
    print(f"wrote {path} ({len(batch['dataset'])} samples from {', '.join(loader.names)})")
    return 0
