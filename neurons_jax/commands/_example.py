"""Load ``examples/train_flax.py`` (shipped in the wheel as ``neurons_jax.examples``)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_train_example() -> ModuleType:
    try:
        return importlib.import_module("neurons_jax.examples.train_flax")
    except ImportError:
        pass
    path = Path(__file__).resolve().parents[2] / "examples" / "train_flax.py"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the training example is missing from this installation")
    spec = importlib.util.spec_from_file_location("neurons_jax_train_flax", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod
