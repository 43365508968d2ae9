"""Old name of :mod:`neurons_jax.backend`, kept for modules that still import it.

Every attribute is forwarded to ``neurons_jax.backend``, reading and writing: ``from
neurons_jax.ops._backend import gpu_available`` gets the backend's function, and setting an
attribute here (``monkeypatch.setattr(_backend, "_PROBE", ...)``, as tests do) sets it in the
backend, so the one probe cache that ``gpu_available`` reads changes. New code imports
``neurons_jax.backend``.

Example:
    >>> from neurons_jax import backend
    >>> from neurons_jax.ops import _backend
    >>> _backend.gpu_available is backend.gpu_available
    True
    >>> old = backend._PROBE
    >>> _backend._PROBE = (False, "patched")
    >>> backend.gpu_unavailable_reason()
    'patched'
    >>> _backend._PROBE = old
"""

from __future__ import annotations

import sys
import types

from .. import backend as _target


def _forward(name: str) -> property:
    return property(
        lambda self: getattr(_target, name),
        lambda self, value: setattr(_target, name, value),
        lambda self: delattr(_target, name),
        doc=f"neurons_jax.backend.{name}",
    )


class _Forward(types.ModuleType):
    """A module whose attributes are those of ``neurons_jax.backend``: each existing one is a
    read/write property (so monkeypatch sees a data descriptor and restores through it); names
    the backend gains later are read through ``__getattr__``."""

    def __getattr__(self, name: str):
        return getattr(_target, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(_target)) | set(self.__dict__))


for _name in vars(_target):
    if not (_name.startswith("__") and _name.endswith("__")):
        setattr(_Forward, _name, _forward(_name))
sys.modules[__name__].__class__ = _Forward
