"""AugmentParams and ``draw``: every random choice of one sample, made on the host.

``draw(cfg, rng, patch_shape, voxel_size)`` uses only ``rng`` (a ``numpy.random.Generator``, as
Grain's ``random_map`` hands out, or an int seed), so the same generator state gives the same
params. Params hold plain numbers and small arrays (no image-sized data) and pickle; applying
them is a pure function of (context patch, params) on either backend.

``draw`` runs the ``draw`` of every op of ``augment.table`` in table order on one ``Draw`` (config,
generator, the params being filled, capabilities, applied names); the ``draw_*`` functions below
are the built-in ops'. Registered transforms keep their values in ``params.extra[name]``.

Example:
    >>> import numpy as np
    >>> from neurons_jax.augment import AugmentConfig, draw
    >>> p = draw(AugmentConfig(), np.random.default_rng(0), (32, 256, 256), (40, 4, 4))
    >>> p.patch_shape, p.context_shape[0]
    ((32, 256, 256), 32)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from . import config as _config
from . import grid as _grid

F32 = np.float32
LINE_COLS = ("z", "cy", "cx", "ny", "nx", "width", "strength", "kind")  # kind 0 dark, 1 charging
BLOB_COLS = ("z", "cy", "cx", "a", "b2", "c", "value")  # inside: a dy^2 + b2 dy dx + c dx^2 <= 1
MOTION_COLS = ("z", "length", "angle")


@dataclass(eq=False)
class AugmentParams:
    """Everything ``apply`` needs for one sample (see ``grid`` for the coordinate formula)."""

    patch_shape: tuple[int, int, int]
    context_shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    applied: tuple[str, ...] = ()
    # geometry
    perm: tuple[int, int, int] = (0, 1, 2)
    flip: tuple[bool, bool, bool] = (False, False, False)
    affine: np.ndarray = field(default_factory=lambda: np.eye(3, dtype=F32))  # (3, 3) float32
    elastic: np.ndarray | None = None  # (3, gz, gy, gx) float32, voxels
    elastic_spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)  # voxels per grid interval
    misalign: np.ndarray | None = None  # (Pz, 2) float32, voxels (y, x) per canonical section
    # per-section image ops (indexed by output section)
    zsrc: np.ndarray | None = None  # (Pz,) int32 source section (copy from a neighbour)
    blank: np.ndarray | None = None  # (Pz,) bool
    missing_value: float = 0.0
    low_contrast: np.ndarray | None = None  # (Pz,) float32 factor, 1 = unchanged
    intensity: bool = False  # contrast/brightness (then clip to [0, 1]) active
    section_scale: np.ndarray | None = None  # (Pz,) float32
    section_shift: np.ndarray | None = None  # (Pz,) float32
    gamma: float = 1.0
    lines: np.ndarray | None = None  # (n, 8) float32, LINE_COLS
    blobs: np.ndarray | None = None  # (n, 7) float32, BLOB_COLS
    motion: np.ndarray | None = None  # (n, 3) float32, MOTION_COLS
    blur_sigma: float = 0.0
    noise_sigma: float = 0.0
    noise_seed: int = 0
    extra: dict = field(default_factory=dict)  # registered transforms' values, by transform name

    @property
    def planar(self) -> bool:
        """True when every output section samples one context section (2D resampling)."""
        a = self.affine
        zrow = a[0, 0] == 1 and a[0, 1] == 0 and a[0, 2] == 0 and a[1, 0] == 0 and a[2, 0] == 0
        ez = self.elastic is None or not np.any(self.elastic[0])
        return bool(zrow and ez)

    @property
    def margins(self) -> tuple[int, int, int]:
        return tuple((c - p) // 2 for c, p in zip(self.context_shape, self.patch_shape))  # type: ignore

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AugmentParams):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self))


def _same(a, b) -> bool:
    """Equality of param values that may be (or hold) arrays."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and a.shape == b.shape and bool(np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def identity(patch_shape, context_shape=None, voxel_size=(1.0, 1.0, 1.0)) -> AugmentParams:
    """Params that crop the centre of the context and change nothing."""
    p = tuple(int(s) for s in patch_shape)
    c = p if context_shape is None else tuple(int(s) for s in context_shape)
    return AugmentParams(p, c, tuple(float(v) for v in voxel_size))  # type: ignore[arg-type]


def grow(params: AugmentParams, margin) -> AugmentParams:
    """The label warp of ``params`` over the patch grown by ``margin`` (z, y, x) on every side.

    Training targets (affinities, LSDs, ...) need labels beyond the patch; the grown params give
    the same source coordinate to every patch voxel (``q = k - (P - 1) / 2`` is unchanged for
    the grown canonical index ``k + m``, and so are the B-spline's control positions), the
    margins continue the same affine, elastic field and misalignment (the edge section's shift).
    Image-only ops are dropped: the grown params warp labels and masks only. ``params.context``
    must hold the grown footprint (``context_shape(cfg, patch + 2 * margin, voxel_size)``). Axes
    the symmetry exchanges must get equal margins (their grown extents stay equal).

    >>> p = identity((2, 4, 4), (6, 8, 8))
    >>> grow(p, (1, 2, 2)).patch_shape
    (4, 8, 8)
    """
    m = tuple(int(v) for v in margin)
    if len(m) != 3 or min(m) < 0:
        raise ValueError(f"margin: expected 3 non-negative voxel counts (z, y, x), got {margin!r}")
    for i, j in enumerate(params.perm):
        if m[i] != m[j]:
            raise ValueError(f"margin {m}: axes {i} and {j} are exchanged by the symmetry {params.perm}; "
                             "their margins must be equal")
    mis = params.misalign
    if mis is not None and m[0]:
        mis = np.pad(mis, ((m[0], m[0]), (0, 0)), mode="edge")
    return dataclasses.replace(
        params,
        patch_shape=tuple(int(p + 2 * g) for p, g in zip(params.patch_shape, m)),
        misalign=mis, zsrc=None, blank=None, low_contrast=None, intensity=False,
        section_scale=None, section_shift=None, gamma=1.0, lines=None, blobs=None, motion=None,
        blur_sigma=0.0, noise_sigma=0.0, extra={},
    )


@dataclass
class Draw:
    """What an op's ``draw`` sees: consume ``rng`` only, fill ``params``, append ``applied`` names.

    ``cap`` holds ``config.capabilities`` of the (patch, voxel size) plus ``shape`` (the patch)."""

    cfg: _config.AugmentConfig
    rng: np.random.Generator
    params: AugmentParams
    cap: dict
    applied: list


def _sym_matrix(cfg, rng, cap, applied) -> np.ndarray:
    s = np.eye(3, dtype=np.int64)
    for ax, name in enumerate(("flip_z", "flip_y", "flip_x")):
        if rng.random() < cfg.flip_prob[ax]:
            s = np.diag([-1 if i == ax else 1 for i in range(3)]) @ s
            applied.append(name)
    if rng.random() < cfg.rot90_prob:
        k = int(rng.integers(1, 4)) if cap["square"] else 2
        r = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])
        s = np.linalg.matrix_power(r, k) @ s
        applied.append("rot90")
    if cap["square"] and rng.random() < cfg.transpose_xy_prob:
        s = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]]) @ s
        applied.append("transpose_xy")
    if cap["z_transpose"] and rng.random() < cfg.transpose_z_prob:
        pz, py, px = cap["shape"]
        other = [a for a, n in ((1, py), (2, px)) if n == pz]
        a = other[int(rng.integers(len(other)))]
        t = np.eye(3, dtype=np.int64)
        t[[0, a]] = t[[a, 0]]
        s = t @ s
        applied.append("transpose_z")
    return s


def _rotation_3d(axis: np.ndarray, phi: float) -> np.ndarray:
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(phi) * k + (1 - math.cos(phi)) * (k @ k)


def _count(rng, lohi, n_max) -> int:
    return int(min(n_max, rng.integers(lohi[0], lohi[1] + 1)))


def draw(cfg: _config.AugmentConfig, rng, patch_shape, voxel_size) -> AugmentParams:
    """Draw the params of one sample (see the module docstring)."""
    from . import table

    if not isinstance(cfg, _config.AugmentConfig):
        raise TypeError(f"cfg: expected an AugmentConfig, got {type(cfg).__name__}")
    if not isinstance(rng, np.random.Generator):
        if isinstance(rng, (int, np.integer)):
            rng = np.random.default_rng(int(rng))
        else:
            raise TypeError(f"rng: expected a numpy.random.Generator or an int seed, got {type(rng).__name__}")
    p, v = _config._check_shapes(patch_shape, voxel_size)
    cap = dict(_config.capabilities(cfg, p, v), shape=p)
    ctx = _config.context_shape(cfg, p, v)
    d = Draw(cfg, rng, AugmentParams(p, ctx, v), cap, [])
    for op in table.ops():
        op.draw(d)
    d.params.applied = tuple(d.applied)
    return d.params


# ---------------------------------------------------------------- the built-in ops' draws
def draw_symmetry(d: Draw) -> None:
    """Exact symmetries (flips, rot90, transposes) -> ``perm`` / ``flip``."""
    s = _sym_matrix(d.cfg, d.rng, d.cap, d.applied)
    out = d.params
    out.perm = tuple(int(np.argmax(np.abs(s[i]))) for i in range(3))  # type: ignore[assignment]
    out.flip = tuple(bool(s[i, out.perm[i]] < 0) for i in range(3))  # type: ignore[assignment]


def draw_affine(d: Draw) -> None:
    """In-plane rotation, scale, out-of-plane rotation -> ``affine`` (source offset, voxels)."""
    cfg, rng, cap, applied, v = d.cfg, d.rng, d.cap, d.applied, d.params.voxel_size
    a = np.eye(3)
    vyx = np.diag([v[1], v[2]])
    if rng.random() < cfg.rotate_prob and cfg.rotate_max_deg > 0:
        th = math.radians(rng.uniform(-cfg.rotate_max_deg, cfg.rotate_max_deg))
        r = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        a[1:, 1:] = np.linalg.inv(vyx) @ r @ vyx
        applied.append("rotate")
    if rng.random() < cfg.scale_prob:
        a[1:, 1:] /= rng.uniform(*cfg.scale_range)
        applied.append("scale")
    if cap["rotate_3d"] and cfg.rotate_3d_max_deg > 0 and rng.random() < cfg.rotate_3d_prob:
        psi = rng.uniform(0, math.pi)
        phi = math.radians(rng.uniform(-cfg.rotate_3d_max_deg, cfg.rotate_3d_max_deg))
        vv = np.diag(v)
        r3 = np.linalg.inv(vv) @ _rotation_3d(np.array([0.0, math.cos(psi), math.sin(psi)]), phi) @ vv
        a = r3 @ a
        applied.append("rotate_3d")
    d.params.affine = a.astype(F32)


def draw_elastic(d: Draw) -> None:
    """Elastic control grid (nm -> voxels), clipped at 3 sigma so the margin bounds it."""
    cfg, rng, cap, out = d.cfg, d.rng, d.cap, d.params
    p, v = out.patch_shape, out.voxel_size
    spacing = tuple(max(cfg.elastic_spacing_nm / vi, 1.0) for vi in v)
    out.elastic_spacing = spacing  # type: ignore[assignment]
    if rng.random() < cfg.elastic_prob and cfg.elastic_sigma_nm[1] > 0:
        sigma = rng.uniform(*cfg.elastic_sigma_nm)
        g = np.zeros((3, *_grid.grid_shape(p, spacing)), dtype=np.float64)
        comps = (0, 1, 2) if cap["elastic_z"] else (1, 2)
        for ci in comps:
            g[ci] = np.clip(rng.normal(0.0, sigma, g.shape[1:]), -3 * sigma, 3 * sigma) / v[ci]
        out.elastic = g.astype(F32)
        d.applied.append("elastic")


def draw_misalign(d: Draw) -> None:
    """A step (every section from one on) or a slip (one section) shifted in-plane."""
    cfg, rng, out = d.cfg, d.rng, d.params
    pz, v = out.patch_shape[0], out.voxel_size
    if d.cap["sections"] and rng.random() < cfg.misalign_prob:
        shift = rng.uniform(-cfg.misalign_max_nm, cfg.misalign_max_nm, 2) / np.array(v[1:])
        m = np.zeros((pz, 2), dtype=np.float64)
        if rng.random() < cfg.misalign_step_prob:
            m[int(rng.integers(1, pz)):] = shift
            d.applied.append("misalign_step")
        else:
            m[int(rng.integers(0, pz))] = shift
            d.applied.append("misalign_slip")
        out.misalign = m.astype(F32)


def draw_missing_section(d: Draw) -> None:
    """Sections filled from a neighbour (``zsrc``) or blanked (``blank``)."""
    cfg, rng, out = d.cfg, d.rng, d.params
    pz = out.patch_shape[0]
    if d.cap["sections"] and rng.random() < cfg.missing_section_prob:
        n = _count(rng, cfg.missing_section_count, pz)
        zs = rng.choice(pz, size=n, replace=False)
        zsrc = np.arange(pz, dtype=np.int32)
        blank = np.zeros(pz, dtype=bool)
        for z in zs:
            if rng.random() < cfg.missing_section_copy_prob:
                nb = [q for q in (z - 1, z + 1) if 0 <= q < pz]
                zsrc[z] = nb[int(rng.integers(len(nb)))]
            else:
                blank[z] = True
        out.zsrc = zsrc if np.any(zsrc != np.arange(pz)) else None
        out.blank = blank if blank.any() else None
        out.missing_value = float(cfg.missing_section_value)
        d.applied.append("missing_section")


def draw_low_contrast(d: Draw) -> None:
    """Per-section contrast factors (1 = unchanged)."""
    cfg, rng, out = d.cfg, d.rng, d.params
    pz = out.patch_shape[0]
    if rng.random() < cfg.low_contrast_prob:
        n = _count(rng, cfg.low_contrast_count, pz)
        f = np.ones(pz, dtype=np.float64)
        f[rng.choice(pz, size=n, replace=False)] = rng.uniform(*cfg.low_contrast_factor, n)
        out.low_contrast = f.astype(F32)
        d.applied.append("low_contrast")


def draw_intensity(d: Draw) -> None:
    """Contrast, brightness, per-section jitter and gamma -> ``section_scale/shift``, ``gamma``."""
    cfg, rng, out = d.cfg, d.rng, d.params
    pz = out.patch_shape[0]
    scale, shift = np.ones(pz), np.zeros(pz)
    fired = []
    if rng.random() < cfg.contrast_prob:
        scale *= rng.uniform(*cfg.contrast_range)
        fired.append("contrast")
    if rng.random() < cfg.brightness_prob:
        shift += rng.uniform(*cfg.brightness_range)
        fired.append("brightness")
    if rng.random() < cfg.section_intensity_prob:
        scale *= rng.uniform(*cfg.section_contrast_range, pz)
        shift += rng.uniform(*cfg.section_brightness_range, pz)
        fired.append("section_intensity")
    if rng.random() < cfg.gamma_prob:
        out.gamma = float(rng.uniform(*cfg.gamma_range))
        fired.append("gamma")
    if fired:
        out.intensity = True
        out.section_scale, out.section_shift = scale.astype(F32), shift.astype(F32)
    d.applied.extend(fired)


def draw_lines(d: Draw) -> None:
    """Dark lines and charging bands -> rows of ``lines`` (``LINE_COLS``)."""
    cfg, rng, out = d.cfg, d.rng, d.params
    pz, py, px = out.patch_shape
    rows = []
    for kind, name in ((0, "line"), (1, "charging")):
        if rng.random() < getattr(cfg, f"{name}_prob"):
            for _ in range(_count(rng, getattr(cfg, f"{name}_count"), 64)):
                th = rng.uniform(0, math.pi)
                rows.append([rng.integers(pz), rng.uniform(0, py - 1), rng.uniform(0, px - 1),
                             math.cos(th), math.sin(th), rng.uniform(*getattr(cfg, f"{name}_width")),
                             rng.uniform(*getattr(cfg, f"{name}_strength")), kind])
            d.applied.append(name)
    if rows:
        out.lines = np.asarray(rows, dtype=F32)


def draw_missing_part(d: Draw) -> None:
    """Elliptic blobs set to a constant -> rows of ``blobs`` (``BLOB_COLS``)."""
    cfg, rng, out = d.cfg, d.rng, d.params
    pz, py, px = out.patch_shape
    if rng.random() < cfg.missing_part_prob:
        blobs = []
        for _ in range(_count(rng, cfg.missing_part_count, 64)):
            ry, rx = rng.uniform(*cfg.missing_part_radius, 2) * min(py, px) + 0.5
            psi = rng.uniform(0, math.pi)
            c, s = math.cos(psi), math.sin(psi)
            qa, qb, qc = c * c / ry**2 + s * s / rx**2, c * s * (1 / ry**2 - 1 / rx**2), s * s / ry**2 + c * c / rx**2
            blobs.append([rng.integers(pz), rng.uniform(0, py - 1), rng.uniform(0, px - 1),
                          qa, 2 * qb, qc, rng.uniform(*cfg.missing_part_value)])
        if blobs:
            out.blobs = np.asarray(blobs, dtype=F32)
        d.applied.append("missing_part")


def draw_motion_blur(d: Draw) -> None:
    """Sections blurred along a line -> rows of ``motion`` (``MOTION_COLS``)."""
    cfg, rng, out = d.cfg, d.rng, d.params
    pz = out.patch_shape[0]
    if rng.random() < cfg.motion_blur_prob:
        n = _count(rng, cfg.motion_blur_count, pz)
        lo, hi = cfg.motion_blur_length
        lengths = [2 * int(rng.integers((lo - 1) // 2, (hi - 1) // 2 + 1)) + 1 for _ in range(n)]
        zs = rng.choice(pz, size=n, replace=False)
        out.motion = np.asarray([[z, ln, rng.uniform(0, math.pi)] for z, ln in zip(zs, lengths)], dtype=F32)
        d.applied.append("motion_blur")


def draw_blur(d: Draw) -> None:
    """In-plane Gaussian blur sigma (voxels)."""
    if d.rng.random() < d.cfg.blur_prob:
        d.params.blur_sigma = float(d.rng.uniform(*d.cfg.blur_sigma))
        d.applied.append("blur")


def draw_noise(d: Draw) -> None:
    """Noise sigma and the 32-bit seed of its hashed normal values."""
    if d.rng.random() < d.cfg.noise_prob:
        d.params.noise_sigma = float(d.rng.uniform(*d.cfg.noise_sigma))
        d.params.noise_seed = int(d.rng.integers(0, 2**32))
        d.applied.append("noise")
