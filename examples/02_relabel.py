"""Relabel a real segmentation with the label ops, on the CPU or (CuPy array in) the GPU.

    python examples/02_relabel.py [../shared/data/pinky40_seg_256.npz]

Connected components split every id into its connected pieces (numbered as cc3d numbers
C-ordered input); renumber makes ids compact; union_semantic maps ids to the 5 union classes.
"""

import sys
import time

import numpy as np

import neurons_jax as nj


def main(path: str) -> None:
    labels = np.load(path)["labels"]
    try:
        import cupy

        if nj.backend.gpu_available():
            labels = cupy.asarray(labels)  # the same calls now run CUDA kernels
    except ImportError:
        pass

    t0 = time.perf_counter()
    ids, n = nj.ops.connected_components(labels, connectivity=6)
    t1 = time.perf_counter()
    compact, mapping = nj.ops.renumber(labels)
    semantic = nj.ops.union_semantic(labels, "microns")
    print(f"{labels.shape} {labels.dtype}: {len(mapping) - 1} ids -> {n} 6-connected components "
          f"in {(t1 - t0) * 1e3:.0f} ms; compact ids up to {int(compact.max())}; "
          f"neuron voxels {float((semantic == 1).mean()):.1%}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/pinky40_seg_256.npz")
