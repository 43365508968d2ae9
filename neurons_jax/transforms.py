"""The Loader's Grain transforms, one small class each; all pure functions of the element.

Per dataset, before the mix (each transform holds its own dataset's facts, no index lookups):
* ``HostLabels``: native labels -> union classes (the dataset's rule) and compact instance
  sources, packed into one uint32 label ``(instance << 3) | semantic`` so one nearest-neighbour
  warp moves both; adds the sample's ``voxel_size`` and the ``instance_classes`` (interior,
  boundary) its instances are separated by ((0, 0): instances come from the ids).
After the mix and the per-process slice:
* ``DrawParams`` (a Grain random map): the sample's augmentation params from its per-element RNG;
* ``FinishOnHost``: the whole device stage per sample on the CPU (``stage.finish``, in workers);
* ``stack_batch``: the Grain ``batch_fn``.

Example:
    >>> import numpy as np
    >>> from neurons_jax.transforms import HostLabels
    >>> t = HostLabels("mitoem2", voxel_sizes=[(30.0, 8.0, 8.0)])
    >>> e = t({"label": np.array([[[0, 1, 2]]], np.uint8), "volume": 0})
    >>> e["packed"].tolist(), e["instance_classes"].tolist(), e["voxel_size"].tolist()
    ([[[0, 3, 4]]], [3, 4], [30.0, 8.0, 8.0])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .rules import class_index, get_rule
from .stage import MAX_INSTANCES, finish, pack_labels


class HostLabels:
    """Grain map of one dataset: adds ``packed`` labels, ``voxel_size`` and ``instance_classes``
    to a raw element and drops the native labels."""

    def __init__(self, kind_or_rule, ignore_classes: Sequence[str] = (),
                 voxel_sizes: Sequence[Sequence[float]] | None = None):
        self.rule = get_rule(kind_or_rule)
        self.ignore_classes = tuple(ignore_classes)
        for c in self.ignore_classes:
            class_index(c)
        self.voxel_sizes = None if voxel_sizes is None else np.asarray(voxel_sizes, np.float32).reshape(-1, 3)
        bsep = self.rule.instances == "boundary_separated"
        self.instance_classes = np.array(self.rule.instance_classes() if bsep else (0, 0), np.uint8)
        self.every_id_kept = _keeps_every_id(self.rule, self.ignore_classes)

    def __call__(self, element: dict) -> dict:
        from .ops import renumber, union_semantic

        label = element.pop("label")
        semantic = union_semantic(label, self.rule, ignore_classes=self.ignore_classes)
        if self.rule.instances == "ids":
            # ids that fit beside the 3 class bits are packed as they are; larger ones (MICrONS
            # uint64) are renumbered within the patch first
            inst = label if self.every_id_kept else np.where(semantic != 0, label, 0)
            if int(inst.max(initial=0)) > MAX_INSTANCES:
                inst, _ = renumber(inst)
                if int(inst.max(initial=0)) > MAX_INSTANCES:
                    raise ValueError(f"{self.rule.kind}: more than {MAX_INSTANCES} instances in one patch")
        else:  # boundary-separated or none: instances are made after the warp, from semantic
            inst = np.zeros(label.shape, np.uint32)
        element["packed"] = pack_labels(semantic, inst)
        element["instance_classes"] = self.instance_classes
        if self.voxel_sizes is not None:
            element["voxel_size"] = self.voxel_sizes[int(element["volume"])]
        return element


def _keeps_every_id(rule, ignore_classes) -> bool:
    """True when every non-zero id maps to a kept class (semantic == 0 exactly where id == 0)."""
    ignored = {class_index(c) for c in ignore_classes} | {0}
    ranges = rule.ranges
    if not ranges or ranges[0][0] != 1 or ranges[-1][1] < 2**64 - 1:
        return False
    contiguous = all(hi + 1 == lo for (_, hi, _), (lo, _, _) in zip(ranges, ranges[1:]))
    return contiguous and not any(c in ignored for _, _, c in ranges)


class DrawParams:
    """Grain random map: draws one sample's augmentation params from its per-element RNG, for
    the voxel size of the sample's own volume (a MitoEM2 dataset mixes 16³ and 30×8×8 nm)."""

    def __init__(self, cfg, patch_shape: Sequence[int]):
        self.cfg, self.patch_shape = cfg, tuple(patch_shape)

    def __call__(self, element: dict, rng: np.random.Generator) -> dict:
        from . import augment

        vs = tuple(float(v) for v in element["voxel_size"])
        element["params"] = augment.draw(self.cfg, rng, self.patch_shape, vs)
        return element


class FinishOnHost:
    """Grain map running the whole device stage per sample on the CPU (inside the workers)."""

    def __init__(self, patch_shape: Sequence[int]):
        self.patch_shape = tuple(patch_shape)

    def __call__(self, element: dict) -> dict:
        t0 = time.perf_counter()
        p = element.pop("params", None)
        out = finish(
            element.pop("image")[None],
            element.pop("packed")[None],
            element.pop("mask")[None],
            None if p is None else [p],
            self.patch_shape,
            element["instance_classes"][None],
        )
        element.update({k: v[0] for k, v in out.items()})
        element["host_s"] = np.float64(time.perf_counter() - t0)
        return element


def stack_batch(elements: Sequence[dict]) -> dict:
    """Grain batch_fn: stack arrays, keep augmentation params as a list."""
    out: dict[str, Any] = {}
    for k in elements[0]:
        vals = [e[k] for e in elements]
        out[k] = vals if k == "params" else np.stack([np.asarray(v) for v in vals])
    return out
