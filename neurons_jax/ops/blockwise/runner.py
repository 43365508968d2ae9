"""Running the tasks of one phase on Dask, with a progress bar.

``client`` picks where tasks run: ``None`` starts a ``dask.distributed.LocalCluster`` of worker
processes (one thread each) for the job and closes it afterwards; a scheduler address
(``"tcp://host:8786"``) or a ``distributed.Client`` runs them on an existing cluster; the string
``"synchronous"`` runs them one after the other in this process (debugging, tests). Dask is
imported only when a cluster is used. At most ``WINDOW`` tasks of a phase are in flight at once
(the scheduler's memory stays bounded however many blocks there are); a big argument shared by
all tasks (a job reading an in-memory array) is scattered to the workers once per job. When a task fails, the phase's remaining tasks are
cancelled and the task's own exception is raised (its type and message, as the worker raised
it: never Dask's ``FutureCancelledError``); what finished stays recorded, so a rerun resumes.

Example:
    >>> from neurons_jax.ops.blockwise.runner import Runner
    >>> with Runner("synchronous", progress=False) as r:
    ...     r.map("square", pow, [(2, 2), (3, 2)])
    [4, 9]
"""

from __future__ import annotations

import os
import pickle
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from ... import safeio

SYNCHRONOUS = ("synchronous", "sync")
SCATTER_BYTES = 1 << 20
WINDOW = 1024  # tasks in flight per phase (at least 4 per worker thread)


class Runner:
    """A context manager that maps task functions over argument tuples, phase by phase."""

    def __init__(self, client: Any = None, *, n_workers: int | None = None, progress: bool = True):
        self.progress = progress
        self.seconds: dict[str, float] = {}  # wall time per phase, for summaries and benchmarks
        self._owned: list[Any] = []
        self._scattered: dict[int, tuple[Any, Any]] = {}  # id(obj) -> (obj, its future)
        self.client = None
        if isinstance(client, str) and client in SYNCHRONOUS:
            return
        from dask.distributed import Client, LocalCluster

        if client is None:
            n = n_workers or max(1, min(4, os.cpu_count() or 1))
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            )
            self.client = Client(cluster)
            self._owned = [self.client, cluster]
        elif isinstance(client, str):
            try:
                self.client = Client(client, timeout="30s")
            except OSError as e:
                raise OSError(f"cannot reach the Dask scheduler at client={client!r}: {e}") from None
            self._owned = [self.client]
        elif isinstance(client, Client):
            self.client = client
        else:
            raise TypeError(
                "client must be None (a LocalCluster), 'synchronous', a scheduler address or a "
                f"dask.distributed.Client; got {type(client).__name__}"
            )

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._scattered = {}
        for obj in self._owned:
            obj.close()
        self._owned = []

    def describe(self) -> str:
        if self.client is None:
            return "this process"
        return f"Dask scheduler {self.client.scheduler.address}"

    def map(self, desc: str, fn: Callable, args: Sequence[tuple]) -> list:
        """``[fn(*a) for a in args]``, run as one task per tuple; results in input order."""
        bar = tqdm(total=len(args), desc=desc, unit="task", disable=not self.progress or not args)
        t0 = time.perf_counter()
        try:
            if self.client is None:
                out = []
                for a in args:
                    out.append(fn(*a))
                    bar.update()
                    safeio.pause_point(f"task-{desc}")
                return out
            return self._map_dask(desc, fn, args, bar)
        finally:
            bar.close()
            self.seconds[desc] = round(time.perf_counter() - t0, 3)

    def _map_dask(self, desc: str, fn: Callable, args: Sequence[tuple], bar) -> list:
        from dask.distributed import as_completed

        token = uuid.uuid4().hex[:8]
        shared = args[0][0] if args and args[0] else None
        if shared is not None and all(a and a[0] is shared for a in args):
            known = self._scattered.get(id(shared))
            if known is not None and known[0] is shared:
                args = [(known[1], *a[1:]) for a in args]
            elif len(pickle.dumps(shared)) > SCATTER_BYTES:
                # a big shared first argument (a job reading an in-memory array) goes to the
                # workers once per job, not once per phase; small ones travel with each task,
                # which survives the loss of any worker
                fut = self.client.scatter(shared, broadcast=True, hash=False)
                self._scattered[id(shared)] = (shared, fut)
                args = [(fut, *a[1:]) for a in args]
        window = max(WINDOW, 4 * len(self.client.nthreads() or {0: 1}))
        out: list = [None] * len(args)
        running: dict[str, int] = {}
        pending = iter(enumerate(args))

        def submit(ac) -> None:
            for i, a in pending:  # at most ``window`` tasks in flight: bounded scheduler memory
                f = self.client.submit(fn, *a, key=f"nj-{desc.replace(' ', '-')}-{i}-{token}", pure=False)
                running[f.key] = i
                ac.add(f)
                if len(running) >= window:
                    return

        ac = as_completed([])
        submit(ac)
        try:
            for fut in ac:
                if fut.status == "error":
                    # the worker's exception, before cancelling: a cancelled future would only
                    # say FutureCancelledError
                    exc, tb = fut.exception(), fut.traceback()
                    self.client.cancel(list(ac.futures))
                    exc.add_note(f"in Dask task {fut.key} ({desc})")
                    raise exc.with_traceback(tb)
                out[running.pop(fut.key)] = fut.result()
                fut.release()
                bar.update()
                safeio.pause_point(f"task-{desc}")
                submit(ac)
        except BaseException:
            self.client.cancel(list(ac.futures))
            raise
        return out
