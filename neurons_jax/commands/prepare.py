"""``neurons-jax prepare KIND INPUT OUTPUT``: ingest native files into zarr3 + metadata.json.

Example:
    $ neurons-jax prepare cremi3d data/cremi3d prepared/cremi3d --mito
    $ neurons-jax prepare microns public prepared/microns --seg-version 1300 --size 256 256 64
    $ neurons-jax prepare generic fib25.h5:image prepared/fib25 --label fib25.h5:labels --voxel-size 10 10 10
"""

from __future__ import annotations

import argparse

from ..datasets.prepare import READERS

EXAMPLES = """examples:
  neurons-jax prepare snemi3d data/snemi3d prepared/snemi3d
  neurons-jax prepare cremi3d data/cremi3d prepared/cremi3d --mito
  neurons-jax prepare microns public prepared/microns --seg-version 1300 --size 256 256 64
  neurons-jax prepare generic fib25.h5:image prepared/fib25 --label fib25.h5:labels --voxel-size 10 10 10
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class, p.epilog = argparse.RawDescriptionHelpFormatter, EXAMPLES
    p.add_argument("kind", choices=READERS, help="dataset kind")
    p.add_argument("input", help="native dataset root (for microns: a local root, a mirror URL or 'public'; "
                                 "for generic: the image path/URL, optionally file.h5:key)")
    p.add_argument("output", help="prepared root to write (created through a temporary directory)")
    p.add_argument("--valid-fraction", type=float, default=0.2, help="last fraction of z used as valid (default 0.2)")
    p.add_argument("--overwrite", action="store_true", help="replace a prepared root made from other sources")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("cremi3d")
    g.add_argument("--volumes", nargs="+", default=None, help="train/valid samples (default A B)")
    g.add_argument("--no-clefts", action="store_true", help="leave synaptic clefts out of the labels")
    g.add_argument("--mito", action="store_true", help="add mitochondria (ids + 2,000,000)")
    g = p.add_argument_group("microns")
    g.add_argument("--seg-version", type=int, default=None, help="117, 343, 943 or 1300 (default 1300)")
    g.add_argument("--origin", type=int, nargs=3, metavar=("X", "Y", "Z"), help="crop origin, segmentation voxels")
    g.add_argument("--size", type=int, nargs=3, metavar=("X", "Y", "Z"), help="crop size, segmentation voxels")
    g = p.add_argument_group("mitoem2")
    g.add_argument("--subsets", nargs="+", default=None, help="e.g. Beta Mossy or 1 4 (default all)")
    g = p.add_argument_group("generic")
    g.add_argument("--label", help="label path/URL (file.h5:key works)")
    g.add_argument("--voxel-size", type=float, nargs=3, metavar=("Z", "Y", "X"), help="nm")
    g.add_argument("--rule", default=None, help="label rule kind (default generic)")


def reader_kwargs(args: argparse.Namespace) -> dict:
    """The reader options that apply to ``args.kind`` (others given are an error)."""
    given = {
        "cremi3d": {"volumes": args.volumes, "include_clefts": False if args.no_clefts else None,
                    "include_mito": True if args.mito else None},
        "microns": {"seg_version": args.seg_version, "origin": args.origin, "size": args.size},
        "mitoem2": {"subsets": args.subsets},
        "generic": {"label": args.label, "voxel_size": args.voxel_size, "rule": args.rule},
    }
    out = {k: v for k, v in given.get(args.kind, {}).items() if v is not None}
    stray = [f"{k} ({kind})" for kind, opts in given.items() if kind != args.kind
             for k, v in opts.items() if v is not None]
    if stray:
        raise ValueError(f"options for another dataset kind given to {args.kind}: {', '.join(stray)}")
    return out


def run(args: argparse.Namespace) -> int:
    import neurons_jax as nj

    source = None if args.kind == "microns" and args.input == "public" else args.input
    out = nj.datasets.prepare(args.kind, source, args.output, valid_fraction=args.valid_fraction,
                              overwrite=args.overwrite, progress=not args.quiet, **reader_kwargs(args))
    print(out)
    return 0
