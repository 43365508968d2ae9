"""``neurons-jax download DATASET --output DIR``: get a public dataset, then ``prepare`` it.

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

_HELP = {
    "snemi3d": "AC3/AC4 inputs and labels (HDF5) from the public mirror, or --link a copy",
    "cremi3d": "CREMI samples A/B/C (HDF5) from cremi.org",
    "mitoem2": "the eight Dataset00N_ME2-* zips from Zenodo, extracted (nnU-Net layout)",
    "microns": "nothing by default (streamed); --cache stores a crop as local zarr3",
}


def _common(p: argparse.ArgumentParser, dataset: str) -> None:
    p.add_argument("--output", "-o", type=Path, default=Path("data") / dataset,
                   help=f"destination directory (default: data/{dataset})")
    net = p.add_argument_group("network")
    net.add_argument("--mirror", metavar="URL",
                     help=f"base URL replacing the default source (env NEURONS_JAX_MIRROR_{dataset.upper()})")
    if dataset == "microns":  # TensorStore does the transfers: no downloader options
        p.set_defaults(retries=4, backoff=1.0, timeout=30.0, insecure=False)
    else:
        net.add_argument("--retries", type=int, default=4, help="retries on transient errors (default 4)")
        net.add_argument("--backoff", type=float, default=1.0,
                         help="first retry delay in seconds, doubled each time (default 1)")
        net.add_argument("--timeout", type=float, default=30.0,
                         help="socket time-out in seconds (default 30)")
        net.add_argument("--insecure", action="store_true",
                         help="skip TLS certificate checks (expired certificates); checksums still apply")
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
    parser.formatter_class, parser.epilog = argparse.RawDescriptionHelpFormatter, EXAMPLES
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for name, help_ in _HELP.items():
        p = sub.add_parser(name, help=help_, description=help_)
        _common(p, name)
        if name != "microns":
            p.add_argument("--checksums", metavar="URL|FILE",
                           help="checksum document: Zenodo record JSON or '<hex>  <name>' lines "
                                f"(env NEURONS_JAX_CHECKSUMS_{name.upper()})")
        if name in ("snemi3d", "mitoem2"):
            p.add_argument("--link", metavar="DIR", type=Path,
                           help="symlink an existing copy in DIR instead of downloading")
        if name == "cremi3d":
            p.add_argument("--samples", nargs="+", default=["A", "B", "C"], metavar="S",
                           help="samples to fetch among A B C (default: all)")
            p.add_argument("--padded", action="store_true", help="fetch the padded variants")
        if name == "mitoem2":
            p.add_argument("--datasets", nargs="+", metavar="NAME",
                           help="sub-datasets (full name, cell type or number; default: all 8)")
            p.add_argument("--keep-zips", action="store_true", help="keep the zips after extraction")
        if name == "microns":
            p.add_argument("--cache", action="store_true",
                           help="write the crop to a local zarr3 store (default: nothing to do)")
            p.add_argument("--origin", nargs=3, type=int, metavar=("X", "Y", "Z"),
                           help="crop origin, x y z in segmentation voxels (default: the reader's)")
            p.add_argument("--size", nargs="+", type=int, metavar="N",
                           help="crop size x y z (or one value for a cube; default: the reader's)")
            p.add_argument("--seg-version", nargs="+", default=["1300"], metavar="V",
                           help="segmentation versions among 117 343 943 1300, or 'all' (default 1300)")


def run(args: argparse.Namespace) -> int:
    from ..download import Options, download

    opts = Options(
        retries=args.retries, backoff=args.backoff, timeout=args.timeout, progress=not args.quiet,
        mirror=args.mirror, checksums=getattr(args, "checksums", None), verify_tls=not args.insecure,
    )
    if args.retries < 0 or args.timeout <= 0 or args.backoff < 0:
        raise ValueError("--retries must be >= 0, --timeout > 0 and --backoff >= 0")
    kw: dict = {}
    if args.dataset in ("snemi3d", "mitoem2"):
        kw["link"] = args.link
    if args.dataset == "cremi3d":
        kw.update(samples=args.samples, padded=args.padded)
    if args.dataset == "mitoem2":
        kw.update(datasets=args.datasets, keep_zips=args.keep_zips)
    if args.dataset == "microns":
        size = args.size
        if size is not None and len(size) not in (1, 3):
            raise ValueError(f"--size: expected 1 or 3 values (x y z); got {len(size)}")
        kw.update(cache=args.cache, origin=args.origin, size=size, seg_versions=args.seg_version)
    result = download(args.dataset, args.output, options=opts, **kw)
    if not args.quiet:
        for p in result or []:
            print(p)
        if result and args.dataset == "microns":
            print("cached crops are prepared roots: nj.datasets.microns(<one of the paths above>, "
                  "split=...) reads them offline", file=sys.stderr)
        elif result:
            print(f"next: neurons-jax prepare {args.dataset} {args.output} prepared/{args.dataset}",
                  file=sys.stderr)
    return 0
