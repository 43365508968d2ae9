"""What a Neuroglancer view shows: lazy arrays and layer records of a dataset or a batch.

A dataset volume gives four layers: ``image``, ``labels`` (native ids), ``classes`` (union
classes through the dataset's rule, coloured as ``neurons-jax preview`` colours them) and
``instances`` (native ids of non-background classes; for a boundary-separated rule such as
MitoEM2's, ``nj.ops.boundary_separated_instances`` of the whole volume when it has at most
``MAX_INSTANCE_VOXELS`` voxels, else the layer is left out with a note). A Loader batch gives
one sample: ``image`` (each channel), ``semantic``, ``instance``, ``mask`` and any other array
of the sample's shape (targets). Layers read lazily, by region, as the browser asks for chunks
(:class:`LazyArray` wraps ``Volume.read``), except the instances of a boundary-separated rule.

Each layer has its own coordinate space in nm with the volume's voxel size (z, y, x), so
datasets of different voxel sizes line up in physical space.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> lab = nj.Volume.from_array(np.array([[[0, 5], [2_000_001, 5]]], np.uint64), (40, 4, 4))
    >>> classes = LazyArray(lab, "classes", "cremi3d")
    >>> classes.shape, classes.dtype, classes[0:1, 0:2, 0:2].tolist()
    ((1, 2, 2), dtype('uint8'), [[[0, 1], [3, 1]]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ops import boundary_separated_instances, union_semantic
from ..rules import UNION_CLASSES, LabelRule, get_rule

MAX_INSTANCE_VOXELS = 1 << 27  # whole-volume instances of a boundary-separated rule up to this
CLASS_COLOURS = {1: "#3c82ff", 2: "#ff3c3c", 3: "#3cdc5a", 4: "#ffc828"}
BATCH_KEYS = ("image", "semantic", "instance", "mask")
NOT_VOLUMES = ("dataset", "position", "volume")


class LazyArray:
    """``shape``, ``dtype`` and ``[slices]`` over a Volume: ``"raw"`` values, union ``"classes"``
    of a rule, or ``"instances"`` (ids of non-background classes)."""

    def __init__(self, volume, what: str = "raw", rule: str | LabelRule | None = None):
        if what not in ("raw", "classes", "instances"):
            raise ValueError(f"LazyArray: what must be raw, classes or instances; got {what!r}")
        self.volume, self.what = volume, what
        self.rule = None if rule is None else get_rule(rule)
        self.shape = tuple(volume.shape)
        self.dtype = np.dtype(np.uint8) if what == "classes" else volume.dtype

    def __getitem__(self, box) -> np.ndarray:
        a = self.volume[box]
        if self.what == "raw":
            return a
        sem = union_semantic(a, self.rule)
        return sem if self.what == "classes" else np.where(sem > 0, a, 0).astype(a.dtype, copy=False)


@dataclass
class Layer:
    """One layer: a name, an array (NumPy or lazy), ``image`` or ``segmentation``, its voxel size
    (z, y, x nm), for segmentations fixed colours of some ids (the union classes), and whether it
    is shown at first (the others are one click away in the layer bar)."""

    name: str
    data: Any
    kind: str
    voxel_size: tuple[float, float, float]
    colours: Mapping[int, str] = field(default_factory=dict)
    visible: bool = True


def _classes_layer(name: str, data, vs, visible: bool = False) -> Layer:
    return Layer(name, data, "segmentation", vs, colours=CLASS_COLOURS, visible=visible)


def pair_layers(pair, rule: str | LabelRule, prefix: str = "",
                max_instance_voxels: int = MAX_INSTANCE_VOXELS) -> tuple[list[Layer], list[str]]:
    """(layers, notes) of one ``VolumePair`` under ``rule``."""
    rule = get_rule(rule)
    vs = tuple(float(v) for v in pair.image.require_voxel_size("a Neuroglancer view"))
    layers = [Layer(f"{prefix}image", LazyArray(pair.image), "image", vs)]
    notes: list[str] = []
    if pair.label is None:
        return layers, notes
    layers.append(Layer(f"{prefix}labels", LazyArray(pair.label), "segmentation", vs, visible=False))
    classes = _classes_layer(f"{prefix}classes", LazyArray(pair.label, "classes", rule), vs)
    layers.append(classes)
    instances = None
    if rule.instances == "ids":
        instances = LazyArray(pair.label, "instances", rule)
    elif rule.instances == "boundary_separated":
        if pair.label.size <= max_instance_voxels:
            instances = boundary_separated_instances(pair.label.read(), rule.interior, rule.boundary)[0]
        else:
            notes.append(f"{pair.name}: no instances layer ({pair.label.size} voxels > "
                         f"{max_instance_voxels}; its instances need the whole volume)")
    if instances is not None:
        layers.append(Layer(f"{prefix}instances", instances, "segmentation", vs))
    else:
        classes.visible = True  # no instances: the classes are shown
    return layers, notes


def batch_layers(batch: Mapping[str, Any], sample: int = 0,
                 voxel_size: Sequence[float] | None = None) -> list[Layer]:
    """Layers of sample ``sample`` of a Loader batch (``image`` (B, Z, Y, X, C) and every
    (B, Z, Y, X[, C]) array: semantic, instance, mask, targets)."""
    if "image" not in batch:
        raise ValueError(f"view: a batch needs an 'image' array (B, Z, Y, X, C); keys: {sorted(batch)}")
    image = np.asarray(batch["image"])
    if image.ndim != 5:
        raise ValueError(f"view: batch['image'] must be (B, Z, Y, X, C); got shape {image.shape}")
    B = image.shape[0]
    if not -B <= int(sample) < B:
        raise ValueError(f"view: sample {sample} is outside the batch of {B}")
    vs = tuple(float(v) for v in (voxel_size or (1.0, 1.0, 1.0)))
    spatial = image.shape[1:4]
    layers = []
    order = [k for k in BATCH_KEYS if k in batch] + sorted(k for k in batch if k not in BATCH_KEYS)
    for key in order:
        if key in NOT_VOLUMES:
            continue
        a = np.asarray(batch[key])
        if a.ndim < 4 or tuple(a.shape[1:4]) != spatial:
            continue  # not a per-voxel array of this batch
        a = np.ascontiguousarray(a[int(sample)])
        channels = [a] if a.ndim == 3 else [a[..., c] for c in range(a.shape[-1])]
        for c, arr in enumerate(channels):
            name = key if len(channels) == 1 else f"{key}[{c}]"
            if key == "semantic":
                layers.append(_classes_layer(name, arr, vs))
            elif arr.dtype.kind in "ui" and key != "image" and key != "mask":
                layers.append(Layer(name, arr.astype(np.uint32, copy=False) if arr.dtype.itemsize < 4 else arr,
                                    "segmentation", vs, visible=key == "instance"))
            else:
                layers.append(Layer(name, arr.astype(np.float32, copy=False) if arr.dtype.kind == "b" else arr,
                                    "image", vs, visible=key == "image"))
    return layers


def class_legend() -> str:
    """``"1 neuron #3c82ff, ..."``: the colours of the classes layer."""
    return ", ".join(f"{i} {UNION_CLASSES[i]} {c}" for i, c in CLASS_COLOURS.items())
