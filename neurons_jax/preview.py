"""Batch previews: a PNG montage people look at before they trust a pipeline.

For each sample: the middle section of the image, the union classes as a colour overlay and
the instance ids as a random-colour overlay, titled with dataset and patch position. With
``targets`` (the ``{key: spec}`` the Loader was given, see ``nj.targets``) each target adds
columns, titled in a header row: affinities as RGB (their first three channels, named by
offset), boundaries as an overlay, distance as a heat map (its range over the batch in the
title), LSDs as two RGB triples (mean offset, channels 0-2, and the covariance's diagonal,
3-5, each channel stretched to [0, 1] over the batch), point prompts as markers on the image
(positives green, negatives red; filled on the section shown, rings on other sections). The
picture's size follows from the batch size, the patch's (Y, X), the columns and ``scale``
(:func:`montage_size`); past ``MAX_PICTURE_BYTES`` of RGB, :func:`check_picture_size` refuses
it before any data is read (``neurons-jax preview --scale 1000`` would need hundreds of GB).

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> from neurons_jax.preview import montage
    >>> ids = np.zeros((2, 4, 32, 32), np.uint32); ids[:, :, 8:24, 8:24] = 3
    >>> batch = {"image": np.random.rand(2, 4, 32, 32, 1).astype(np.float32),
    ...          "semantic": (ids > 0).astype(np.uint8), "instance": ids,
    ...          "dataset": np.array([0, 1]), "position": np.zeros((2, 3), int)}
    >>> montage(batch, ["a", "b"]).size
    (112, 124)
    >>> aff = nj.targets.Affinities()
    >>> batch.update({"affinity": aff(ids)["target"], "affinity_mask": aff(ids)["mask"]})
    >>> montage(batch, ["a", "b"], targets={"affinity": aff}).size
    (148, 156)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .rules import UNION_CLASSES

CLASS_COLOURS = np.array(
    [[0, 0, 0], [60, 130, 255], [255, 60, 60], [60, 220, 90], [255, 200, 40]], np.uint8
)
TITLE_H = 16
PAD = 4
HEADER_LINES = 2  # the column titles' lines, when there are target columns
MAX_PICTURE_BYTES = 256 << 20  # RGB canvas; PIL's resize and the PNG encoder add about as much
BASE_COLUMNS = ("image", "classes", "instances")
POSITIVE, NEGATIVE = (40, 230, 60), (240, 40, 40)
_HEAT = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], float)
HEAT = np.stack([np.interp(np.linspace(0, 4, 256), np.arange(5), _HEAT[:, c]) for c in range(3)],
                -1).astype(np.uint8)
"""256-entry heat-map colours (an inferno-like ramp, black -> purple -> orange -> pale yellow)."""

DEFAULT_TARGETS: dict[str, tuple[str, Callable[[], Any]]] = {
    "affinities": ("affinity", lambda: _targets().Affinities(offsets=_targets().LONG_RANGE)),
    "boundaries": ("boundary", lambda: _targets().Boundaries(width=1)),
    "distance": ("distance", lambda: _targets().Distance()),
    "lsd": ("lsd", lambda: _targets().LSD(sigma_nm=80.0)),
    "point_prompts": ("prompts", lambda: _targets().PointPrompts(n_pos=3, n_neg=3)),
}
"""Target name -> (batch key, spec with the preview's defaults): affinities with the 3
nearest-neighbour and 5 long-range offsets (``nj.targets.LONG_RANGE``), boundaries 1 voxel wide,
distance in nm (unclipped), LSDs with sigma 80 nm, 3 positive and 3 negative point prompts."""


def _targets():
    from . import targets

    return targets


def default_targets(names: Sequence[str]) -> dict[str, Any]:
    """``{key: spec}`` of target names (``"affinities"``, ``"lsd"``, ..., also comma-joined).

    >>> sorted(default_targets(["affinities,lsd"]))
    ['affinity', 'lsd']
    """
    out: dict[str, Any] = {}
    for name in (n.strip() for arg in names for n in str(arg).split(",")):
        if not name:
            continue
        if name not in DEFAULT_TARGETS:
            raise ValueError(f"--targets: unknown target {name!r}; expected one of "
                             f"{', '.join(DEFAULT_TARGETS)}")
        key, make = DEFAULT_TARGETS[name]
        out[key] = make()
    return out


def target_columns(targets: Mapping[str, Any] | None) -> int:
    """The number of columns ``targets`` add to the montage (LSDs 2, every other target 1)."""
    return sum(2 if _kind(spec) == "lsd" else 1 for spec in (targets or {}).values())


def montage_size(batch_size: int, patch_shape: Sequence[int], scale: int = 1,
                 extra_columns: int = 0) -> tuple[int, int]:
    """(width, height) in pixels of the montage of ``batch_size`` patches of ``patch_shape``
    (``extra_columns`` target columns add a header row of column titles).

    >>> montage_size(2, (4, 32, 32)), montage_size(2, (4, 32, 32), extra_columns=1)
    ((112, 124), (148, 156))
    """
    y, x = int(patch_shape[-2]), int(patch_shape[-1])
    cols = len(BASE_COLUMNS) + int(extra_columns)
    header = HEADER_LINES * TITLE_H if extra_columns else 0
    return cols * x * scale + (cols + 1) * PAD, batch_size * (y * scale + TITLE_H + PAD) + PAD + TITLE_H + header


def check_picture_size(batch_size: int, patch_shape: Sequence[int], scale: int,
                       max_bytes: int = MAX_PICTURE_BYTES, extra_columns: int = 0) -> tuple[int, int]:
    """``montage_size(...)``, or a ValueError naming ``--scale`` and the patch size when the
    picture would pass ``max_bytes`` (3 bytes a pixel).

    >>> check_picture_size(4, (8, 96, 96), 1000)
    Traceback (most recent call last):
    ValueError: --scale 1000 with patch 8x96x96 (--patch) and 4 samples (--batch-size) makes a 288016 x 384100 pixel picture (309 GiB); the limit is 256 MiB: use --scale 28 or less, or a smaller --patch or --batch-size
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"--scale must be a positive integer (pixel zoom); got {scale!r}")

    def size(s: int) -> tuple[int, int]:
        return montage_size(batch_size, patch_shape, s, extra_columns)

    w, h = size(int(scale))
    if 3 * w * h <= max_bytes:
        return w, h
    lo, hi = 0, int(scale)  # the largest scale that fits: lo fits (0 = none does), hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        fw, fh = size(mid)
        lo, hi = (mid, hi) if 3 * fw * fh <= max_bytes else (lo, mid)
    advice = f"use --scale {lo} or less, or" if lo else "use"
    dims = "x".join(str(int(v)) for v in patch_shape)
    cols = f" and {extra_columns} target column{'s' if extra_columns != 1 else ''} (--targets)" if extra_columns else ""
    nbytes = f"{3 * w * h / 2**30:.0f} GiB" if 3 * w * h >= 2**30 else f"{3 * w * h / 2**20:.0f} MiB"
    raise ValueError(
        f"--scale {scale} with patch {dims} (--patch) and {batch_size} sample{'s' if batch_size != 1 else ''} (--batch-size){cols} makes a "
        f"{w} x {h} pixel picture ({nbytes}); the limit is {max_bytes >> 20} MiB: {advice} a smaller "
        "--patch or --batch-size"
    )


def _grey(section: np.ndarray) -> np.ndarray:
    s = section.astype(np.float32)
    lo, hi = np.percentile(s, [1, 99])
    s = np.clip((s - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.repeat((s * 255).astype(np.uint8)[..., None], 3, -1)


def _instance_colours(ids: np.ndarray) -> np.ndarray:
    """A stable pseudo-random colour per id (a hash, no loop over ids); 0 is black."""
    h = ids.astype(np.uint64) * np.uint64(2654435761) + np.uint64(97)
    rgb = np.stack([(h >> np.uint64(s)) & np.uint64(255) for s in (0, 8, 16)], -1).astype(np.uint8)
    rgb = (rgb // 2 + 100).astype(np.uint8)
    rgb[ids == 0] = 0
    return rgb


def _blend(base: np.ndarray, over: np.ndarray, where: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    out = base.astype(np.float32)
    out[where] = (1 - alpha) * out[where] + alpha * over[where].astype(np.float32)
    return out.astype(np.uint8)


# ----------------------------------------------------------------------------- target columns
@dataclass
class Column:
    """One montage column: a title (lines joined by newlines) and, per sample ``b``, the RGB
    section ``draw(b, grey) -> (Y, X, 3) uint8`` plus markers ``(y, x, rgb, filled)``."""

    title: str
    draw: Callable[[int, np.ndarray], np.ndarray]
    markers: Callable[[int], list] = field(default=lambda b: [])


def _kind(spec) -> str:
    t = _targets()
    for cls, kind in ((t.Affinities, "affinities"), (t.Boundaries, "boundaries"),
                      (t.Distance, "distance"), (t.LSD, "lsd"), (t.PointPrompts, "point_prompts")):
        if isinstance(spec, cls):
            return kind
    return "other"


def _offset_name(o: Sequence[int]) -> str:
    nz = [(a, int(v)) for a, v in zip("zyx", o) if v]
    return f"{nz[0][0]}{nz[0][1]:+d}" if len(nz) == 1 else "(" + ",".join(str(int(v)) for v in o) + ")"


def _get(batch: Mapping, key: str) -> np.ndarray:
    if key not in batch:
        raise KeyError(f"targets: the batch has no {key!r} (keys: {', '.join(sorted(batch))}); "
                       "give the Loader the same targets as the preview")
    return np.asarray(batch[key])


def _stretch(x: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Each channel of ``x`` (..., C) mapped to [0, 1] by its range over ``on`` (0 elsewhere)."""
    x = x.astype(np.float32)
    sel = x[on] if on.any() else x.reshape(-1, x.shape[-1])
    lo, hi = sel.min(0), sel.max(0)
    return np.where(on[..., None], np.clip((x - lo) / np.maximum(hi - lo, 1e-6), 0, 1), 0)


def _rgb(x: np.ndarray) -> np.ndarray:
    """(..., C) values in [0, 1] -> (..., 3) uint8 (first three channels; missing ones 0)."""
    x = x[..., :3]
    if x.shape[-1] < 3:
        x = np.concatenate([x, np.zeros((*x.shape[:-1], 3 - x.shape[-1]), x.dtype)], -1)
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def _columns(key: str, spec, batch: Mapping, z: int) -> list[Column]:
    kind = _kind(spec)
    if kind == "point_prompts":
        return [_prompt_column(key, batch, z)]
    t = _get(batch, key)[:, z]  # (B, Y, X, C)
    labelled = np.asarray(batch["instance"])[:, z] > 0
    if kind == "affinities":
        names = " ".join(f"{c}:{_offset_name(o)}" for c, o in zip("RGB", spec.offsets))
        return [Column(f"{key}\n{names}", lambda b, g: _rgb(t[b].astype(np.float32)))]
    if kind == "boundaries":
        return [Column(f"{key}\nyellow: boundary",
                       lambda b, g: _blend(g, np.full_like(g, (255, 220, 0)), t[b, ..., 0] > 0, 0.85))]
    if kind == "lsd":
        off, var = _stretch(t[..., 0:3], labelled), _stretch(t[..., 3:6], labelled)
        return [Column(f"{key}: mean offset\nR:z G:y B:x", lambda b, g: _rgb(off[b])),
                Column(f"{key}: variance\nR:zz G:yy B:xx", lambda b, g: _rgb(var[b]))]
    if kind == "distance" or np.issubdtype(t.dtype, np.floating):
        d = t[..., 0].astype(np.float32)
        hi = float(d.max()) if d.size else 0.0
        unit = "" if getattr(spec, "normalize", False) or kind != "distance" else " nm"
        heat = HEAT[np.clip(d / max(hi, 1e-6) * 255, 0, 255).astype(np.uint8)]
        return [Column(f"{key}{'' if kind == 'distance' else ': ch 0'}\nheat 0-{hi:.4g}{unit}",
                       lambda b, g: heat[b])]
    hi = max(int(t.max()), 1) if t.size else 1
    return [Column(f"{key}\nRGB: ch 0-2", lambda b, g: _rgb(t[b].astype(np.float32) / hi))]


def _prompt_column(key: str, batch: Mapping, z: int) -> Column:
    pts, valid = _get(batch, key), _get(batch, f"{key}_valid").astype(bool)
    positive = _get(batch, f"{key}_positive").astype(bool)
    chosen = _get(batch, f"{key}_instance")
    inst = np.asarray(batch["instance"])[:, z]

    def draw(b: int, g: np.ndarray) -> np.ndarray:
        return _blend(g, np.full_like(g, (90, 160, 255)), (inst[b] == chosen[b]) & (chosen[b] != 0), 0.35)

    def markers(b: int) -> list:
        return [(int(p[1]), int(p[2]), POSITIVE if pos else NEGATIVE, int(p[0]) == z)
                for p, v, pos in zip(pts[b], valid[b], positive[b]) if v]

    return Column(f"{key} +green -red\nblue: instance", draw, markers)


def _title_tile(text: str, width: int, height: int) -> Image.Image:
    """``text`` drawn on a tile of the column's width (long titles are clipped, not spilled)."""
    tile = Image.new("RGB", (width, height), (24, 24, 24))
    ImageDraw.Draw(tile).multiline_text((0, 2), text, fill=(220, 220, 220), spacing=4)
    return tile


# ----------------------------------------------------------------------------- montage
def montage(batch: dict, names: Sequence[str], scale: int = 1,
            targets: Mapping[str, Any] | None = None) -> Image.Image:
    """One row per sample: image | union classes | instances | the columns of each of
    ``targets`` (``{key: spec}``, the batch holding ``batch[key]`` and its further outputs), all
    of the middle z section."""
    img = np.asarray(batch["image"])[..., 0]
    sem = np.asarray(batch["semantic"])
    inst = np.asarray(batch["instance"])
    ds = np.asarray(batch["dataset"])
    pos = np.asarray(batch["position"])
    B, Z, Y, X = sem.shape
    z = Z // 2
    extra = target_columns(targets)
    w, h = check_picture_size(B, (Z, Y, X), scale, extra_columns=extra)
    columns = [c for key, spec in (targets or {}).items() for c in _columns(key, spec, batch, z)]
    canvas = Image.new("RGB", (w, h), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    legend = "  ".join(f"{i}:{c}" for i, c in enumerate(UNION_CLASSES))
    draw.text((PAD, 2), legend, fill=(220, 220, 220))
    header = HEADER_LINES * TITLE_H if columns else 0
    pw, ph = X * scale, Y * scale
    if columns:
        for k, title in enumerate([*BASE_COLUMNS, *(c.title for c in columns)]):
            canvas.paste(_title_tile(title, pw, header), (PAD + k * (pw + PAD), TITLE_H))
    for b in range(B):
        grey = _grey(img[b, z])
        panels = [
            grey,
            _blend(grey, CLASS_COLOURS[np.minimum(sem[b, z], len(CLASS_COLOURS) - 1)], sem[b, z] > 0),
            _blend(grey, _instance_colours(inst[b, z]), inst[b, z] > 0, 0.6),
            *(c.draw(b, grey) for c in columns),
        ]
        marks = [[]] * len(BASE_COLUMNS) + [c.markers(b) for c in columns]
        top = TITLE_H + header + b * (ph + TITLE_H + PAD)
        name = names[ds[b]] if 0 <= ds[b] < len(names) else "padding"
        n_inst = len(np.unique(inst[b, z])) - 1
        draw.text((PAD, top + 2), f"{name}  z,y,x={tuple(int(v) for v in pos[b])}  ids={n_inst}", fill=(230, 230, 230))
        for k, (p, m) in enumerate(zip(panels, marks)):
            tile = Image.fromarray(p)
            if scale != 1:
                tile = tile.resize((pw, ph), Image.NEAREST)
            _draw_markers(tile, m, scale)
            canvas.paste(tile, (PAD + k * (pw + PAD), top + TITLE_H))
    return canvas


def _draw_markers(tile: Image.Image, markers: list, scale: int) -> None:
    """Discs (on the section shown) or rings (on other sections) centred on each (y, x)."""
    if not markers:
        return
    d, r = ImageDraw.Draw(tile), max(2, scale + 1)
    for y, x, rgb, filled in markers:
        cy, cx = (y + 0.5) * scale, (x + 0.5) * scale
        box = (cx - r, cy - r, cx + r, cy + r)
        d.ellipse(box, fill=rgb if filled else None, outline=rgb if not filled else (255, 255, 255),
                  width=1 if filled else 2)


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG to a temporary name, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
