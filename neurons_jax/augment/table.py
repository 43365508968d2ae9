"""The transform table: every augmentation declared once, in draw order and in apply order.

An ``Op`` is one augmentation as the config and ``draw`` see it: its config fields (name ->
default), ``draw(d)`` (consumes ``d.rng``, fills ``d.params``, appends to ``d.applied``; ``d`` is a
``params.Draw``) and ``active(params)``. A ``Transform`` (one table entry) runs ops: one CPU
function ``cpu(params, img) -> img`` on one sample's float32 ``(Z, Y, X)`` patch, and one GPU entry
``gpu(batch, img) -> img`` on the batch's float32 ``(B, Z, Y, X)`` device array (``_gpu.GpuBatch``:
params, array module, kernel factory). Ops fused into one GPU launch form one entry with several
ops (the pointwise kernel), so do the geometric ops the warp resamples in one pass.

Everything iterates the table: ``params.draw`` runs each op's ``draw`` in table order (the RNG
order); ``apply`` runs the warp entry (always: it crops the context to the patch), then the
``cpu`` of every image entry ``active`` for the sample; ``_gpu.run_batch`` the ``gpu`` of every
image entry active for any sample of the batch (the entry leaves the other samples unchanged);
``solo_cases()`` gives each op's fire-alone configs to the parity tests.

Built-in table: ``warp`` (symmetry, affine, elastic, misalign) | ``pointwise`` (missing_section,
low_contrast, intensity, lines, missing_part) | ``motion_blur`` | ``blur`` | ``noise``. On the
CPU ``pointwise`` and ``noise`` are one fused numba pass (``_cpu_image``) when nothing active sits
between them for the sample; ``defects.pointwise`` / ``intensity.add_noise`` are their NumPy
references.

A new augmentation is one module (draw, CPU function, GPU entry: CuPy array operations are
enough) and one entry, ``register(transform(...))``: its fields become keywords and attributes of
``AugmentConfig`` (stored in ``cfg.extra``), its drawn values go in ``params.extra[name]``, and it
runs after the built-in entries (or ``before=`` one of them). Register it at import time of a
module every worker process imports: the registry is per process.

Example:
    >>> import numpy as np
    >>> from neurons_jax import augment
    >>> from neurons_jax.augment import table
    >>> def draw(d):
    ...     if d.rng.random() < d.cfg.invert_prob:
    ...         d.params.extra["invert"] = True
    ...         d.applied.append("invert")
    >>> def gpu(batch, img):
    ...     on = batch.xp.asarray(batch.active(invert))[:, None, None, None]
    ...     return batch.xp.where(on, 1 - img, img)
    >>> invert = table.transform("invert", fields={"invert_prob": 0.0}, draw=draw,
    ...                          active=lambda p: "invert" in p.extra, cpu=lambda p, img: 1 - img, gpu=gpu)
    >>> with table.registered(invert):
    ...     p = augment.draw(augment.AugmentConfig.off(invert_prob=1.0), 0, (1, 4, 4), (1, 1, 1))
    ...     float(augment.apply(p, np.zeros((1, 4, 4), np.float32))[0].max())
    1.0
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _cpu_image, _gpu, defects, geometry, intensity
from . import config as _config
from . import params as _params

Draw = _params.Draw  # what an op's draw gets
GpuBatch = _gpu.GpuBatch  # what a GPU entry gets


@dataclass(frozen=True)
class Op:
    """One augmentation: config fields, how it draws, whether it is active for a params object.

    ``solo``: configs (overrides of ``AugmentConfig.off()``) under which it fires alone, for the
    parity tests; default: each ``*_prob`` field set to 1 on its own."""

    name: str
    fields: Mapping[str, Any]
    draw: Callable[[_params.Draw], None]
    active: Callable[[Any], bool]
    solo: tuple[Mapping[str, Any], ...] | None = None
    check: Callable[[_config.AugmentConfig], None] | None = None

    def solo_cases(self) -> tuple[Mapping[str, Any], ...]:
        if self.solo is not None:
            return self.solo
        return tuple({f: _ones(d)} for f, d in self.fields.items() if f.endswith("_prob"))


@dataclass(frozen=True)
class Transform:
    """One table entry: ops run by one CPU function and one GPU entry (one launch group).

    ``warp``: the built-in geometric entry, ``cpu(params, image, label, mask)`` and
    ``gpu(batch, images, labels, masks)`` returning ``(image, label, mask)``; image entries take
    and return the float32 image only."""

    name: str
    ops: tuple[Op, ...]
    cpu: Callable
    gpu: Callable | None
    warp: bool = False

    def active(self, params) -> bool:
        """True when one of its ops applies to ``params`` (the entry then runs for that sample)."""
        return any(op.active(params) for op in self.ops)

    @property
    def fields(self) -> dict[str, Any]:
        return {k: v for op in self.ops for k, v in op.fields.items()}


def transform(name: str, *, fields: Mapping[str, Any], draw: Callable, active: Callable, cpu: Callable,
              gpu: Callable | None, solo: tuple[Mapping[str, Any], ...] | None = None,
              check: Callable | None = None) -> Transform:
    """A one-op entry (the usual shape of a new augmentation); see the module docstring."""
    return Transform(name, (Op(name, dict(fields), draw, active, solo, check),), cpu, gpu)


def _ones(default):
    return tuple(1.0 for _ in default) if isinstance(default, tuple) else 1.0


def _builtin(*names: str) -> dict[str, Any]:
    fs = {f.name: f.default for f in dataclasses.fields(_config.AugmentConfig)}
    return {n: fs[n] for n in names}


def _symmetric(p) -> bool:
    return tuple(p.perm) != (0, 1, 2) or any(p.flip)


def _affine(p) -> bool:
    return not np.array_equal(p.affine, np.eye(3, dtype=np.float32))


WARP = Transform("warp", (
    Op("symmetry", _builtin("flip_prob", "rot90_prob", "transpose_xy_prob", "transpose_z_prob"),
       _params.draw_symmetry, _symmetric),
    Op("affine", _builtin("rotate_prob", "rotate_max_deg", "rotate_3d_prob", "rotate_3d_max_deg",
                          "scale_prob", "scale_range"),
       _params.draw_affine, _affine),
    Op("elastic", _builtin("elastic_prob", "elastic_spacing_nm", "elastic_sigma_nm", "elastic_3d"),
       _params.draw_elastic, lambda p: p.elastic is not None),
    Op("misalign", _builtin("misalign_prob", "misalign_step_prob", "misalign_max_nm"),
       _params.draw_misalign, lambda p: p.misalign is not None,
       solo=({"misalign_prob": 1.0, "misalign_step_prob": 0.5},)),
), geometry.warp, _gpu.warp_batch, warp=True)

POINTWISE = Transform("pointwise", (
    Op("missing_section", _builtin("missing_section_prob", "missing_section_count",
                                   "missing_section_copy_prob", "missing_section_value"),
       _params.draw_missing_section, lambda p: p.zsrc is not None or p.blank is not None,
       solo=({"missing_section_prob": 1.0, "missing_section_copy_prob": 0.5},)),
    Op("low_contrast", _builtin("low_contrast_prob", "low_contrast_count", "low_contrast_factor"),
       _params.draw_low_contrast, lambda p: p.low_contrast is not None),
    Op("intensity", _builtin("contrast_prob", "contrast_range", "brightness_prob", "brightness_range",
                             "section_intensity_prob", "section_contrast_range",
                             "section_brightness_range", "gamma_prob", "gamma_range"),
       _params.draw_intensity, lambda p: bool(p.intensity)),
    Op("lines", _builtin("line_prob", "line_count", "line_width", "line_strength", "charging_prob",
                         "charging_count", "charging_width", "charging_strength"),
       _params.draw_lines, lambda p: p.lines is not None),
    Op("missing_part", _builtin("missing_part_prob", "missing_part_count", "missing_part_radius",
                                "missing_part_value"),
       _params.draw_missing_part, lambda p: p.blobs is not None),
), _cpu_image.pointwise_entry, _gpu.pointwise_batch)

MOTION_BLUR = transform(
    "motion_blur", fields=_builtin("motion_blur_prob", "motion_blur_count", "motion_blur_length"),
    draw=_params.draw_motion_blur, active=lambda p: p.motion is not None and len(p.motion) > 0,
    cpu=defects.motion_blur, gpu=_gpu.motion_batch,
)
BLUR = transform(
    "blur", fields=_builtin("blur_prob", "blur_sigma"), draw=_params.draw_blur,
    active=lambda p: p.blur_sigma > 0, cpu=intensity.gaussian_blur, gpu=_gpu.blur_batch,
)
NOISE = transform(
    "noise", fields=_builtin("noise_prob", "noise_sigma"), draw=_params.draw_noise,
    active=lambda p: p.noise_sigma > 0, cpu=_cpu_image.noise_entry, gpu=_gpu.noise_batch,
)
BUILTIN = (WARP, POINTWISE, MOTION_BLUR, BLUR, NOISE)

_TABLE: list[Transform] = list(BUILTIN)
_VIEWS: dict[str, tuple] = {}


def _refresh() -> None:
    _VIEWS["transforms"] = tuple(_TABLE)
    _VIEWS["ops"] = tuple(op for t in _TABLE for op in t.ops)
    _VIEWS["image"] = tuple(t for t in _TABLE if not t.warp)


def transforms() -> tuple[Transform, ...]:
    """The table, in draw and apply order."""
    return _VIEWS["transforms"]


def ops() -> tuple[Op, ...]:
    """Every op of the table, in draw order."""
    return _VIEWS["ops"]


def warp_transform() -> Transform:
    """The geometric entry (labels and masks go through it alone)."""
    return WARP


def image_transforms() -> tuple[Transform, ...]:
    """The image entries after the warp, in apply order."""
    return _VIEWS["image"]


def get(name: str) -> Transform:
    """The entry called ``name``."""
    for t in _TABLE:
        if t.name == name:
            return t
    raise KeyError(f"name: expected one of the table's transforms {[t.name for t in _TABLE]}, got {name!r}")


def _names() -> set[str]:
    return {t.name for t in _TABLE} | {op.name for t in _TABLE for op in t.ops}


def register(t: Transform, *, before: str | None = None) -> Transform:
    """Add an image entry after the built-in ones (or just before the entry ``before``).

    Its ops' fields become ``AugmentConfig`` fields (their names must be new), its ops draw in
    table order (so an entry placed before another changes that one's draws)."""
    if not isinstance(t, Transform):
        raise TypeError(f"t: expected a table.Transform (table.transform(...) makes one), got {type(t).__name__}")
    if t.warp:
        raise ValueError(f"{t.name}: only the built-in warp entry resamples; a registered transform is an image op")
    taken = _names()
    for n in [t.name, *(op.name for op in t.ops if op.name != t.name)]:
        if n in taken:
            raise ValueError(f"{t.name}: the name {n!r} is already in the table {sorted(taken)}")
    if not t.ops:
        raise ValueError(f"{t.name}: expected at least one Op, got none")
    for what, fn in (("cpu", t.cpu), *((f"{op.name}.draw", op.draw) for op in t.ops),
                     *((f"{op.name}.active", op.active) for op in t.ops)):
        if not callable(fn):
            raise TypeError(f"{t.name}: {what}: expected a callable, got {fn!r}")
    if t.gpu is not None and not callable(t.gpu):
        raise TypeError(f"{t.name}: gpu: expected a callable or None, got {t.gpu!r}")
    if before is None:
        pos = len(_TABLE)
    else:
        pos = [x.name for x in _TABLE].index(before) if before in {x.name for x in _TABLE} else -1
        if pos < 0 or _TABLE[pos].warp:
            raise ValueError(
                f"before: expected the name of an image transform {[x.name for x in image_transforms()]}, got {before!r}"
            )
    checks = [op.check for op in t.ops if op.check is not None]
    _config.register_fields(t.name, t.fields, (lambda cfg: [c(cfg) for c in checks]) if checks else None)
    _TABLE.insert(pos, t)
    _refresh()
    return t


def unregister(name: str) -> Transform:
    """Remove a registered entry and its config fields (built-in entries stay)."""
    t = get(name)
    if any(t is b for b in BUILTIN):
        raise ValueError(f"name: {name!r} is a built-in transform; only registered ones can be removed")
    _TABLE.remove(t)
    _config.unregister_fields(t.name)
    _refresh()
    return t


@contextlib.contextmanager
def registered(t: Transform, *, before: str | None = None) -> Iterator[Transform]:
    """``register`` for the duration of a ``with`` block (tests, experiments)."""
    register(t, before=before)
    try:
        yield t
    finally:
        unregister(t.name)


def solo_cases() -> list[tuple[str, Mapping[str, Any]]]:
    """``(case name, overrides of AugmentConfig.off())``: every op firing alone, in table order."""
    return [(next(iter(c)), c) for op in ops() for c in op.solo_cases()]


def check_table() -> None:
    """Every ``AugmentConfig`` field belongs to exactly one op (``config.SHARED_FIELDS`` to none)."""
    owner: dict[str, str] = {}
    for op in ops():
        for f in op.fields:
            if f in owner:
                raise ValueError(f"field {f!r}: declared by both {owner[f]!r} and {op.name!r}")
            owner[f] = op.name
    builtin = {f.name for f in dataclasses.fields(_config.AugmentConfig)} - {"extra", *_config.SHARED_FIELDS}
    missing = sorted(builtin - set(owner))
    if missing:
        raise ValueError(f"AugmentConfig fields {missing} belong to no op of augment.table")


_refresh()
check_table()
