"""``neurons-jax train``: the Flax UNet example (examples/train_flax.py) on mixed datasets.

Without ``--dataset`` it trains on the sample workspace, cached and reused (see
``examples/train_flax.py``); ``--smoke`` shrinks only what is not given explicitly; ``--pad``
allows patches larger than a volume; ``--targets affinities lsd`` adds an affinity head (masked
BCE) and an LSD head (masked MSE), computed by the Loader from the warped labels. A NaN/inf image
voxel stops it with a one-line error naming the volume and the position (exit 2), and so does a
loss that is not finite.

Example:
    $ neurons-jax train --smoke
    $ neurons-jax train --smoke --targets affinities lsd
    $ neurons-jax train --dataset snemi3d=demo_out/prepared/snemi3d:1 --dataset mitoem2=demo_out/prepared/mitoem2:2 \
          --steps 500 --ckpt-dir ckpt --ckpt-every 100
"""

from __future__ import annotations

import argparse

from ._example import load_train_example


def add_arguments(p: argparse.ArgumentParser) -> None:
    load_train_example().add_arguments(p)


def run(args: argparse.Namespace) -> int:
    ex = load_train_example()
    out = ex.train(ex.config_from_args(args))
    print(f"loss {out['losses'][0]:.4f} -> {out['losses'][-1]:.4f}  {out['samples_per_s']:.1f} samples/s  "
          f"data wait {out['data_wait_share']:.1%}" if out["losses"] else "nothing to do (already at --steps)")
    return 0
