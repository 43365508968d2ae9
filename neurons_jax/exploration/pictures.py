"""Pictures of a volume pair: an XY montage with overlays and XZ/YZ sections at physical aspect.

:func:`xy_montage`: ``sections`` evenly spaced z sections, one row each: the image, the union
classes in colour (the colours of ``neurons-jax preview``: neuron blue, cleft red,
mitochondria green, mito_boundary yellow) and the instances in random colours (native ids of
non-background classes; for a boundary-separated rule, ``nj.ops.boundary_separated_instances``
of the section). :func:`side_sections`: the XZ section at the middle y and the YZ section at the
middle x, each stretched along z by ``voxel_z / voxel_x`` so one pixel is the same length in
every direction (anisotropy shows as it is). Only the planes drawn are read; panels wider than
``max_px`` are shown with a stride.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> from neurons_jax.datasets.base import VolumePair
    >>> img = nj.Volume.from_array(np.zeros((4, 32, 32), np.uint8), (40, 4, 4))
    >>> lab = nj.Volume.from_array(np.ones((4, 32, 32), np.uint32), (40, 4, 4))
    >>> pair = VolumePair("v", img, lab)
    >>> xy_montage(pair, "snemi3d", sections=2).size, side_sections(pair, "snemi3d").size
    ((112, 104), (112, 120))
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..ops import boundary_separated_instances, union_semantic
from ..preview import CLASS_COLOURS, _blend, _grey, _instance_colours
from ..rules import LabelRule, get_rule

PAD = 4
TITLE_H = 14
MAX_PX = 384  # widest panel drawn at full resolution
MAX_STRETCH_PX = 1024  # tallest z stretch of a side section


def section_z(depth: int, sections: int) -> list[int]:
    """``sections`` z indices spread evenly inside ``[0, depth)`` (each at most once).

    >>> section_z(100, 4)
    [12, 37, 62, 87]
    """
    k = max(1, min(int(sections), int(depth)))
    return sorted({int(v) for v in ((np.arange(k) + 0.5) * depth / k)})


def _instances(lab: np.ndarray, sem: np.ndarray, rule: LabelRule) -> np.ndarray:
    if rule.instances == "boundary_separated":
        return boundary_separated_instances(lab, rule.interior, rule.boundary, connectivity=4)[0]
    if rule.instances == "none":
        return np.zeros(lab.shape, np.uint32)
    return np.where(sem > 0, lab, 0)


def _panels(img: np.ndarray, lab: np.ndarray | None, rule: LabelRule) -> list[np.ndarray]:
    grey = _grey(img)
    if lab is None:
        return [grey]
    sem = union_semantic(lab, rule)
    inst = _instances(lab, sem, rule)
    return [grey,
            _blend(grey, CLASS_COLOURS[np.minimum(sem, len(CLASS_COLOURS) - 1)], sem > 0),
            _blend(grey, _instance_colours(inst), inst > 0, 0.6)]


def _stride(shape, max_px: int) -> int:
    return max(1, -(-max(shape) // max_px))


def _sheet(rows: list[tuple[str, list[np.ndarray]]]) -> Image.Image:
    """Rows of equally sized panels, each row under its title."""
    h, w = rows[0][1][0].shape[:2]
    n = max(len(p) for _, p in rows)
    canvas = Image.new("RGB", (n * (w + PAD) + PAD, len(rows) * (h + TITLE_H + PAD) + PAD), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    for r, (title, panels) in enumerate(rows):
        top = PAD + r * (h + TITLE_H + PAD)
        draw.text((PAD, top), title, fill=(230, 230, 230))
        for k, p in enumerate(panels):
            canvas.paste(Image.fromarray(p), (PAD + k * (w + PAD), top + TITLE_H))
    return canvas


def xy_montage(pair, rule: str | LabelRule, sections: int = 4, max_px: int = MAX_PX) -> Image.Image:
    """Rows of z sections: image | union classes | instances."""
    rule = get_rule(rule)
    Z, Y, X = pair.image.shape
    s = _stride((Y, X), max_px)
    rows = []
    for z in section_z(Z, sections):
        box = (slice(z, z + 1), slice(None), slice(None))
        img = pair.image.read(box)[0, ::s, ::s]
        lab = None if pair.label is None else pair.label.read(box)[0, ::s, ::s]
        stride = f" (every {s}th pixel)" if s > 1 else ""
        rows.append((f"z={z}{stride}", _panels(img, lab, rule)))
    return _sheet(rows)


def _stretch(panel: np.ndarray, factor: float, stride: int) -> np.ndarray:
    """Resize a (Z, W) panel to height Z * factor (nearest), width as strided."""
    height = int(min(MAX_STRETCH_PX, max(1, round(panel.shape[0] * factor))))
    return np.asarray(Image.fromarray(panel).resize((panel.shape[1], height), Image.NEAREST))


def side_sections(pair, rule: str | LabelRule, max_px: int = MAX_PX) -> Image.Image:
    """XZ (middle y) and YZ (middle x) sections at physical aspect, image | classes | instances."""
    rule = get_rule(rule)
    Z, Y, X = pair.image.shape
    vz, vy, vx = pair.image.voxel_size
    rows = []
    cuts = (("XZ", Y // 2, (slice(None), slice(Y // 2, Y // 2 + 1), slice(None)), vx),
            ("YZ", X // 2, (slice(None), slice(None), slice(X // 2, X // 2 + 1)), vy))
    s = _stride((Y, X), max_px)
    for name, at, box, v_in in cuts:
        img = pair.image.read(box).reshape(Z, -1)[:, ::s]
        lab = None if pair.label is None else pair.label.read(box).reshape(Z, -1)[:, ::s]
        factor = vz / (v_in * s)  # z pixels per in-plane pixel at the same length
        panels = [_stretch(p, factor, s) for p in _panels(img, lab, rule)]
        where = "y" if name == "XZ" else "x"
        rows.append((f"{name} at {where}={at}, z stretched x{vz / v_in:g}", panels))
    w = max(r[1][0].shape[1] for r in rows)
    h = max(r[1][0].shape[0] for r in rows)
    padded = [(t, [np.pad(p, ((0, h - p.shape[0]), (0, w - p.shape[1]), (0, 0)), constant_values=24)
                   for p in ps]) for t, ps in rows]
    return _sheet(padded)
