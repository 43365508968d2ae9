"""neurons_jax: the connectomics EM input pipeline for JAX/Flax.

Example:
    >>> import neurons_jax as nj
    >>> nj.UNION_CLASSES
    ('background', 'neuron', 'cleft', 'mitochondria', 'mito_boundary')

Submodules (``ops``, ``augment``, ``datasets``, ``sample``, ``pipeline``) load on first use, so
``import neurons_jax`` stays light and never imports CuPy or JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import rules, volumes
from .rules import UNION_CLASSES
from .volumes import Volume

__version__ = "0.1.0"
_LAZY = ("backend", "ops", "augment", "datasets", "download", "sample", "sampling", "pipeline", "preview", "stage",
         "transforms", "device_stage", "cli", "targets")
__all__ = ["UNION_CLASSES", "Volume", "rules", "volumes", "explore", "view", *_LAZY]


def explore(*args: Any, **kwargs: Any) -> dict:
    """Dataset exploration report (``neurons_jax.exploration.explore``; loads on first call)."""
    from .exploration import explore as _explore

    return _explore(*args, **kwargs)


def view(*args: Any, **kwargs: Any) -> Any:
    """Neuroglancer view of a dataset or a batch (``neurons_jax.viewer.view``; loads on first call)."""
    from .viewer import view as _view

    return _view(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'neurons_jax' has no attribute {name!r}")
