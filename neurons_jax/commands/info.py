"""``neurons-jax info ROOT [--kind K]``: volumes, shapes, voxel sizes and label classes of a root.

A prepared root names its kind in ``metadata.json``; a native root needs ``--kind``. Label
classes come from the unique ids mapped through the dataset's union rule; at most
``--max-voxels`` label voxels are read per volume (all of a smaller volume, else evenly spread
windows, and the line says which share was seen). Exits 2 with one line on stderr when no split
of the root is readable.

Example:
    $ neurons-jax info prepared/cremi3d
    $ neurons-jax info data/snemi3d --kind snemi3d --splits train valid
"""

from __future__ import annotations

import argparse

from ..datasets.base import SPLITS

EXAMPLES = """examples:
  neurons-jax info prepared/cremi3d
  neurons-jax info data/snemi3d --kind snemi3d --splits train valid
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..datasets.registry import kinds

    public = [k.name for k in kinds() if k.root_optional]
    also = f" ({', '.join(public)}: also a URL or 'public')" if public else ""
    p.formatter_class, p.epilog = argparse.RawDescriptionHelpFormatter, EXAMPLES
    p.add_argument("root", help=f"native or prepared dataset root{also}")
    p.add_argument("--kind", choices=[k.name for k in kinds()], default=None,
                   help="dataset kind (needed for a native root)")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="splits to show")
    p.add_argument("--max-voxels", type=int, default=1 << 24,
                   help="label voxels read per volume for its classes (default 2^24; larger labels are sampled)")


def run(args: argparse.Namespace) -> int:
    import neurons_jax as nj

    if args.max_voxels < 1:
        raise ValueError(f"--max-voxels must be >= 1; got {args.max_voxels}")
    optional = args.kind is not None and nj.datasets.get_kind(args.kind).root_optional
    root = None if optional and args.root == "public" else args.root
    print(nj.datasets.describe(root, args.kind, splits=tuple(args.splits), max_voxels=args.max_voxels))
    return 0
