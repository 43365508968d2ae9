"""Dataset specs as the command line and configs give them: ``KIND=ROOT[:WEIGHT]`` -> datasets.

``parse_dataset_spec`` reads one ``--dataset`` value (KIND any registered kind, generic
included; the weight defaults to 1 and must be a positive finite number);
``sources_from_specs`` opens ``{name: (kind, root, weight)}`` as the ``{name: (dataset,
weight)}`` mapping ``nj.pipeline.Loader`` takes, through each kind's registered reader.

Example:
    >>> parse_dataset_spec("mitoem2=prepared/mitoem2:2")
    ('mitoem2', 'prepared/mitoem2', 2.0)
    >>> parse_dataset_spec("generic=fib25.h5:image")
    ('generic', 'fib25.h5:image', 1.0)
    >>> list(specs_by_name(["snemi3d=a", "snemi3d=b:2", "mitoem2=c"]))
    ['snemi3d', 'snemi3d_2', 'mitoem2']
    >>> sources = sources_from_specs({"m": ("mitoem2", "prepared/mitoem2", 2.0)})   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .registry import get_kind, kind_names

SPEC_FORM = "KIND=ROOT[:WEIGHT]"


def parse_dataset_spec(text: str) -> tuple[str, str, float]:
    """``"KIND=ROOT[:WEIGHT]"`` -> ``(kind, root, weight)``.

    A last ``:WEIGHT`` that reads as a number is the weight (it must be positive and finite);
    otherwise the colon belongs to the root (``file.h5:key``, ``http://host:8000/...``).
    """
    if not isinstance(text, str):
        raise TypeError(f"dataset spec must be a string {SPEC_FORM}; got {type(text).__name__}")
    kind, sep, rest = text.partition("=")
    names = kind_names()
    if not sep or not kind or not rest:
        raise ValueError(f"dataset {text!r}: expected {SPEC_FORM} with KIND one of {', '.join(names)}")
    if kind not in names:
        raise ValueError(f"dataset {text!r}: unknown kind {kind!r}; expected one of {', '.join(names)}")
    root, weight = rest, 1.0
    head, colon, tail = rest.rpartition(":")
    if colon and _is_number(tail):
        root, weight = head, check_weight(tail, f"dataset {text!r}")
    elif colon and not tail:
        raise ValueError(f"dataset {text!r}: empty weight after ':'; expected {SPEC_FORM} with a positive WEIGHT")
    if not root:
        raise ValueError(f"dataset {text!r}: empty ROOT; expected {SPEC_FORM}")
    return kind, root, weight


def check_weight(value: Any, what: str) -> float:
    """A mixing weight: a positive finite number (``what`` names it in the error)."""
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: weight must be a positive finite number; got {value!r}") from None
    if not math.isfinite(w) or w <= 0:
        raise ValueError(f"{what}: weight must be a positive finite number; got {value!r}")
    return w


def sources_from_specs(specs: Mapping[str, Sequence[Any]], split: str = "train") -> dict[str, tuple[Any, float]]:
    """``{name: (kind, root, weight)}`` -> ``{name: (dataset, weight)}`` for ``Loader``.

    A spec may leave the weight out (``(kind, root)``: weight 1). Each dataset is opened with
    ``get_kind(kind).reader(root, split)``.
    """
    out = {}
    for name, spec in specs.items():
        if isinstance(spec, str) or not isinstance(spec, Sequence) or len(spec) not in (2, 3):
            raise ValueError(f"dataset {name!r}: expected (kind, root[, weight]); got {spec!r}")
        kind, root = spec[0], spec[1]
        weight = check_weight(spec[2] if len(spec) == 3 else 1.0, f"dataset {name!r}")
        try:
            reader = get_kind(kind).reader
        except ValueError as e:
            raise ValueError(f"dataset {name!r}: {e}") from None
        out[name] = (reader(root, split), weight)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def specs_by_name(texts: Sequence[str]) -> dict[str, tuple[str, str, float]]:
    """Several ``--dataset`` values -> ``{name: (kind, root, weight)}``, named by kind; a second
    spec of the same kind is ``kind_2`` (and so on), never dropped."""
    out: dict[str, tuple[str, str, float]] = {}
    for text in texts:
        spec = parse_dataset_spec(text)
        name, k = spec[0], 1
        while name in out:
            k += 1
            name = f"{spec[0]}_{k}"
        out[name] = spec
    return out

