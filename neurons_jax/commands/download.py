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
    $ NEURONS_JAX_NET_TIMEOUT=30 neurons-jax download mitoem2 --retries 5   # a slow link
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _common(p: argparse.ArgumentParser, dataset: str, http: bool) -> None:
    from ..net import ENV_BACKOFF, ENV_RETRIES, ENV_TIMEOUT, Policy

    d = Policy()
    p.add_argument("--output", "-o", type=Path, default=Path("data") / dataset,
                   help=f"destination directory (default: data/{dataset})")
    net = p.add_argument_group("network (TensorStore's reads follow it too)")
    net.add_argument("--mirror", metavar="URL",
                     help=f"base URL replacing the default source (env NEURONS_JAX_MIRROR_{dataset.upper()})")
    net.add_argument("--retries", type=int, metavar="N",
                     help=f"retries of transient errors (default: env {ENV_RETRIES} or {d.retries})")
    net.add_argument("--backoff", type=float, metavar="S",
                     help=f"first retry delay in seconds, doubled each time (default: env {ENV_BACKOFF} "
                          f"or {d.backoff:g})")
    net.add_argument("--timeout", type=float, metavar="S",
                     help="seconds to wait for a connection, a host name lookup or the next bytes "
                          f"(default: env {ENV_TIMEOUT} or {d.timeout:g})")
    if not http:  # TensorStore does the transfers: no downloader-only options
        p.set_defaults(insecure=False, checksums=None)
    else:
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
    from .. import net
    from ..datasets.registry import get_kind, given_options
    from ..download import Options, download

    policy = network_policy(args)
    net.set_policy(policy)  # before any request: TensorStore's reads follow it too
    opts = Options(
        retries=policy.retries, backoff=policy.backoff, timeout=policy.timeout, progress=not args.quiet,
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


def network_policy(args: argparse.Namespace):
    """The environment's network policy (``neurons_jax.net``) with the flags given in place."""
    import dataclasses
    import math

    from .. import net

    for flag, want, ok in (
        ("retries", "an integer >= 0", lambda v: v >= 0),
        ("backoff", "seconds >= 0", lambda v: v >= 0),
        ("timeout", "seconds > 0", lambda v: v > 0),
    ):
        value = getattr(args, flag)
        if value is not None and not (math.isfinite(value) and ok(value)):
            raise ValueError(f"--{flag}: expected {want}; got {value:g}")
    given = {k: getattr(args, k) for k in ("retries", "backoff", "timeout") if getattr(args, k) is not None}
    return dataclasses.replace(net.policy(), **given)
