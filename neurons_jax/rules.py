"""The union label space and the per-dataset rules that map native labels into it.

Every dataset kind has one :class:`LabelRule`: a sorted table of inclusive id ranges, each
mapped to a union class, plus how instances are obtained. ``nj.ops.union_semantic`` applies
the table (one vectorised pass on the CPU, one kernel on the GPU); nothing here loops over
voxels or labels.

Example:
    >>> import neurons_jax as nj
    >>> nj.rules.get_rule("cremi3d").ranges[1]
    (1000000, 1999999, 2)
    >>> _ = nj.rules.register_rule("my_mito", [(1, 1, "mitochondria")])
    >>> nj.rules.get_rule("my_mito").instances
    'ids'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

UNION_CLASSES: tuple[str, ...] = ("background", "neuron", "cleft", "mitochondria", "mito_boundary")
"""The five union classes; a class's index is its uint8 value in ``semantic`` batches."""

U64_MAX = 2**64 - 1
CREMI_CLEFT_OFFSET = 1_000_000
CREMI_MITO_OFFSET = 2_000_000

INSTANCE_MODES = ("ids", "boundary_separated", "none")


def class_index(name: str) -> int:
    """Index of a union class name; a clear error for an unknown one."""
    try:
        return UNION_CLASSES.index(name)
    except ValueError:
        raise ValueError(
            f"unknown union class {name!r}: expected one of {', '.join(UNION_CLASSES)}"
        ) from None


@dataclass(frozen=True)
class LabelRule:
    """How one dataset kind's native label ids map to union classes.

    ``ranges`` holds ``(lo, hi, class_index)`` with inclusive bounds, sorted and disjoint;
    ids outside every range are background. ``instances`` says how instance ids are made:
    ``"ids"`` (the native ids are instances; relabelled after cropping),
    ``"boundary_separated"`` (3-class semantic labels, instances recovered by
    ``boundary_separated_instances``) or ``"none"``.
    """

    kind: str
    ranges: tuple[tuple[int, int, int], ...]
    instances: str = "ids"
    interior: int = 1
    boundary: int = 2

    def classes_present(self) -> tuple[str, ...]:
        return tuple(sorted({UNION_CLASSES[c] for _, _, c in self.ranges}, key=class_index))

    def union_class_of(self, native_id: int) -> int:
        """The union class index the table gives a native id (0 outside every range)."""
        for lo, hi, c in self.ranges:
            if lo <= native_id <= hi:
                return c
        return 0

    def instance_classes(self) -> tuple[int, int]:
        """Union classes ``(interior, boundary)`` of a boundary-separated rule: the classes its
        native ``interior`` and ``boundary`` ids map to (what the training stage separates)."""
        return self.union_class_of(self.interior), self.union_class_of(self.boundary)


_RULES: dict[str, LabelRule] = {}


def _normalise(kind: str, ranges: Iterable[Sequence]) -> tuple[tuple[int, int, int], ...]:
    out = []
    for r in ranges:
        if len(r) != 3:
            raise ValueError(f"rule {kind!r}: each range is (lo, hi, class); got {r!r}")
        lo, hi, cls = r
        c = class_index(cls) if isinstance(cls, str) else int(cls)
        if not 0 <= c < len(UNION_CLASSES):
            raise ValueError(f"rule {kind!r}: class index {c} is outside 0..{len(UNION_CLASSES) - 1}")
        lo, hi = int(lo), int(hi)
        if not 0 <= lo <= hi <= U64_MAX:
            raise ValueError(f"rule {kind!r}: range ({lo}, {hi}) must satisfy 0 <= lo <= hi < 2**64")
        out.append((lo, hi, c))
    out.sort()
    for (_, hi0, _), (lo1, _, _) in zip(out, out[1:]):
        if lo1 <= hi0:
            raise ValueError(f"rule {kind!r}: ranges overlap at id {lo1}")
    return tuple(out)


def register_rule(
    kind: str,
    ranges: Iterable[Sequence],
    instances: str = "ids",
    *,
    interior: int = 1,
    boundary: int = 2,
    overwrite: bool = False,
) -> LabelRule:
    """Register the union mapping of a new dataset kind (class names or indices)."""
    if instances not in INSTANCE_MODES:
        raise ValueError(f"rule {kind!r}: instances must be one of {INSTANCE_MODES}; got {instances!r}")
    if kind in _RULES and not overwrite:
        raise ValueError(f"a label rule for kind {kind!r} is already registered (pass overwrite=True)")
    rule = LabelRule(kind, _normalise(kind, ranges), instances, interior, boundary)
    _RULES[kind] = rule
    return rule


def get_rule(kind: str | LabelRule) -> LabelRule:
    """The rule of a dataset kind (or the rule itself when one is passed)."""
    if isinstance(kind, LabelRule):
        return kind
    try:
        return _RULES[kind]
    except KeyError:
        raise ValueError(
            f"unknown dataset kind {kind!r}: expected one of {', '.join(sorted(_RULES))} "
            "(or register one with nj.rules.register_rule)"
        ) from None


def known_kinds() -> tuple[str, ...]:
    return tuple(sorted(_RULES))


def unregister_rule(kind: str) -> None:
    """Remove the rule of ``kind`` (``nj.datasets.unregister_kind`` uses it for the rules it made)."""
    if kind not in _RULES:
        raise ValueError(f"no label rule for kind {kind!r} is registered; registered: {', '.join(sorted(_RULES))}")
    del _RULES[kind]


# The four datasets of docs/datasets.md. CREMI's clefts carry uint64 max as "no data": readers turn
# it into 0 before the offset is added, and the table stops below it so it stays background.
register_rule("snemi3d", [(1, U64_MAX, "neuron")])
register_rule("microns", [(1, U64_MAX, "neuron")])
register_rule(
    "cremi3d",
    [
        (1, CREMI_CLEFT_OFFSET - 1, "neuron"),
        (CREMI_CLEFT_OFFSET, CREMI_MITO_OFFSET - 1, "cleft"),
        (CREMI_MITO_OFFSET, U64_MAX - 1, "mitochondria"),
    ],
)
register_rule(
    "mitoem2",
    [(1, 1, "mitochondria"), (2, 2, "mito_boundary")],
    instances="boundary_separated",
)
register_rule("generic", [(1, U64_MAX, "neuron")])
