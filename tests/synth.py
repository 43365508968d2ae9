"""Small synthetic datasets for pipeline tests (in memory, built in milliseconds)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

import neurons_jax as nj
from neurons_jax.datasets.base import Dataset, VolumePair


def instances(shape, n_seeds: int, seed: int) -> np.ndarray:
    """A dense Voronoi-like instance volume (ids 1..n) with some background."""
    rng = np.random.default_rng(seed)
    pts = np.zeros(shape, np.uint32)
    idx = tuple(rng.integers(0, s, n_seeds) for s in shape)
    pts[idx] = np.arange(1, n_seeds + 1, dtype=np.uint32)
    _, ind = ndimage.distance_transform_edt(pts == 0, sampling=(3, 1, 1), return_indices=True)
    lab = pts[tuple(ind)]
    return lab


def render(label: np.ndarray, seed: int) -> np.ndarray:
    """EM-like image: bright cytoplasm, dark membranes on label boundaries."""
    rng = np.random.default_rng(seed)
    b = np.zeros(label.shape, bool)
    for ax in (1, 2):
        d = np.diff(label, axis=ax) != 0
        sl = [slice(None)] * 3
        sl[ax] = slice(1, None)
        b[tuple(sl)] |= d
        sl[ax] = slice(0, -1)
        b[tuple(sl)] |= d
    img = 170 + rng.normal(0, 12, label.shape)
    img[b] = 50
    return np.clip(img, 0, 255).astype(np.uint8)


def dataset(kind: str, shape=(24, 96, 96), seed: int = 0, split: str = "train", vs=None) -> Dataset:
    lab = instances(shape, 40, seed).astype(np.uint64)
    if kind == "cremi3d":
        lab = np.where(lab % 5 == 0, lab + 1_000_000, lab)
        lab = np.where(lab % 7 == 0, lab + 2_000_000, lab)
    elif kind == "mitoem2":
        mito = (lab % 3 == 0).astype(np.uint8)
        edge = ndimage.grey_dilation(lab, size=(1, 3, 3)) != ndimage.grey_erosion(lab, size=(1, 3, 3))
        lab = np.where(mito & edge & (lab > 0), 2, mito).astype(np.uint8)
        lab = np.where((mito == 0), 0, lab).astype(np.uint8)
    img = render(instances(shape, 40, seed), seed)
    vs = vs or {"snemi3d": (30, 6, 6), "cremi3d": (40, 4, 4), "mitoem2": (16, 16, 16)}.get(kind, (40, 8, 8))
    image = nj.Volume.from_array(img, vs, name=f"{kind}-image")
    label = nj.Volume.from_array(lab, vs, name=f"{kind}-label")
    if split != "train":
        nz = shape[0]
        cut = int(nz * 0.8)
        image, label = image.window(z=(cut, nz)), label.window(z=(cut, nz))
    elif kind != "mitoem2":
        cut = int(shape[0] * 0.8)
        image, label = image.window(z=(0, cut)), label.window(z=(0, cut))
    return Dataset(kind, split, (VolumePair(f"{kind}0", image, label),), root=f"synthetic:{kind}")
