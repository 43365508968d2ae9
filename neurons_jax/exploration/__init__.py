"""Dataset exploration: streamed statistics, pictures and an offline HTML report.

``nj.explore(data, out_dir)`` (``neurons-jax explore KIND=ROOT ... -o DIR``) reports, per
dataset, split and volume: shape, voxel size, physical extent, dtypes, intensity percentiles and
histogram, union-class shares, instances per class (count; sizes in voxels and µm³; a log2 size
histogram), the boundary fraction, and for MitoEM2 one row per cell type; with an XY montage
(classes and instances over the image) and XZ/YZ sections at physical aspect. Volumes are read
in z slabs of bounded memory. Modules: ``histogram`` (streaming intensity histogram), ``labels``
(per-slab label tallies), ``streaming`` (one pass over a volume pair), ``stats`` (figures),
``pictures``, ``report`` (HTML), ``core`` (``explore``).

Example:
    >>> import neurons_jax as nj
    >>> stats = nj.explore("snemi3d=demo_out/workspace/snemi3d", "explore_out")   # doctest: +SKIP
    >>> stats["datasets"]["snemi3d"]["splits"]["train"]["volumes"][0]["instances"]["count"]  # doctest: +SKIP
    28
"""

from __future__ import annotations

from .core import explore, resolve
from .histogram import StreamingHistogram
from .streaming import Tally, tally_pair

__all__ = ["StreamingHistogram", "Tally", "explore", "resolve", "tally_pair"]
