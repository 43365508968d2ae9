"""AugmentConfig: every transform's probability and ranges, and the context a patch needs.

Probabilities are per sample (``p`` is the chance a transform fires for one patch); ranges are
``(low, high)`` and drawn uniformly. Lengths are in nm where the physical size matters (elastic
displacement, misalignment), in in-plane voxels for image-space effects (lines, blur).
``context_shape`` depends only on ``(cfg, patch_shape, voxel_size)``, never on a draw, so every
sample of a batch reads the same enlarged region and batches stack.

Every field belongs to one transform of ``augment.table`` (``isotropy_ratio`` is shared). A
transform registered later (``table.register``) declares its own fields with their defaults: they
are accepted as keywords by ``AugmentConfig(...)``, ``off`` and ``replace``, read as attributes,
checked like the built-in ones, and stored in ``cfg.extra``.

Example:
    >>> from neurons_jax.augment import AugmentConfig, context_shape
    >>> cfg = AugmentConfig(rotate_max_deg=15.0)
    >>> context_shape(cfg, (32, 256, 256), (40, 4, 4))[0]     # no z margin for 40x4x4 nm
    32
    >>> context_shape(AugmentConfig.off(), (8, 64, 64), (10, 10, 10))
    (8, 64, 64)
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Range = tuple[float, float]
SHARED_FIELDS = ("isotropy_ratio",)  # read by several transforms (capabilities), owned by none
_REGISTERED: dict[str, tuple[str, Any]] = {}  # field of a registered transform -> (owner, default)
_CHECKS: dict[str, Callable] = {}  # owner -> check(cfg) of a registered transform


class FieldValues(Mapping):
    """Immutable, hashable ``{field: value}`` of registered transforms' fields (``cfg.extra``)."""

    def __init__(self, items: Mapping[str, Any] | None = None):
        self._d = dict(items or {})

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._d.items())))

    def __repr__(self) -> str:
        return repr(self._d)


def register_fields(owner: str, fields: Mapping[str, Any], check: Callable | None = None) -> None:
    """Declare the config fields (name -> default) of transform ``owner`` (``table.register``)."""
    builtin = {f.name for f in dataclasses.fields(AugmentConfig)}
    for name, default in fields.items():
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"{owner}: field {name!r}: expected a public identifier")
        if name in builtin or name in _REGISTERED or hasattr(AugmentConfig, name):
            who = f"transform {_REGISTERED[name][0]!r}" if name in _REGISTERED else "AugmentConfig"
            raise ValueError(f"{owner}: field {name!r} is already a field of {who}")
        _check_value(name, default)
    for name, default in fields.items():
        _REGISTERED[name] = (owner, default)
    if check is not None:
        _CHECKS[owner] = check


def unregister_fields(owner: str) -> None:
    """Forget the fields (and check) that ``register_fields`` declared for ``owner``."""
    for name in [n for n, (o, _) in _REGISTERED.items() if o == owner]:
        del _REGISTERED[name]
    _CHECKS.pop(owner, None)


def defaults() -> dict[str, Any]:
    """Every field's default: the built-in ones, then those of registered transforms."""
    out = {f.name: f.default for f in dataclasses.fields(AugmentConfig) if f.name != "extra"}
    out.update((n, d) for n, (_, d) in _REGISTERED.items())
    return out


def _check_value(name: str, v) -> None:
    """The checks every field gets from its name: probabilities, (low, high) ranges."""
    if name == "flip_prob":
        if len(v) != 3 or not all(0.0 <= p <= 1.0 for p in v):
            raise ValueError(f"AugmentConfig.flip_prob: expected 3 probabilities in [0, 1], got {v!r}")
    elif name.endswith("_prob"):
        if not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"AugmentConfig.{name}: expected a probability in [0, 1], got {v!r}")
    elif isinstance(v, tuple):
        if len(v) != 2 or v[0] > v[1]:
            raise ValueError(f"AugmentConfig.{name}: expected (low, high) with low <= high, got {v!r}")


@dataclass(frozen=True)
class AugmentConfig:
    """All augmentations with EM-practice defaults (see the module docstring for units)."""

    # exact symmetries (index permutations, no resampling)
    flip_prob: tuple[float, float, float] = (0.5, 0.5, 0.5)  # per axis z, y, x
    rot90_prob: float = 0.5  # in-plane k*90 deg; odd k only for square patches
    transpose_xy_prob: float = 0.5  # square patches with equal y/x voxel sizes only
    transpose_z_prob: float = 0.5  # isotropic voxels and equal extents only
    isotropy_ratio: float = 1.5  # max/min voxel size below which z rotations/transposes are allowed
    # the fused warp (one resample): in-plane rotation, scale, elastic, section misalignment
    rotate_prob: float = 0.5
    rotate_max_deg: float = 45.0  # in-plane angle in [-max, max] (with rot90/flips: every angle)
    # out-of-plane rotation, isotropic voxels only; opt in: tilting a flat patch needs a context
    # deeper by about sin(max) * its in-plane extent (margins() gives the exact figure)
    rotate_3d_prob: float = 0.0
    rotate_3d_max_deg: float = 15.0
    scale_prob: float = 0.5
    scale_range: Range = (0.9, 1.1)  # in-plane zoom (> 1 magnifies)
    elastic_prob: float = 0.5
    elastic_spacing_nm: float = 200.0  # control-point spacing of the cubic B-spline grid
    elastic_sigma_nm: Range = (0.0, 12.0)  # std of control displacements (clipped at 3 sigma)
    elastic_3d: bool = True  # isotropic voxels: displace along z too
    misalign_prob: float = 0.2
    misalign_step_prob: float = 0.5  # else a slip of one section
    misalign_max_nm: float = 48.0  # per in-plane component
    # EM defects (image only)
    missing_section_prob: float = 0.1
    missing_section_count: tuple[int, int] = (1, 2)
    missing_section_copy_prob: float = 0.5  # filled from a neighbour, else blank
    missing_section_value: float = 0.0
    low_contrast_prob: float = 0.1
    low_contrast_count: tuple[int, int] = (1, 2)
    low_contrast_factor: Range = (0.2, 0.5)
    line_prob: float = 0.1  # dark straight line (knife mark, fold)
    line_count: tuple[int, int] = (1, 2)
    line_width: Range = (1.0, 4.0)  # in-plane voxels (Gaussian profile sigma)
    line_strength: Range = (0.5, 1.0)
    charging_prob: float = 0.05  # bright band decaying away from a line
    charging_count: tuple[int, int] = (1, 1)
    charging_width: Range = (8.0, 32.0)
    charging_strength: Range = (0.1, 0.3)
    motion_blur_prob: float = 0.1
    motion_blur_count: tuple[int, int] = (1, 2)
    motion_blur_length: tuple[int, int] = (3, 9)  # odd number of taps along a direction
    missing_part_prob: float = 0.1  # an elliptic blob of one section set to a constant
    missing_part_count: tuple[int, int] = (1, 2)
    missing_part_radius: Range = (0.05, 0.2)  # fraction of min(Y, X)
    missing_part_value: Range = (0.0, 1.0)
    # intensity
    contrast_prob: float = 0.5
    contrast_range: Range = (0.75, 1.25)
    brightness_prob: float = 0.5
    brightness_range: Range = (-0.1, 0.1)
    gamma_prob: float = 0.5
    gamma_range: Range = (0.75, 1.33)
    section_intensity_prob: float = 0.3  # per-section contrast/brightness jitter
    section_contrast_range: Range = (0.9, 1.1)
    section_brightness_range: Range = (-0.05, 0.05)
    blur_prob: float = 0.2
    blur_sigma: Range = (0.5, 1.5)  # in-plane voxels
    noise_prob: float = 0.5
    noise_sigma: Range = (0.01, 0.05)
    # fields of registered transforms (table.register), also given as keywords: (toy_prob=1.0)
    extra: Mapping[str, Any] = dataclasses.field(default_factory=FieldValues)

    def __post_init__(self) -> None:
        if not isinstance(self.extra, Mapping):
            raise TypeError(f"AugmentConfig.extra: expected a mapping of field -> value, got {self.extra!r}")
        object.__setattr__(self, "extra", FieldValues(self.extra))
        for f in dataclasses.fields(self):
            if f.name != "extra":
                _check_value(f.name, getattr(self, f.name))
        for name, v in self.extra.items():
            if name not in _REGISTERED:
                raise TypeError(
                    f"AugmentConfig.extra: {name!r} is not a field of any registered transform "
                    f"(registered fields: {sorted(_REGISTERED) or 'none'})"
                )
            _check_value(name, v)
        if self.scale_range[0] <= 0:
            raise ValueError(f"AugmentConfig.scale_range: expected positive scales, got {self.scale_range!r}")
        if self.elastic_spacing_nm <= 0:
            raise ValueError(f"AugmentConfig.elastic_spacing_nm: expected > 0, got {self.elastic_spacing_nm!r}")
        if self.isotropy_ratio < 1:
            raise ValueError(f"AugmentConfig.isotropy_ratio: expected >= 1, got {self.isotropy_ratio!r}")
        for name in ("rotate_max_deg", "rotate_3d_max_deg", "misalign_max_nm"):
            if getattr(self, name) < 0:
                raise ValueError(f"AugmentConfig.{name}: expected >= 0, got {getattr(self, name)!r}")
        lo, hi = self.motion_blur_length
        if lo < 1 or hi > 63:
            raise ValueError(f"AugmentConfig.motion_blur_length: expected within [1, 63], got {(lo, hi)!r}")
        if self.blur_sigma[1] > 5.0 or self.blur_sigma[0] < 0:
            raise ValueError(f"AugmentConfig.blur_sigma: expected within [0, 5] voxels, got {self.blur_sigma!r}")
        for name in ("missing_section_count", "low_contrast_count", "line_count", "charging_count",
                     "motion_blur_count", "missing_part_count"):
            if getattr(self, name)[0] < 0:
                raise ValueError(f"AugmentConfig.{name}: expected non-negative counts, got {getattr(self, name)!r}")
        for check in list(_CHECKS.values()):
            check(self)

    def __getattr__(self, name: str):
        # only reached for names that are not dataclass fields: those of registered transforms
        if name.startswith("__"):
            raise AttributeError(name)
        extra = self.__dict__.get("extra")
        if extra is not None and name in extra:
            return extra[name]
        if name in _REGISTERED:
            return _REGISTERED[name][1]
        raise AttributeError(f"'AugmentConfig' object has no attribute {name!r}")

    @classmethod
    def off(cls, **overrides) -> AugmentConfig:
        """Every probability 0 (no augmentation; registered transforms' too), then ``overrides``."""
        zero = {
            name: tuple(0.0 for _ in d) if isinstance(d, tuple) else 0.0
            for name, d in defaults().items() if name.endswith("_prob")
        }
        zero.update(overrides)
        return cls(**zero)

    def replace(self, **changes) -> AugmentConfig:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


_dataclass_init = AugmentConfig.__init__


def _init(self, *args, **fields) -> None:
    # keywords naming a registered transform's field go to ``extra`` (merged over a given extra)
    moved = {k: fields.pop(k) for k in [k for k in fields if k not in _DATACLASS_FIELDS]}
    if moved:
        for k in moved:
            if k not in _REGISTERED:
                raise TypeError(
                    f"AugmentConfig: unexpected field {k!r} (neither a built-in field nor one of a "
                    f"registered transform: {sorted(_REGISTERED) or 'none registered'})"
                )
        extra = dict(fields.pop("extra", None) or {})
        extra.update(moved)
        fields["extra"] = extra
    _dataclass_init(self, *args, **fields)


_DATACLASS_FIELDS = frozenset(f.name for f in dataclasses.fields(AugmentConfig))
_init.__signature__ = inspect.signature(_dataclass_init)  # type: ignore[attr-defined]
_init.__doc__ = _dataclass_init.__doc__
AugmentConfig.__init__ = _init  # type: ignore[method-assign]


def _check_shapes(patch_shape, voxel_size) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    p = tuple(int(s) for s in patch_shape)
    v = tuple(float(s) for s in voxel_size)
    if len(p) != 3 or min(p) < 1:
        raise ValueError(f"patch_shape: expected 3 positive sizes (z, y, x), got {tuple(patch_shape)!r}")
    if len(v) != 3 or min(v) <= 0:
        raise ValueError(f"voxel_size: expected 3 positive sizes in nm (z, y, x), got {tuple(voxel_size)!r}")
    return p, v  # type: ignore[return-value]


def is_isotropic(cfg: AugmentConfig, voxel_size) -> bool:
    """True when max/min of the voxel sizes is below ``cfg.isotropy_ratio``."""
    v = [float(s) for s in voxel_size]
    return max(v) / min(v) < cfg.isotropy_ratio


def capabilities(cfg: AugmentConfig, patch_shape, voxel_size) -> dict[str, bool]:
    """Which shape-dependent transforms this (patch, voxel size) allows."""
    (pz, py, px), (vz, vy, vx) = _check_shapes(patch_shape, voxel_size)
    square = py == px and max(vy, vx) / min(vy, vx) < cfg.isotropy_ratio
    iso3d = pz > 1 and is_isotropic(cfg, (vz, vy, vx))
    return {
        "square": square,  # odd rot90, xy transpose
        "z_transpose": iso3d and (pz == py or pz == px),
        "rotate_3d": iso3d,
        "elastic_z": iso3d and cfg.elastic_3d,
        "sections": pz > 1,  # misalignment, missing sections
    }


def _inplane_extent(hy: float, hx: float, ry: float, rx: float, max_deg: float) -> tuple[float, float]:
    """Max |offset| along y and x of R(theta) q over |theta| <= max_deg, |q| <= (hy, hx).

    ``ry = vx/vy`` and ``rx = vy/vx`` carry the rotation done in nm back to voxels."""
    th = np.linspace(0.0, math.radians(min(max_deg, 180.0)), 2049)
    c, s = np.abs(np.cos(th)), np.abs(np.sin(th))
    ey = float(np.max(c * hy + s * hx * ry))
    ex = float(np.max(s * hy * rx + c * hx))
    return ey, ex


def margins(cfg: AugmentConfig, patch_shape, voxel_size) -> tuple[int, int, int]:
    """Voxels of context needed on each side of the patch, per axis (z, y, x)."""
    (pz, py, px), v = _check_shapes(patch_shape, voxel_size)
    cap = capabilities(cfg, (pz, py, px), v)
    h = np.array([(pz - 1) / 2, (py - 1) / 2, (px - 1) / 2])
    smin = min(cfg.scale_range[0], 1.0) if cfg.scale_prob > 0 else 1.0
    deg = cfg.rotate_max_deg if cfg.rotate_prob > 0 else 0.0
    ey, ex = _inplane_extent(h[1], h[2], v[2] / v[1], v[1] / v[2], deg)
    ext = np.array([h[0], ey / smin, ex / smin])
    if cap["rotate_3d"] and cfg.rotate_3d_prob > 0 and cfg.rotate_3d_max_deg > 0:
        # |R u - u| <= 2 sin(phi / 2) |u| for a rotation by phi
        # (in nm, then back to voxels along each axis)
        phi = math.radians(min(cfg.rotate_3d_max_deg, 180.0))
        vv = np.asarray(v)
        ext = ext + 2.0 * math.sin(phi / 2) * float(np.linalg.norm(ext * vv)) / vv
    if cfg.elastic_prob > 0 and cfg.elastic_sigma_nm[1] > 0:
        amp = 3.0 * cfg.elastic_sigma_nm[1]
        ext[1] += amp / v[1]
        ext[2] += amp / v[2]
        if cap["elastic_z"]:
            ext[0] += amp / v[0]
    if cap["sections"] and cfg.misalign_prob > 0:
        ext[1] += cfg.misalign_max_nm / v[1]
        ext[2] += cfg.misalign_max_nm / v[2]
    # float32 coordinates may overshoot an exact bound by an ulp: the kernels clamp to C - 1, which
    # is still real context
    m = np.ceil(ext - h - 1e-6)
    return tuple(int(max(0, x)) for x in m)  # type: ignore[return-value]


def context_shape(cfg: AugmentConfig, patch_shape, voxel_size) -> tuple[int, int, int]:
    """The region the sampler must read: ``patch_shape + 2 * margins`` (centred on the patch)."""
    p, _ = _check_shapes(patch_shape, voxel_size)
    m = margins(cfg, p, voxel_size)
    return tuple(int(a + 2 * b) for a, b in zip(p, m))  # type: ignore[return-value]
