"""Training targets in the Loader's device stage: ``Loader(..., targets={key: spec})``.

``TargetPlan`` holds the specs (``nj.targets.Affinities(...)``, ``LSD(...)``, ...) and how far
each voxel size's labels must reach beyond the patch (``grow``: the largest spec margin, equal
on the axes the symmetries may exchange). The Loader reads and warps the labels over the patch
grown by that margin (``augment.grow`` of the sample's params; the context grows with it), so a
target inside the patch never lacks the labels it depends on; ``finish_targets`` computes every
target there, on the GPU when the stage is there, and crops it to the patch:

* a spec with a margin gets the grown labels: instance ids from the grown instance sources
  (the dataset's own ids, compact; boundary-separated datasets: instances of the grown
  semantic), the grown semantic and the grown valid mask, cropped to its own margin;
* a spec without a margin (point prompts) gets the batch's own ``instance``, ``semantic`` and
  ``mask``, so its points refer to the ids the batch carries.

``batch[key]`` is a spec's ``"target"`` output, ``batch[f"{key}_{o}"]`` each further output.
Random specs draw their numbers on the host from the element's Grain RNG (after the
augmentation params: those do not change), carried as ``_tp_<key>``.

Example:
    >>> import numpy as np
    >>> import neurons_jax as nj
    >>> plan = TargetPlan({"aff": nj.targets.Affinities(offsets=[(-1, 0, 0), (0, -3, 0)])})
    >>> plan.grow((40, 4, 4)).tolist(), plan.output_keys()
    ([1, 3, 3], ['aff', 'aff_mask'])
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .backend import array_module

RESERVED = ("image", "semantic", "instance", "mask", "dataset", "position", "volume", "params", "box")


class TargetPlan:
    """The Loader's targets: ``{key: spec}``, checked; margins per voxel size."""

    def __init__(self, targets: Mapping, cfg=None):
        if not isinstance(targets, Mapping) or not targets:
            raise ValueError(f"targets: expected a non-empty {{key: target spec}} mapping, got {targets!r}")
        self.specs = {}
        for key, spec in targets.items():
            if not isinstance(key, str) or not key.isidentifier() or key in RESERVED or key.startswith("_"):
                raise ValueError(f"targets: key {key!r} must be an identifier other than {RESERVED}")
            for attr in ("margin", "outputs", "draw"):
                if not hasattr(spec, attr) or not callable(spec):
                    raise TypeError(f"targets[{key!r}]: expected a target spec (nj.targets.Affinities(...), "
                                    f"...) with margin/outputs/draw, got {type(spec).__name__}")
            self.specs[key] = spec
        keys = self.output_keys()
        clash = sorted({k for k in keys if keys.count(k) > 1} | (set(keys) & set(RESERVED)))
        if clash:
            raise ValueError(f"targets: output names {clash} collide; rename the keys")
        self.cfg = cfg
        self._grow: dict[tuple, np.ndarray] = {}

    def output_keys(self) -> list[str]:
        """Batch keys the targets add: ``key`` for ``target``, ``key_o`` for every other output."""
        return [key if o == "target" else f"{key}_{o}" for key, s in self.specs.items() for o in s.outputs]

    def margin(self, key: str, voxel_size) -> np.ndarray:
        return np.asarray(self.specs[key].margin(tuple(float(v) for v in voxel_size)), np.int64)

    def grow(self, voxel_size) -> np.ndarray:
        """Voxels the labels reach beyond the patch on each side (z, y, x) for ``voxel_size``."""
        vs = tuple(float(v) for v in voxel_size)
        if vs not in self._grow:
            g = np.max([self.margin(k, vs) for k in self.specs], axis=0)
            g[1:] = g[1:].max()  # rot90 / transpose_xy exchange y and x
            if self.cfg is not None:
                from .augment import is_isotropic

                if is_isotropic(self.cfg, vs):  # z transposes exchange z with y or x
                    g[:] = g.max()
            self._grow[vs] = g
        return self._grow[vs].copy()

    def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The random numbers of the random specs for one element, as ``_tp_<key>`` entries."""
        out = {}
        for key, spec in self.specs.items():
            v = spec.draw(rng)
            if v is not None:
                out[f"_tp_{key}"] = np.asarray(v)
        return out


def _crop(a, margin, lead: int = 1):
    """Centre crop of the spatial axes ``lead .. lead + 3`` by ``margin`` on each side (a view)."""
    sl = [slice(None)] * lead + [slice(int(m), a.shape[lead + i] - int(m)) for i, m in enumerate(margin)]
    return a[tuple(sl)]


def finish_targets(plan: TargetPlan, grown: dict, patch_out: dict, voxel_sizes, tparams: dict,
                   patch_shape) -> dict:
    """Every target of ``plan`` for a batch whose rows share one grow margin.

    ``grown``: ``ids``, ``semantic``, ``mask`` of the labels over the grown patch (B, *P');
    ``patch_out``: the batch's own ``instance``, ``semantic``, ``mask`` (B, *P); ``voxel_sizes``
    (B, 3) host; ``tparams`` ``{key: (B, ...)}`` host random numbers of the random specs."""
    xp = array_module(grown["ids"])
    B = grown["ids"].shape[0]
    g = (np.asarray(grown["ids"].shape[1:4]) - np.asarray(patch_shape)) // 2
    vs_rows: dict[tuple, list[int]] = {}
    for i, v in enumerate(np.asarray(voxel_sizes, np.float64).reshape(B, 3).tolist()):
        vs_rows.setdefault(tuple(v), []).append(i)
    out: dict = {}
    for vs, rows in vs_rows.items():
        sel = slice(None) if len(vs_rows) == 1 else xp.asarray(np.asarray(rows))
        for key, spec in plan.specs.items():
            m = plan.margin(key, vs)
            tp = tparams.get(key)
            tp = None if tp is None else xp.asarray(np.asarray(tp)[rows] if len(vs_rows) > 1 else tp)
            if not m.any():
                res = spec(patch_out["instance"][sel], patch_out["semantic"][sel], patch_out["mask"][sel],
                           vs, params=tp)
            else:
                c = g - m
                res = spec(_crop(grown["ids"][sel], c), _crop(grown["semantic"][sel], c),
                           _crop(grown["mask"][sel], c), vs, params=tp)
            for o in spec.outputs:
                v = res[o]
                if v.ndim >= 4 and tuple(v.shape[1:4]) == tuple(int(p + 2 * k) for p, k in zip(patch_shape, m)):
                    v = _crop(v, m)  # spatial outputs: back to the patch
                name = key if o == "target" else f"{key}_{o}"
                if name not in out:
                    out[name] = xp.empty((B, *v.shape[1:]), v.dtype)
                out[name][sel] = v
    return {k: xp.ascontiguousarray(v) for k, v in out.items()}
