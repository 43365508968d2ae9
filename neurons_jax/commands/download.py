"""``neurons-jax download DATASET --output DIR``: get a public dataset, then ``prepare`` it.

One sub-command per registered kind with a downloader (``nj.datasets.register_kind``); its
options come from the kind's ``Downloader`` record.

Example:
    $ neurons-jax download snemi3d --output data/snemi3d
    $ neurons-jax download snemi3d --output data/snemi3d --link /scratch/SNEMI3D
    $ neurons-jax download cremi3d --output data/cremi3d --samples A B
    $ neurons-jax download mitoem2 --output data/mitoem2 --datasets Beta Pyra
    $ neurons-jax download microns --output data/microns --cache --size 256 256 64
    $ NEURONS_JAX_MIRROR_CREMI3D=http://mirror.lan/cremi/ neurons-jax download cremi3d ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _common(p: argparse.ArgumentParser, dataset: str, http: bool) -> None:
    p.add_argument("--output", "-o", type=Path, default=Path("data") / dataset,
                   help=f"destination directory (default: data/{dataset})")
    net = p.add_argument_group("network")
    net.add_argument("--mirror", metavar="URL",
                     help=f"base URL replacing the default source (env NEURONS_JAX_MIRROR_{dataset.upper()})")
    if not http:  # e.g. TensorStore does the transfers: no downloader options
        p.set_defaults(retries=4, backoff=1.0, timeout=30.0, insecure=False, checksums=None)
    else:
        net.add_argument("--retries", type=int, default=4, help="retries on transient errors (default 4)")
        net.add_argument("--backoff", type=float, default=1.0,
                         help="first retry delay in seconds, doubled each time (default 1)")
        net.add_argument("--timeout", type=float, default=30.0,
                         help="socket time-out in seconds (default 30)")
        net.add_argument("--insecure", action="store_true",
                         help="skip TLS certificate checks (expired certificates); checksums still apply")
        p.add_argument("--checksums", metavar="URL|FILE",
                       help="checksum document: Zenodo record JSON or '<hex>  <name>' lines "
                            f"(env NEURONS_JAX_CHECKSUMS_{dataset.upper()})")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or messages")


EXAMPLES = """examples:
  neurons-jax download snemi3d --output data/snemi3d
  neurons-jax download snemi3d --output data/snemi3d --link /scratch/SNEMI3D
  neurons-jax download cremi3d --output data/cremi3d --samples A B
  neurons-jax download mitoem2 --output data/mitoem2 --datasets Beta Pyra
  neurons-jax download microns --output data/microns --cache --size 256 256 64
then: neurons-jax prepare DATASET data/DATASET prepared/DATASET
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..datasets.registry import kinds

    parser.formatter_class, parser.epilog = argparse.RawDescriptionHelpFormatter, EXAMPLES
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for kind in kinds("download"):
        d = kind.downloader
        help_ = d.help or kind.help
        p = sub.add_parser(kind.name, help=help_, description=help_)
        _common(p, kind.name, d.http)
        for o in d.options:
            o.add_to(p)


def run(args: argparse.Namespace) -> int:
    from ..datasets.registry import get_kind, given_options
    from ..download import Options, download

    if args.retries < 0 or args.timeout <= 0 or args.backoff < 0:
        raise ValueError("--retries must be >= 0, --timeout > 0 and --backoff >= 0")
    opts = Options(
        retries=args.retries, backoff=args.backoff, timeout=args.timeout, progress=not args.quiet,
        mirror=args.mirror, checksums=getattr(args, "checksums", None), verify_tls=not args.insecure,
    )
    downloader = get_kind(args.dataset, "download").downloader
    result = download(args.dataset, args.output, options=opts, **given_options(downloader.options, args))
    if not args.quiet:
        for p in result or []:
            print(p)
        if result and downloader.done:
            print(downloader.done.format(kind=args.dataset, output=args.output), file=sys.stderr)
    return 0
