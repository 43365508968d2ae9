"""One pass over a volume pair, z slab by z slab, into a :class:`Tally` of raw counts.

A slab holds at most ``max_bytes`` of working memory (``slab_voxels``: the image, the label with
one halo plane above and below, the union classes and the temporaries of the label tallies, per
voxel), and at least one whole plane. Per slab:

* image values -> :class:`~neurons_jax.exploration.histogram.StreamingHistogram` (exact for
  integer images, within one bin width for float images);
* labels -> union classes (``nj.ops.union_semantic``) -> a ``bincount`` of the five classes;
* instances: for a rule with ``instances="ids"`` the native ids of non-background classes
  (:class:`~neurons_jax.exploration.labels.IdSizes`, classes from ``union_semantic`` of the
  ids); for ``"boundary_separated"`` (MitoEM2) the 6-connected components of the interior
  class, joined across slabs (:class:`~neurons_jax.exploration.labels.SlabComponents`); their
  sizes count interior voxels (the boundary class is not given to an instance);
* boundary fraction: labelled voxels (non-background class) with a 6-neighbour of another
  native id, over all labelled voxels.

Tallies merge (:meth:`Tally.merge`), so a cell type's row sums its volumes.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> from neurons_jax.datasets.base import VolumePair
    >>> img = nj.Volume.from_array(np.arange(64, dtype=np.uint8).reshape(4, 4, 4), (30, 6, 6))
    >>> lab = nj.Volume.from_array(np.repeat([0, 1, 1, 2], 16).reshape(4, 4, 4).astype(np.uint32), (30, 6, 6))
    >>> t = tally_pair(VolumePair("v", img, lab), "snemi3d", max_bytes=1 << 10)
    >>> t.chunks, t.class_counts.tolist(), sorted(t.instance_sizes["neuron"].tolist())
    (4, [16, 48, 0, 0, 0], [16, 32])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..ops import union_semantic
from ..rules import UNION_CLASSES, LabelRule, get_rule
from .histogram import StreamingHistogram
from .labels import IdSizes, SlabComponents, boundary_voxels, slab_ranges

MAX_BYTES = 512 << 20  # default working memory of one slab


def slab_voxels(image_dtype, label_dtype, max_bytes: int = MAX_BYTES) -> int:
    """Voxels per slab within ``max_bytes``: image + 4 label copies (read, unique's sort,
    comparisons) + 16 bytes of classes, masks and component ids per voxel."""
    per = np.dtype(image_dtype).itemsize * 2 + 16
    if label_dtype is not None:
        per += np.dtype(label_dtype).itemsize * 4
    return max(1, int(max_bytes) // per)


@dataclass
class Tally:
    """Raw counts of one volume (or of several, merged)."""

    voxels: int = 0
    chunks: int = 0
    histogram: StreamingHistogram | None = None
    class_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(UNION_CLASSES), np.int64))
    instance_sizes: dict[str, np.ndarray] = field(default_factory=dict)  # class -> voxels per instance
    instance_method: str = ""
    boundary: int = 0
    labelled: int = 0
    has_label: bool = False

    def merge(self, other: Tally) -> None:
        self.voxels += other.voxels
        self.chunks += other.chunks
        if self.histogram is None:
            self.histogram = StreamingHistogram(other.histogram.dtype, other.histogram.max_bins)
        self.histogram.merge(other.histogram)
        self.class_counts = self.class_counts + other.class_counts
        for c, s in other.instance_sizes.items():
            self.instance_sizes[c] = np.concatenate([self.instance_sizes.get(c, np.zeros(0, np.int64)), s])
        self.instance_method = self.instance_method or other.instance_method
        self.boundary += other.boundary
        self.labelled += other.labelled
        self.has_label = self.has_label or other.has_label


def tally_pair(pair, rule: str | LabelRule, *, max_bytes: int = MAX_BYTES,
               progress: Callable[[int], None] | None = None) -> Tally:
    """Stream ``pair`` (a ``VolumePair``) slab by slab; ``progress(voxels)`` after each slab."""
    rule = get_rule(rule)
    image, label = pair.image, pair.label
    shape = tuple(image.shape)
    t = Tally(histogram=StreamingHistogram(image.dtype), has_label=label is not None)
    mode = rule.instances if label is not None else "none"
    ids = IdSizes() if mode == "ids" else None
    comps = SlabComponents() if mode == "boundary_separated" else None
    t.instance_method = {"ids": "native ids of non-background classes",
                         "boundary_separated": f"6-connected components of native id {rule.interior} "
                                               "(interior voxels; the boundary class is not counted)",
                         "none": ""}[mode]
    for z0, z1 in slab_ranges(shape, slab_voxels(image.dtype, None if label is None else label.dtype, max_bytes)):
        box = (slice(z0, z1), slice(None), slice(None))
        t.histogram.add(image.read(box))
        if label is not None:
            h0, h1 = max(0, z0 - 1), min(shape[0], z1 + 1)  # one halo plane each side
            lab = label.read((slice(h0, h1), slice(None), slice(None)))
            core = lab[z0 - h0 : z0 - h0 + (z1 - z0)]
            sem = union_semantic(lab, rule)
            csem = sem[z0 - h0 : z0 - h0 + (z1 - z0)]
            t.class_counts += np.bincount(csem.reshape(-1), minlength=len(UNION_CLASSES))[: len(UNION_CLASSES)]
            labelled = sem > 0
            t.labelled += int(np.count_nonzero(csem))
            t.boundary += boundary_voxels(lab, labelled, z0 - h0, z0 - h0 + (z1 - z0))
            del sem, labelled
            if ids is not None:
                ids.add(core)
            elif comps is not None:
                comps.add(core == rule.interior)
            del lab, core, csem
        t.voxels += (z1 - z0) * shape[1] * shape[2]
        t.chunks += 1
        if progress is not None:
            progress((z1 - z0) * shape[1] * shape[2])
    if ids is not None:
        cls = union_semantic(ids.ids, rule)
        for c in np.unique(cls[cls > 0]):
            t.instance_sizes[UNION_CLASSES[int(c)]] = ids.counts[cls == c]
    elif comps is not None:
        t.instance_sizes[UNION_CLASSES[rule.union_class_of(rule.interior)]] = comps.sizes()
    return t
