"""The Loader's Grain transforms, one small class each; all pure functions of the element.

The sources yield locations only (``sampling.Locations``: dataset, volume, context origin,
voxel size; no I/O). After the mix and the per-process slice:
* ``DrawParams`` (a Grain random map): the sample's augmentation params from its per-element RNG;
* ``ReadSample``: reads only the sample's own footprint (``augment.footprint``: the box of its
  context its warp reads, not the worst case of the config), then runs its dataset's
  ``HostLabels`` on that box;
* ``HostLabels`` (one per dataset, holding that dataset's facts): native labels -> union
  classes (the dataset's rule) and compact instance sources, packed into one uint32 label
  ``(instance << 3) | semantic`` so one nearest-neighbour warp moves both; adds the sample's
  ``voxel_size`` and the ``instance_classes`` (interior, boundary) its instances are separated
  by ((0, 0): instances come from the ids);
* ``FinishOnHost``: the whole device stage per sample on the CPU (``stage.finish``, in workers);
* ``stack_batch``: the Grain ``batch_fn`` (boxes of different shapes padded to the largest; an
  all-valid mask is never shipped: ``mask`` is then absent from the batch).

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

from .hostpack import union_pack
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
        self._tables: dict = {}

    def __call__(self, element: dict) -> dict:
        label = element.pop("label")
        keep = self.rule.instances == "ids"
        # one fused pass: class through the rule's step table, the id kept where the class is
        # not background, both packed (ops.union_semantic + stage.pack_labels, bit for bit)
        packed, top = union_pack(label, *self._table(label.dtype), keep_ids=keep)
        if keep and top > MAX_INSTANCES:
            packed = self._renumbered(label)
        element["packed"] = packed
        element["instance_classes"] = self.instance_classes
        if self.voxel_sizes is not None:
            element["voxel_size"] = self.voxel_sizes[int(element["volume"])]
        return element

    def _table(self, dtype) -> tuple[np.ndarray, np.ndarray]:
        from .ops.remap import _ignored, step_table

        dtype = np.dtype(np.uint8 if dtype == np.bool_ else dtype)
        if dtype not in self._tables:
            self._tables[dtype] = step_table(self.rule, dtype, _ignored(self.ignore_classes))
        return self._tables[dtype]

    def _renumbered(self, label: np.ndarray) -> np.ndarray:
        """Ids too large to sit beside the class bits (MICrONS uint64): renumbered in the patch."""
        from .ops import renumber, union_semantic

        semantic = union_semantic(label, self.rule, ignore_classes=self.ignore_classes)
        inst, _ = renumber(np.where(semantic != 0, label, 0))  # negative ids are background too
        if int(inst.max(initial=0)) > MAX_INSTANCES:
            raise ValueError(f"{self.rule.kind}: more than {MAX_INSTANCES} instances in one patch")
        return pack_labels(semantic, inst)


class DrawParams:
    """Grain random map: draws one sample's augmentation params from its per-element RNG, for
    the voxel size of the sample's own volume (a MitoEM2 dataset mixes 16³ and 30×8×8 nm).

    With training targets (``plan``, a ``target_stage.TargetPlan``) the sample's context holds
    the patch grown by the targets' margin (``grow``), and the random targets draw their numbers
    after the params (the params are those drawn without targets)."""

    def __init__(self, cfg, patch_shape: Sequence[int], plan=None):
        self.cfg, self.patch_shape, self.plan = cfg, tuple(patch_shape), plan

    def __call__(self, element: dict, rng: np.random.Generator) -> dict:
        from . import augment

        vs = tuple(float(v) for v in element["voxel_size"])
        if self.cfg is not None:
            element["params"] = augment.draw(self.cfg, rng, self.patch_shape, vs)
        if self.plan is not None:
            g = self.plan.grow(vs)
            element["grow"] = g
            if self.cfg is not None:
                grown = tuple(int(p + 2 * m) for p, m in zip(self.patch_shape, g))
                element["params"].context_shape = augment.context_shape(self.cfg, grown, vs)
            element.update(self.plan.draw(rng))
        return element


class ReadSample:
    """Grain map after ``DrawParams``: reads a sample's footprint box (its whole region without
    params), then its dataset's ``HostLabels``. Adds ``box`` ``[origin, shape]`` (2, 3) int64
    within ``params.context_shape`` when params are present; ``mask`` is None when all valid."""

    def __init__(self, sources: Sequence, labelers: Sequence[HostLabels], context_shape: Sequence[int],
                 plan=None):
        self.sources, self.labelers = list(sources), list(labelers)
        self.context_shape = np.asarray(context_shape, np.int64)
        self.plan = plan

    def __call__(self, element: dict) -> dict:
        from .augment import footprint, grow

        t0 = time.perf_counter()
        d = int(element["dataset"])
        src = self.sources[d]
        origin = element.pop("origin")
        p = element.get("params")
        g = None
        if self.plan is not None:
            g = element.get("grow")
            if g is None:
                g = element["grow"] = self.plan.grow(element["voxel_size"])
        if p is None and (src.train or g is None):
            lo, region, box = origin, (src.context_shape if src.train else src.patch_shape), None
        elif p is None:  # evaluation tiles with targets: the tile grown by the targets' margin
            lo, region, box = origin - g, tuple(int(n + 2 * m) for n, m in zip(src.patch_shape, g)), None
        else:
            # the sample's own context is centred in the loader's (the largest over voxel sizes);
            # with targets the grown label warp reads the most
            base = origin + (self.context_shape - np.asarray(p.context_shape, np.int64)) // 2
            o, shape = footprint(p if g is None else grow(p, g))
            lo, region, box = base + o, shape, np.stack([o, shape])
        image, label, mask = src.read_region(int(element["volume"]), lo, region, int(element["index"]))
        element.update(image=image, label=label, mask=mask)
        element["read_s"] = np.float64(time.perf_counter() - t0)
        element = self.labelers[d](element)
        if box is not None:
            element["box"] = box
        return element


class FinishOnHost:
    """Grain map running the whole device stage per sample on the CPU (inside the workers)."""

    def __init__(self, patch_shape: Sequence[int], plan=None):
        self.patch_shape, self.plan = tuple(patch_shape), plan

    def __call__(self, element: dict) -> dict:
        t0 = time.perf_counter()
        p = element.pop("params", None)
        box = element.pop("box", None)
        mask = element.pop("mask", None)
        extra = {}
        if self.plan is not None:
            extra = {
                "targets": self.plan, "grow": element["grow"][None], "voxel_sizes": element["voxel_size"][None],
                "target_params": {k: element.pop(f"_tp_{k}")[None] for k in self.plan.specs
                                  if f"_tp_{k}" in element},
            }
        out = finish(
            element.pop("image")[None],
            element.pop("packed")[None],
            None if mask is None else mask[None],
            None if p is None else [p],
            self.patch_shape,
            element["instance_classes"][None],
            boxes=None if box is None else box[None],
            **extra,
        )
        element.update({k: v[0] for k, v in out.items()})
        if mask is None:
            element["mask"] = None  # all valid: nothing shipped per voxel
        element["host_s"] = np.float64(time.perf_counter() - t0)
        return element


def _stacked(elements: Sequence[dict]) -> tuple[dict, dict]:
    """``({key: (values, shape, dtype, fill)}, other)`` of a batch: the arrays to stack (boxes of
    different shapes padded to the largest), and the values that travel as they are."""
    arrays: dict[str, tuple] = {}
    other: dict[str, Any] = {}
    for k in elements[0]:
        vals = [e[k] for e in elements]
        fill = None
        if k == "params":
            other[k] = vals
            continue
        if k == "mask":
            if all(v is None for v in vals):
                continue  # every voxel valid: nothing shipped per voxel
            shapes = [np.shape(e["image"])[:3] for e in elements]  # host-finished: (Z, Y, X, 1)
            vals = [np.ones(shp, np.uint8) if v is None else v for v, shp in zip(vals, shapes)]
            fill = 1
        vals = [np.asarray(v) for v in vals]
        shapes = {v.shape for v in vals}
        big = shapes.pop() if len(shapes) == 1 else tuple(int(m) for m in np.max([v.shape for v in vals], axis=0))
        arrays[k] = (vals, (len(vals), *big), np.result_type(*vals), fill)
    return arrays, other


def _fill(out: np.ndarray, vals: Sequence[np.ndarray], fill) -> None:
    for i, v in enumerate(vals):
        if v.shape == out.shape[1:]:
            out[i] = v
        else:
            if fill is not None:
                out[i] = fill
            out[(i, *(slice(0, n) for n in v.shape))] = v


def stack_batch(elements: Sequence[dict]) -> dict:
    """Grain batch_fn: stack arrays (boxes of different shapes at the low corner of the largest),
    keep augmentation params as a list; a mask that is all valid in every sample is left out."""
    arrays, other = _stacked(elements)
    out = dict(other)
    for k, (vals, shape, dtype, fill) in arrays.items():
        out[k] = np.empty(shape, dtype)
        _fill(out[k], vals, fill)
    return out


class StackBatch:
    """``stack_batch`` into reused shared-memory blocks (``batchpool``): the batch is written
    once, Grain passes a small ``BlockRef`` between processes instead of copying arrays. Each
    process holding a copy (the Loader, every worker) has its own pool."""

    def __init__(self, token: str = ""):
        from .batchpool import BatchPool

        self.pool = BatchPool(token=token)
        self.token = self.pool.token

    def __getstate__(self) -> dict:
        return {"token": self.token}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["token"])

    def __call__(self, elements: Sequence[dict]):
        arrays, other = _stacked(elements)
        ref, views = self.pool.allocate({k: (a[1], a[2]) for k, a in arrays.items()}, other)
        for k, (vals, _, _, fill) in arrays.items():
            _fill(views[k], vals, fill)
        return {**views, **other} if ref is None else ref
