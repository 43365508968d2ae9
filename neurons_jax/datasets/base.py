"""The dataset object every reader returns: named image/label Volume pairs plus their rule.

Example:
    >>> import numpy as np, neurons_jax as nj
    >>> from neurons_jax.datasets.base import Dataset, VolumePair
    >>> img = nj.Volume.from_array(np.zeros((4, 8, 8), np.uint8), (30, 6, 6))
    >>> lab = nj.Volume.from_array(np.ones((4, 8, 8), np.uint32), (30, 6, 6))
    >>> ds = Dataset("snemi3d", "train", (VolumePair("AC4", img, lab),))
    >>> ds.voxel_size, ds.image.shape
    ((30.0, 6.0, 6.0), (4, 8, 8))
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..rules import LabelRule, get_rule
from ..volumes import Volume

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class VolumePair:
    """One image volume and its label volume (same ZYX shape, same voxel grid)."""

    name: str
    image: Volume
    label: Volume | None
    mask: Volume | None = None

    def __post_init__(self):
        self.image.require_voxel_size("a dataset image (sampling and augmentation)")
        for other, what in ((self.label, "label"), (self.mask, "mask")):
            if other is not None and tuple(other.shape) != tuple(self.image.shape):
                raise ValueError(
                    f"{self.name}: {what} shape {tuple(other.shape)} does not match image shape "
                    f"{tuple(self.image.shape)} ({other.name} vs {self.image.name})"
                )


@dataclass(frozen=True)
class Dataset:
    """A dataset split: ``kind`` selects the label rule; ``pairs`` are its volumes.

    ``image``/``label``/``voxel_size`` are those of the first pair (most datasets have one
    volume per split; CREMI and MitoEM2 have several, all in ``pairs``).
    """

    kind: str
    split: str
    pairs: tuple[VolumePair, ...]
    root: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {self.split!r}")
        if not self.pairs:
            raise ValueError(f"{self.kind} ({self.root or 'no root'}): no volumes for split {self.split!r}")

    @property
    def rule(self) -> LabelRule:
        return get_rule(self.kind)

    @property
    def image(self) -> Volume:
        return self.pairs[0].image

    @property
    def label(self) -> Volume | None:
        return self.pairs[0].label

    @property
    def voxel_size(self) -> tuple[float, ...]:
        return self.pairs[0].image.voxel_size

    def __len__(self) -> int:
        return len(self.pairs)

    def summary(self) -> str:
        shapes = ", ".join(f"{p.name} {p.image.shape}" for p in self.pairs)
        return f"{self.kind}/{self.split}: {len(self.pairs)} volume(s) [{shapes}] voxel {self.voxel_size} nm"
