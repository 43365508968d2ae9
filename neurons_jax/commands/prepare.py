"""``neurons-jax prepare KIND INPUT OUTPUT``: ingest native files into zarr3 + metadata.json.

One sub-command per registered kind that can be prepared (``nj.datasets.register_kind``); its
options (``--mito``, ``--subsets``, ...) come from the kind's ``prepare_options``.

Example:
    $ neurons-jax prepare cremi3d data/cremi3d prepared/cremi3d --mito
    $ neurons-jax prepare microns public prepared/microns --seg-version 1300 --size 256 256 64
    $ neurons-jax prepare generic fib25.h5:image prepared/fib25 --label fib25.h5:labels --voxel-size 10 10 10
"""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  neurons-jax prepare snemi3d data/snemi3d prepared/snemi3d
  neurons-jax prepare cremi3d data/cremi3d prepared/cremi3d --mito
  neurons-jax prepare microns public prepared/microns --seg-version 1300 --size 256 256 64
  neurons-jax prepare generic fib25.h5:image prepared/fib25 --label fib25.h5:labels --voxel-size 10 10 10
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..datasets.registry import kinds

    p.formatter_class, p.epilog = argparse.RawDescriptionHelpFormatter, EXAMPLES
    sub = p.add_subparsers(dest="kind", metavar="KIND", required=True,
                           help="dataset kind (KIND --help lists its options)")
    for kind in kinds("prepare"):
        sp = sub.add_parser(kind.name, help=kind.help, description=kind.help)
        public = " ('public': the public data)" if kind.root_optional else ""
        sp.add_argument("input", help=f"{kind.root_help}{public}")
        sp.add_argument("output", help="prepared root to write (created through a temporary directory)")
        sp.add_argument("--valid-fraction", type=float, default=0.2,
                        help="last fraction of z used as valid (default 0.2)")
        sp.add_argument("--overwrite", action="store_true", help="replace a prepared root made from other sources")
        sp.add_argument("--quiet", action="store_true", help="no progress bar")
        sp.add_argument("--allow-missing", action="store_true", default=None,
                        help="read missing chunks of store inputs as 0 (sparse stores); by default they are errors")
        if kind.prepare_options:
            g = sp.add_argument_group(f"{kind.name} options")
            for o in kind.prepare_options:
                o.add_to(g)


def reader_kwargs(args: argparse.Namespace) -> dict:
    """The reader options of ``args.kind`` given on the command line."""
    from ..datasets.registry import get_kind, given_options

    return given_options(get_kind(args.kind, "prepare").prepare_options, args)


def run(args: argparse.Namespace) -> int:
    import neurons_jax as nj

    kind = nj.datasets.get_kind(args.kind, "prepare")
    source = None if kind.root_optional and args.input == "public" else args.input
    out = nj.datasets.prepare(args.kind, source, args.output, valid_fraction=args.valid_fraction,
                              allow_missing=args.allow_missing,
                              overwrite=args.overwrite, progress=not args.quiet, **reader_kwargs(args))
    print(out)
    return 0
