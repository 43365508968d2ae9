"""``neurons-jax preview``: a PNG montage of one batch (image, union classes, instances, targets).

The picture's size is checked against a budget from the arguments (batch size, patch, --scale)
before any data is read. ``--pad`` lets patches (plus the augmentation margin) be larger than a
volume; the padding is masked out. ``--targets NAME[,NAME]`` (names of ``nj.targets``:
affinities, boundaries, distance, lsd, point_prompts) has the Loader compute those targets with the
preview's defaults (``neurons_jax.preview.DEFAULT_TARGETS``: affinities with the 3 nearest and 5
long-range offsets, LSD sigma 80 nm, ...) and adds their columns.

Example:
    $ neurons-jax preview --dataset snemi3d=demo_out/prepared/snemi3d --dataset mitoem2=demo_out/prepared/mitoem2:2 -o batch.png
    $ neurons-jax preview --dataset mitoem2=demo_out/prepared/mitoem2 --patch 8 160 160 --pad -o big.png
    $ neurons-jax preview --dataset snemi3d=demo_out/prepared/snemi3d --targets affinities,lsd -o targets.png
    $ neurons-jax preview config.json -o batch.png     # {"datasets": {"name": ["kind", "root", weight]}, ...}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PATCH = (8, 64, 64)  # the train default: fits every sample volume with the augmentation margin


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..datasets.registry import kind_names
    from ..preview import DEFAULT_TARGETS

    p.add_argument("config", nargs="?",
                   help="JSON config: {datasets: {name: [kind, root, weight]}, patch, batch_size, seed, split, pad, targets}")
    p.add_argument("--dataset", action="append", default=[], metavar="KIND=ROOT[:WEIGHT]",
                   help=f"a dataset to mix (repeatable); KIND one of {', '.join(kind_names())}")
    p.add_argument("--patch", type=int, nargs=3, default=PATCH, metavar=("Z", "Y", "X"))
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train", choices=("train", "valid", "test"))
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--pad", action="store_true",
                   help="allow patches larger than a volume (the padding is masked out)")
    p.add_argument("--targets", action="extend", nargs="+", default=[], metavar="NAME[,NAME]",
                   help=f"training targets to compute and show ({', '.join(DEFAULT_TARGETS)}; "
                        "default parameters: affinities with nearest + long-range offsets, lsd sigma 80 nm)")
    p.add_argument("--scale", type=int, default=2, help="pixel zoom of each panel (the picture's size is bounded)")
    p.add_argument("-o", "--output", default="preview.png")


def run(args: argparse.Namespace) -> int:
    import neurons_jax as nj
    from neurons_jax.preview import (
        check_picture_size,
        default_targets,
        montage,
        save_png,
        target_columns,
    )

    cfg = {}
    if args.config:
        path = Path(args.config)
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"{path}: expected a JSON object {{datasets: ...}}; got {type(cfg).__name__}")
    specs = {k: tuple(v) for k, v in cfg.get("datasets", {}).items()}
    specs = specs or nj.datasets.specs_by_name(args.dataset)
    if not specs:
        raise ValueError("nothing to preview: give a CONFIG file or at least one --dataset KIND=ROOT")
    split = cfg.get("split", args.split)
    patch = tuple(int(v) for v in cfg.get("patch", args.patch))
    batch_size = int(cfg.get("batch_size", args.batch_size))
    names = cfg.get("targets", args.targets)
    targets = default_targets([names] if isinstance(names, str) else names)
    # before any data is read
    check_picture_size(batch_size, patch, args.scale, extra_columns=target_columns(targets))
    sources = nj.datasets.sources_from_specs(specs, split)
    with nj.pipeline.Loader(
        sources, patch, batch_size, seed=int(cfg.get("seed", args.seed)), split=split, output="numpy",
        augment=None if args.no_augment else "default", pad=bool(cfg.get("pad", args.pad)),
        targets=targets or None,
    ) as loader:
        batch = next(iter(loader))
    path = save_png(montage(batch, loader.names, scale=args.scale, targets=targets), args.output)
    print(f"wrote {path} ({len(batch['dataset'])} samples from {', '.join(loader.names)})")
    return 0
