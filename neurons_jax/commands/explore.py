"""``neurons-jax explore KIND=ROOT [KIND=ROOT ...] -o DIR``: statistics, pictures and an HTML report.

Per dataset, split and volume: shape, voxel size, physical extent, dtypes, intensity percentiles
and histogram, union-class shares, instance counts and sizes (voxels, µm³), the boundary
fraction; MitoEM2 one row per cell type. Writes ``DIR/report.html`` (opens offline),
``DIR/stats.json`` and the PNGs. Volumes are streamed in z slabs of at most ``--max-memory``.
A bare ROOT (no ``KIND=``) must be a prepared root.

Example:
    $ neurons-jax explore snemi3d=demo_out/workspace/snemi3d mitoem2=demo_out/prepared/mitoem2 -o explore_out
    $ neurons-jax explore demo_out/prepared/cremi3d --splits train --max-memory 64M -q -o cremi_report
"""

from __future__ import annotations

import argparse

from ..datasets.base import SPLITS

EXAMPLES = """examples:
  neurons-jax explore snemi3d=demo_out/workspace/snemi3d mitoem2=demo_out/prepared/mitoem2 -o explore_out
  neurons-jax explore demo_out/prepared/cremi3d --splits train --max-memory 64M -q -o cremi_report
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..datasets.registry import kind_names

    p.formatter_class, p.epilog = argparse.RawDescriptionHelpFormatter, EXAMPLES
    p.add_argument("datasets", nargs="+", metavar="KIND=ROOT",
                   help=f"datasets to explore (KIND one of {', '.join(kind_names())}; a prepared root "
                        "may be given alone)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder for report.html, stats.json and the PNGs")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="splits to explore")
    p.add_argument("--max-memory", default=None, metavar="BYTES",
                   help="working memory of one z slab, e.g. 256M or 2G (default "
                        "$NEURONS_JAX_EXPLORE_BYTES or 512M)")
    p.add_argument("--sections", type=int, default=4, help="z sections in each XY montage (default 4)")
    p.add_argument("--no-pictures", action="store_true", help="statistics and report only")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..exploration import explore
    from ..exploration.core import parse_bytes

    if args.sections < 1:
        raise ValueError(f"--sections must be >= 1; got {args.sections}")
    max_bytes = None if args.max_memory is None else parse_bytes(args.max_memory, "--max-memory")
    stats = explore(args.datasets, args.output, splits=tuple(args.splits), max_bytes=max_bytes,
                    sections=args.sections, quiet=args.quiet, draw=not args.no_pictures)
    n = sum(len(sp.get("volumes", [])) for d in stats["datasets"].values() for sp in d["splits"].values())
    print(f"wrote {args.output}/report.html and stats.json ({n} volumes of "
          f"{', '.join(stats['datasets'])})")
    return 0
