"""Mix two datasets, take one batch, look at it: the shortest useful neurons_jax program.

    python examples/01_mix_and_look.py [WORKDIR]

Writes the sample workspace (or reuses it), prepares SNEMI3D and MitoEM2, mixes them 1:2,
prints what one batch holds and writes ``WORKDIR/batch.png``. The work sits in ``main()``
under ``if __name__ == "__main__":``, as any script needs once it sets ``worker_count > 0``
(the Grain workers are spawned processes, which re-import the script).
"""

import sys
from pathlib import Path

import numpy as np

import neurons_jax as nj
from neurons_jax.preview import montage, save_png


def main(work: Path) -> None:
    native = nj.sample.write_workspace(work / "native")  # reused when it is already there
    snemi = nj.datasets.snemi3d(nj.datasets.prepare("snemi3d", native["snemi3d"], work / "snemi3d"))
    mito = nj.datasets.mitoem2(nj.datasets.prepare("mitoem2", native["mitoem2"], work / "mitoem2"))

    with nj.pipeline.Loader({"snemi3d": (snemi, 1.0), "mitoem2": (mito, 2.0)},
                            patch_shape=(8, 64, 64), batch_size=6, seed=0, output="numpy") as loader:
        batch = next(loader)
        for i, d in enumerate(batch["dataset"]):
            classes = [nj.UNION_CLASSES[c] for c in np.unique(batch["semantic"][i])]
            print(f"sample {i}: {loader.names[d]:8s} at z,y,x={tuple(batch['position'][i])} "
                  f"classes={classes} instances={int(batch['instance'][i].max())}")
        print(loader.timing_summary())
    print("wrote", save_png(montage(batch, loader.names, scale=2), work / "batch.png"))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "example_out"))
