"""``relabel_after_crop``: compact instance ids for a cropped patch whose ids fell apart.

Cropping (or warping) a patch can cut one instance into pieces that no longer touch, and it
leaves ids that are sparse and possibly uint64. Relabelling is connected components of the
ids (two neighbours join when their ids are equal) with compact numbering: uint32 ids 1..n in
C-raster order of each piece's first voxel, so every piece gets its own id. The backend
follows the input (cc3d on the CPU, the CCL kernels on a GPU); 4D input is a batch.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> patch = np.array([[7, 0, 7], [7, 0, 2**40]], np.uint64)   # id 7 cut in two
    >>> ids, n = nj.ops.relabel_after_crop(patch, connectivity=4)
    >>> ids.tolist(), n
    ([[1, 0, 2], [1, 0, 3]], 3)
"""

from __future__ import annotations

from .components import connected_components


def relabel_after_crop(labels, connectivity: int = 6):
    """``(ids, n)``: uint32 ids 1..n of the connected pieces of each id in ``labels``.

    Same arguments, layouts, errors and return values as ``connected_components``.
    """
    return connected_components(labels, connectivity)
