"""Batch previews: a PNG montage people look at before they trust a pipeline.

For each sample: the middle section of the image, the union classes as a colour overlay and
the instance ids as a random-colour overlay, titled with dataset and patch position. The
picture's size follows from the batch size, the patch's (Y, X) and ``scale``
(:func:`montage_size`); past ``MAX_PICTURE_BYTES`` of RGB, :func:`check_picture_size` refuses
it before any data is read (``neurons-jax preview --scale 1000`` would need hundreds of GB).

Example:
    >>> import numpy as np
    >>> from neurons_jax.preview import montage
    >>> batch = {"image": np.random.rand(2, 4, 32, 32, 1).astype(np.float32),
    ...          "semantic": np.zeros((2, 4, 32, 32), np.uint8),
    ...          "instance": np.zeros((2, 4, 32, 32), np.uint32),
    ...          "dataset": np.array([0, 1]), "position": np.zeros((2, 3), int)}
    >>> montage(batch, ["a", "b"]).size
    (112, 124)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .rules import UNION_CLASSES

CLASS_COLOURS = np.array(
    [[0, 0, 0], [60, 130, 255], [255, 60, 60], [60, 220, 90], [255, 200, 40]], np.uint8
)
TITLE_H = 16
PAD = 4
MAX_PICTURE_BYTES = 256 << 20  # RGB canvas; PIL's resize and the PNG encoder add about as much


def montage_size(batch_size: int, patch_shape: Sequence[int], scale: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of the montage of ``batch_size`` patches of ``patch_shape``.

    >>> montage_size(2, (4, 32, 32))
    (112, 124)
    """
    y, x = int(patch_shape[-2]), int(patch_shape[-1])
    return 3 * x * scale + 4 * PAD, batch_size * (y * scale + TITLE_H + PAD) + PAD + TITLE_H


def check_picture_size(batch_size: int, patch_shape: Sequence[int], scale: int,
                       max_bytes: int = MAX_PICTURE_BYTES) -> tuple[int, int]:
    """``montage_size(...)``, or a ValueError naming ``--scale`` and the patch size when the
    picture would pass ``max_bytes`` (3 bytes a pixel).

    >>> check_picture_size(4, (8, 96, 96), 1000)
    Traceback (most recent call last):
    ValueError: --scale 1000 with patch 8x96x96 (--patch) and 4 samples (--batch-size) makes a 288016 x 384100 pixel picture (309 GiB); the limit is 256 MiB: use --scale 28 or less, or a smaller --patch or --batch-size
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"--scale must be a positive integer (pixel zoom); got {scale!r}")
    w, h = montage_size(batch_size, patch_shape, int(scale))
    if 3 * w * h <= max_bytes:
        return w, h
    lo, hi = 0, int(scale)  # the largest scale that fits: lo fits (0 = none does), hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        fw, fh = montage_size(batch_size, patch_shape, mid)
        lo, hi = (mid, hi) if 3 * fw * fh <= max_bytes else (lo, mid)
    advice = f"use --scale {lo} or less, or" if lo else "use"
    dims = "x".join(str(int(v)) for v in patch_shape)
    size = f"{3 * w * h / 2**30:.0f} GiB" if 3 * w * h >= 2**30 else f"{3 * w * h / 2**20:.0f} MiB"
    raise ValueError(
        f"--scale {scale} with patch {dims} (--patch) and {batch_size} sample{'s' if batch_size != 1 else ''} (--batch-size) makes a "
        f"{w} x {h} pixel picture ({size}); the limit is {max_bytes >> 20} MiB: {advice} a smaller "
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


def montage(batch: dict, names: Sequence[str], scale: int = 1) -> Image.Image:
    """One row per sample: image | union classes | instances (middle z section)."""
    img = np.asarray(batch["image"])[..., 0]
    sem = np.asarray(batch["semantic"])
    inst = np.asarray(batch["instance"])
    ds = np.asarray(batch["dataset"])
    pos = np.asarray(batch["position"])
    B, Z, Y, X = sem.shape
    z = Z // 2
    w, h = check_picture_size(B, (Z, Y, X), scale)
    canvas = Image.new("RGB", (w, h), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    legend = "  ".join(f"{i}:{c}" for i, c in enumerate(UNION_CLASSES))
    draw.text((PAD, 2), legend, fill=(220, 220, 220))
    for b in range(B):
        grey = _grey(img[b, z])
        panels = [
            grey,
            _blend(grey, CLASS_COLOURS[np.minimum(sem[b, z], len(CLASS_COLOURS) - 1)], sem[b, z] > 0),
            _blend(grey, _instance_colours(inst[b, z]), inst[b, z] > 0, 0.6),
        ]
        top = TITLE_H + b * (Y * scale + TITLE_H + PAD)
        name = names[ds[b]] if 0 <= ds[b] < len(names) else "padding"
        n_inst = len(np.unique(inst[b, z])) - 1
        draw.text((PAD, top + 2), f"{name}  z,y,x={tuple(int(v) for v in pos[b])}  ids={n_inst}", fill=(230, 230, 230))
        for k, p in enumerate(panels):
            tile = Image.fromarray(p)
            if scale != 1:
                tile = tile.resize((X * scale, Y * scale), Image.NEAREST)
            canvas.paste(tile, (PAD + k * (X * scale + PAD), top + TITLE_H))
    return canvas


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG to a temporary name, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
