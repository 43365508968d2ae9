"""One way every benchmark writes its results: JSON to a temporary name, then renamed.

    >>> import tempfile, pathlib, json
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r" / "x.json"
    >>> write_json(p, {"a": 1.5}); json.loads(p.read_text())
    {'a': 1.5}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` (parents made; NumPy scalars as floats) via a temporary."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=indent, default=float))
    os.replace(tmp, path)
