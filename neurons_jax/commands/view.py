"""``neurons-jax view KIND=ROOT [...]``: a Neuroglancer viewer of datasets on 127.0.0.1.

Layers per dataset (one volume: ``--volume`` picks it, default the first of ``--split``): the
image, the native labels, the union classes and the instances, each at its physical voxel size
(nm), so several datasets line up. Prints the URL and serves until Ctrl-C; ``--screenshot FILE``
renders the view to a PNG in a headless Chromium and exits instead. Needs
``pip install 'neurons-jax[view]'`` (and Chromium for ``--screenshot``).

Example:
    $ neurons-jax view snemi3d=demo_out/prepared/snemi3d
    $ neurons-jax view mitoem2=demo_out/prepared/mitoem2 --volume Beta/beta_000 --screenshot beta.png
"""

from __future__ import annotations

import argparse
import time

from ..datasets.base import SPLITS

EXAMPLES = """examples:
  neurons-jax view snemi3d=demo_out/prepared/snemi3d
  neurons-jax view mitoem2=demo_out/prepared/mitoem2 --volume Beta/beta_000 --screenshot beta.png
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..datasets.registry import kind_names
    from ..viewer.server import LAYOUTS

    p.formatter_class, p.epilog = argparse.RawDescriptionHelpFormatter, EXAMPLES
    p.add_argument("datasets", nargs="+", metavar="KIND=ROOT",
                   help=f"datasets to show (KIND one of {', '.join(kind_names())}; a prepared root may "
                        "be given alone)")
    p.add_argument("--split", choices=SPLITS, default="train")
    p.add_argument("--volume", default=None, help="volume name (or index) within the split (default: the first)")
    p.add_argument("--layout", choices=LAYOUTS, default="4panel")
    p.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (default: any free one)")
    p.add_argument("--screenshot", metavar="FILE", default=None,
                   help="write a PNG of the view through a headless Chromium and exit")
    p.add_argument("--size", type=int, nargs=2, default=(1024, 768), metavar=("W", "H"),
                   help="screenshot size in pixels")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the screenshot")


def run(args: argparse.Namespace) -> int:
    from ..cli import CommandError

    try:
        from ..viewer import view
        from ..viewer.layers import class_legend
    except ImportError as e:
        raise CommandError(str(e)) from None
    if args.screenshot is not None:
        from ..viewer.browser import NO_BROWSER, find_browser

        if find_browser() is None:
            raise CommandError(f"--screenshot: {NO_BROWSER}")
        if min(args.size) < 16 or max(args.size) > 8192:
            raise ValueError(f"--size must be 16..8192 pixels each; got {args.size[0]} {args.size[1]}")
    try:
        viewer = view(args.datasets, split=args.split, volume=args.volume, layout=args.layout, port=args.port,
                      screenshot=args.screenshot, size=tuple(args.size), timeout=args.timeout)
    except ImportError as e:
        raise CommandError(str(e)) from None
    except TimeoutError as e:
        raise CommandError(str(e)) from None
    for note in viewer.notes:
        print(f"note: {note}")
    layers = ", ".join(layer.name for layer in viewer.state.layers)
    if args.screenshot is not None:
        print(f"wrote {args.screenshot} (layers: {layers})")
        return 0
    print(f"Neuroglancer: {viewer.get_viewer_url()}")
    print(f"layers: {layers}; classes: {class_legend()}")
    print("serving on 127.0.0.1; Ctrl-C to stop", flush=True)
    while True:
        time.sleep(3600)
