"""Grain worker processes for the Loader: the main-script guard, shared memory, exit.

Grain's ``mp_prefetch`` workers are *spawned*: each re-imports the main script, so a script
must start a Loader with workers under ``if __name__ == "__main__":``. ``refuse_spawned_import``
checks that in the parent, against the script's source, before any process starts (a worker
dying while its parent still writes the pipeline into its pipe would deadlock the parent).

Batches arrive in ``SharedMemoryArray`` s; ``owned`` copies them to plain arrays (the blocks are
freed at once), and ``flush_shared_memory_deletes`` waits for Grain's deletion thread, so that
nothing is unlinked after the interpreter starts tearing modules down. Arrays still alive then
made grain 0.2.18's ``SharedMemoryArray.__del__`` print "Exception ignored ... 'NoneType' object
has no attribute 'mmap'" (its module globals are already None) and the resource tracker report
leaked shared memory; ``_close_live_loaders`` (atexit, registered after Grain's own handlers, so
it runs before them) closes loaders left open.

Example:
    >>> owned({"a": np.zeros(2), "b": [np.ones(1)]})
    {'a': array([0., 0.]), 'b': [array([1.])]}
    >>> unguarded_main_line() is None   # under pytest: the main module is guarded
    True
"""

from __future__ import annotations

import ast
import atexit
import multiprocessing
import multiprocessing.util  # registers its exit handler (Grain's finalizers) before ours: ours runs first
import os
import sys
import weakref
from typing import Any

import numpy as np

GUARD_ADVICE = ("put the code that builds and iterates the Loader under `if __name__ == \"__main__\":` "
                "(the workers are spawned processes, which re-import the script)")


def refuse_spawned_import() -> None:
    """Raise when a Loader with workers starts from the unguarded top level of the main script.

    Grain's workers are spawned: each re-imports ``__main__``, and a script without an
    ``if __name__ == "__main__":`` guard would start workers of its own there (and a worker
    that dies while its parent still writes the pipeline to it deadlocks the parent). Checked
    in the parent (the main script's top-level line that led here, against its source) and,
    should a worker get that far, in the worker itself.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(f"Loader(worker_count > 0) started while a worker process imports the main "
                           f"script: {GUARD_ADVICE}")
    where = unguarded_main_line()
    if where is not None:
        raise RuntimeError(f"{where[0]}:{where[1]}: Loader(worker_count > 0) started from the top level "
                           f"of the main script, outside `if __name__ == \"__main__\":`; {GUARD_ADVICE}")


def unguarded_main_line() -> tuple[str, int] | None:
    """(path, line) of the main script's top-level statement running now when it is not an
    ``if __name__ == "__main__":`` block; None when guarded, or with no script file (``-c``, a
    REPL, a notebook), whose workers do not re-run it."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or not str(path).endswith(".py") or not os.path.isfile(path):
        return None
    spec_name = getattr(getattr(main, "__spec__", None), "name", "") or ""
    if spec_name == "__main__" or spec_name.endswith(".__main__"):
        return None  # ``python -m pkg``: spawned processes do not re-run pkg/__main__.py
    line, frame = None, sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__":
            line = frame.f_lineno
        frame = frame.f_back
    if line is None:
        return None
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return None
    return None if _guarded(tree.body, line) else (str(path), line)


def _guarded(body: list[ast.stmt], line: int) -> bool:
    """Whether ``line`` lies inside an ``if __name__ == "__main__":`` block of ``body`` (at any
    depth: ``try:``, ``with``, ... around the guard count too)."""
    for node in body:
        if not node.lineno <= line <= (node.end_lineno or node.lineno):
            continue
        if _is_main_guard(node):
            return True
        inner = [*getattr(node, "body", []), *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
        for handler in getattr(node, "handlers", []):
            inner += handler.body
        return _guarded([n for n in inner if isinstance(n, ast.stmt)], line)
    return False


def _is_main_guard(node: ast.stmt) -> bool:
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq)):
        return False
    sides = [node.test.left, *node.test.comparators]
    names = {s.id for s in sides if isinstance(s, ast.Name)}
    consts = {s.value for s in sides if isinstance(s, ast.Constant)}
    return names == {"__name__"} and consts == {"__main__"}


def owned(tree: Any) -> Any:
    """``tree`` with every NumPy array subclass (Grain's SharedMemoryArray) copied to a plain array."""
    if isinstance(tree, np.ndarray):
        return tree if type(tree) is np.ndarray else np.array(tree)
    if isinstance(tree, dict):
        return {k: owned(v) for k, v in tree.items()}
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a named tuple
        return type(tree)(*(owned(v) for v in tree))
    if isinstance(tree, (list, tuple)):
        return type(tree)(owned(v) for v in tree)
    return tree


def flush_shared_memory_deletes() -> None:
    """Wait for Grain's pending shared-memory unlinks (its single deletion thread runs them in
    order, so a no-op submitted after them returns once they are done); without this, blocks
    released just before exit are reported as leaked by the resource tracker."""
    try:
        from grain._src.python.ipc.shared_memory_array import SharedMemoryArray
    except ImportError:  # another Grain layout: nothing we can wait for
        return
    pool = getattr(SharedMemoryArray, "_del_thread_pool", None)
    if pool is not None:
        try:
            pool.apply(int)
        except (ValueError, AssertionError):  # the pool is already closed
            pass


LIVE_LOADERS: weakref.WeakSet = weakref.WeakSet()
"""Loaders with workers whose iterator is open (closed by ``_close_live_loaders`` at exit)."""


@atexit.register
def _close_live_loaders() -> None:
    """Close loaders with workers left open, before the interpreter tears modules down (where
    Grain's SharedMemoryArray.__del__ fails: the "Exception ignored ..." tracebacks)."""
    for loader in list(LIVE_LOADERS):
        try:
            loader.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
