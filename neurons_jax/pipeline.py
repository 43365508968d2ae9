"""``Loader``: datasets -> weighted Grain mixture -> per-process shard -> augmented, relabelled,
sharded ``jax.Array`` batches.

Data flow (see docs/architecture.md): one ``PatchSource`` per dataset (position = f(seed, index)),
``grain.MapDataset.mix`` with per-*dataset* weights, a slice per JAX process (disjoint and
complete), ``HostLabels`` (union classes + compact instance sources), ``random_map`` drawing
the augmentation params from Grain's per-element RNG, batching on the MapDataset (so batches
do not depend on ``worker_count``), ``mp_prefetch`` workers, then the device stage
(``neurons_jax.stage.finish``: CuPy on a GPU, NumPy on the CPU) and
``jax.make_array_from_process_local_data`` into arrays sharded on the mesh's ``data`` axis.

With ``worker_count > 0`` the workers are *spawned* processes that re-import the main script,
so a script must build and iterate the Loader under ``if __name__ == "__main__":``; a Loader
with workers started from the unguarded top level of the main script raises a RuntimeError
naming the line, before any process starts. Batches come out of
Grain's shared memory as ordinary arrays; ``close()`` (or ``with Loader(...)``, or interpreter
exit for loaders left open) stops the workers and frees every shared-memory block.

Example:
    >>> import neurons_jax as nj                                   # doctest: +SKIP
    >>> ws = nj.sample.write_workspace("/tmp/ws")                  # doctest: +SKIP
    >>> loader = nj.pipeline.Loader(                               # doctest: +SKIP
    ...     sources={"snemi3d": (nj.datasets.snemi3d(ws["snemi3d"]), 1.0),
    ...              "mitoem2": (nj.datasets.mitoem2(ws["mitoem2"]), 2.0)},
    ...     patch_shape=(16, 64, 64), batch_size=4)
    >>> batch = next(iter(loader)); batch["image"].shape           # doctest: +SKIP
    (4, 16, 64, 64, 1)
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import numpy as np

from . import device_stage
from .batchpool import Reader
from .datasets.base import Dataset
from .datasets.specs import check_weight
from .rules import UNION_CLASSES, get_rule
from .sampling import Locations, PatchSource
from .transforms import DrawParams, FinishOnHost, HostLabels, ReadSample, StackBatch
from .workers import LIVE_LOADERS, flush_shared_memory_deletes, owned, refuse_spawned_import


def checked_sources(sources: Mapping[str, tuple[Dataset, float]], split: str):
    """``(names, datasets, weights)`` of a Loader's ``sources``, each entry checked."""
    if not sources:
        raise ValueError("sources is empty: expected {name: (dataset, weight)}")
    names, datasets, weights = list(sources), [], []
    for name, entry in sources.items():
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise ValueError(f"sources[{name!r}] must be (dataset, weight); got {entry!r}")
        ds, w = entry
        w = check_weight(w, f"sources[{name!r}]")
        if ds.split != split:
            raise ValueError(f"sources[{name!r}]: dataset is split {ds.split!r}, loader split is {split!r}")
        get_rule(ds.kind)
        datasets.append(ds)
        weights.append(w)
    return names, datasets, weights


def default_mesh():
    """All devices on one ``data`` axis, with Auto axis types (what Flax expects)."""
    import jax
    from jax.sharding import AxisType

    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


class Loader:
    """An iterable of global batches mixing several datasets with per-dataset weights.

    Args:
        sources: ``{name: (dataset, weight)}``; weights are per dataset (a dataset's share does
            not grow with its size).
        patch_shape: (Z, Y, X) of each sample; Z == 1 is the 2D slice mode.
        batch_size: global batch size (divisible by the mesh's ``data`` axis and the number of
            JAX processes).
        seed: fixes patch positions and augmentation; the same seed gives the same batches.
        augment: an ``nj.augment.AugmentConfig`` (default config when omitted), or None.
        ignore_classes: union class names turned into background (one name or several).
        mesh: a ``jax.sharding.Mesh`` with a ``data`` axis (default: all devices).
        worker_count: Grain worker processes (0 = in process); batches do not depend on it.
        read_threads: threads per process computing batches (default: cores, at most 8,
            without workers; 1 in each worker process).
        split: "train" (endless random patches) or "valid"/"test" (tiles, one pass, no
            augmentation); every dataset must be of this split.
        min_foreground: share of labelled voxels a train patch needs (acceptance map).
        pad: allow patches larger than a volume (padding is masked out).
        device: "auto" (the GPU stage where our kernels run and JAX's devices are GPUs), "cpu",
            or "gpu" (the kernels run even under a CPU-only JAX; batches then reach JAX through
            host memory). See ``neurons_jax.device_stage``.
        output: "jax" (global ``jax.Array`` batches) or "numpy" (host arrays, no JAX).
        targets: ``{key: spec}`` training targets (``nj.targets.Affinities(offsets=...)``,
            ``LSD(sigma_nm=...)``, ...) computed in the device stage from the labels warped over
            the patch grown by each target's margin (see ``neurons_jax.target_stage``):
            ``batch[key]`` (B, Z, Y, X, C) and ``batch[f"{key}_{output}"]`` for a spec's other
            outputs (e.g. ``affinity_mask``). The context grows with the margin, so a loader
            with targets reads (and draws positions for) a larger region than one without.
    """

    def __init__(
        self,
        sources: Mapping[str, tuple[Dataset, float]],
        patch_shape: Sequence[int],
        batch_size: int,
        seed: int = 0,
        augment: Any = "default",
        ignore_classes: str | Sequence[str] = (),
        mesh=None,
        worker_count: int = 0,
        split: str = "train",
        *,
        min_foreground: float = 0.01,
        pad: bool = False,
        device: str = "auto",
        output: str = "jax",
        targets: Mapping[str, Any] | None = None,
        worker_buffer_size: int = 2,
        read_threads: int | None = None,
    ):
        self.names, self.datasets, self.weights = checked_sources(sources, split)
        ignore_classes = checked_classes(ignore_classes)
        self.patch_shape = tuple(int(p) for p in patch_shape)
        if len(self.patch_shape) != 3 or min(self.patch_shape) < 1:
            raise ValueError(f"patch_shape must be (Z, Y, X) with positive sizes; got {tuple(patch_shape)}")
        self.batch_size, self.seed, self.split = int(batch_size), int(seed), split
        self.ignore_classes = tuple(ignore_classes)
        self.worker_count, self.worker_buffer_size = int(worker_count), int(worker_buffer_size)
        # CPU-bound batches: threads only in the main process (one per worker process) and a
        # short buffer (Grain's defaults, 16 threads and 500 elements, add memory and latency)
        self.read_threads = int(read_threads or (1 if worker_count > 0 else min(8, os.cpu_count() or 1)))
        self.output = output
        self.train = split == "train"
        if augment == "default":
            from .augment import AugmentConfig

            augment = AugmentConfig()
        self.augment_cfg = augment if self.train else None
        if output not in ("jax", "numpy"):
            raise ValueError(f"output must be 'jax' or 'numpy'; got {output!r}")

        self.mesh = None
        self.process_index, self.process_count = 0, 1
        if output == "jax":
            import jax

            self.mesh = mesh if mesh is not None else default_mesh()
            if "data" not in self.mesh.axis_names:
                raise ValueError(f"mesh needs a 'data' axis; it has {self.mesh.axis_names}")
            n_data = self.mesh.shape["data"]
            if self.batch_size % n_data:
                raise ValueError(
                    f"batch_size {self.batch_size} is not divisible by the mesh's data axis size {n_data}"
                )
            self.process_index, self.process_count = jax.process_index(), jax.process_count()
        if self.batch_size % self.process_count:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by {self.process_count} processes")
        self.local_batch = self.batch_size // self.process_count

        self.targets = None
        if targets:
            from .target_stage import TargetPlan

            self.targets = TargetPlan(targets, self.augment_cfg)
        self.context_shape = self._context_shape()
        self.sources = [
            PatchSource(
                ds,
                self.patch_shape,
                self.context_shape if self.train else self.patch_shape,
                seed=self.seed,
                dataset_id=i,
                name=name,
                min_foreground=min_foreground,
                pad=pad,
            )
            for i, (name, ds) in enumerate(zip(self.names, self.datasets))
        ]
        self._stage = device_stage.DeviceStage(self.mesh, self.batch_size, self.local_batch, self.patch_shape,
                                               device, output, self.targets)
        self.on_gpu, self.handover = self._stage.on_gpu, self._stage.handover
        self._stacker = StackBatch()  # batches in reused shared memory, named by the Loader's token
        self._reader = Reader(self._stacker.token)
        self._dataset = self._build()
        self._iter = None
        # closed by close(), or when the Loader is garbage-collected or at exit (a script that
        # never closes it): workers stopped first, then this Loader's blocks unlinked
        self._holder: dict = {}
        self._arm()
        self._timings: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ construction
    def _context_shape(self) -> tuple[int, ...]:
        sizes = {v for per in self._voxel_sizes() for v in per}
        if self.augment_cfg is None and self.targets is None:
            return self.patch_shape
        shapes = []
        for vs in sizes:
            g = self.targets.grow(vs) if self.targets is not None else np.zeros(3, np.int64)
            grown = tuple(int(p + 2 * m) for p, m in zip(self.patch_shape, g))
            if self.augment_cfg is None:
                shapes.append(grown)
            else:
                from .augment import context_shape

                shapes.append(context_shape(self.augment_cfg, grown, vs))
        return tuple(int(max(s)) for s in zip(*shapes))

    def _voxel_sizes(self) -> list[list[tuple[float, ...]]]:
        return [[tuple(p.image.voxel_size) for p in ds.pairs] for ds in self.datasets]

    def _build(self) -> grain.MapDataset:
        # the sources only say where each element comes from; the read happens after the params
        # are drawn, of the sample's own footprint, with its dataset's own rule and voxel sizes
        parts = [grain.MapDataset.source(Locations(src)) for src in self.sources]
        if self.train:
            ds = grain.MapDataset.mix(parts, self.weights)
        else:
            ds = grain.MapDataset.concatenate(parts) if len(parts) > 1 else parts[0]
        # shard by process: disjoint and complete (element k goes to process k % count)
        ds = ds[self.process_index :: self.process_count]
        random_targets = self.targets is not None and any(
            s.draw(np.random.default_rng(0)) is not None for s in self.targets.specs.values())
        if self.augment_cfg is not None or random_targets:
            ds = ds.seed(self.seed).random_map(DrawParams(self.augment_cfg, self.patch_shape, self.targets))
        labelers = [HostLabels(d.rule, self.ignore_classes, vs) for d, vs in zip(self.datasets, self._voxel_sizes())]
        ds = ds.map(ReadSample(self.sources, labelers, self.context_shape, self.targets))
        if not self.on_gpu:
            ds = ds.map(FinishOnHost(self.patch_shape, self.targets))
        return ds.batch(self.local_batch, drop_remainder=self.train, batch_fn=self._stacker)

    def __len__(self) -> int:
        """Batches per pass (valid/test); train loaders are endless."""
        return len(self._dataset)

    # ------------------------------------------------------------------ iteration
    def _arm(self) -> None:
        self._stacker.pool.closed = False  # reopened by a new iteration after close()
        self._finalizer = weakref.finalize(self, _release, self._holder, self._stage, self._reader,
                                           self._stacker.pool, self.worker_count > 0)

    def _make_iter(self):
        if not self._finalizer.alive:
            self._arm()
        if self.worker_count > 0:
            refuse_spawned_import()
            LIVE_LOADERS.add(self)
        batches_ahead = 2
        ds = self._dataset.to_iter_dataset(
            grain.ReadOptions(num_threads=self.read_threads, prefetch_buffer_size=batches_ahead)
        )
        if self.worker_count > 0:
            _absl_parsed()
            ds = ds.mp_prefetch(
                grain.MultiprocessingOptions(num_workers=self.worker_count, per_worker_buffer_size=self.worker_buffer_size)
            )
        it = self._holder["it"] = iter(ds)
        return it

    def __iter__(self):
        if self._iter is None:
            self._iter = self._make_iter()
        return self

    def __next__(self) -> dict:
        if self._iter is None:
            self._iter = self._make_iter()
        t0 = time.perf_counter()
        ref = next(self._iter)
        # views of the batch's block (no copy); a batch that did not fit the pool came through
        # Grain's shared memory: copied off it, so its blocks are freed now, not at exit
        host = owned(self._reader.open_batch(ref))
        t1 = time.perf_counter()
        timings: dict[str, float] = {"wait": t1 - t0}
        try:
            batch = self._stage(host, timings)
            if self.output == "numpy":  # the caller keeps these: copies, never views of the block
                batch = {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}
            timings["read"] = float(np.sum(host["read_s"]))
            if "host_s" in host:
                timings["host_stage"] = float(np.sum(host["host_s"]))
        finally:
            del host
            self._reader.release(ref)  # the devices hold their copies: the block may be reused
        for k, v in timings.items():
            self._timings.setdefault(k, []).append(v)
        return batch

    # ------------------------------------------------------------------ state & stats
    def get_state(self) -> dict:
        """The iterator state; ``set_state`` of it continues with the exact next batch."""
        if self._iter is None:
            self._iter = self._make_iter()
        return {"grain": self._iter.get_state(), "seed": self.seed, "split": self.split}

    def set_state(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"state is for seed {state.get('seed')}, this loader has seed {self.seed}")
        if self._iter is None:
            self._iter = self._make_iter()
        self._iter.set_state(state["grain"])

    @property
    def iterator(self):
        """The underlying Grain iterator (for ``grain.checkpoint.CheckpointSave`` with Orbax)."""
        if self._iter is None:
            self._iter = self._make_iter()
        return self._iter

    def timings(self) -> dict[str, dict[str, float]]:
        """Per-stage seconds per batch: read, host_stage, wait, augment, labels, transfer."""
        return {
            k: {"batches": len(v), "mean_s": float(np.mean(v)), "median_s": float(np.median(v)), "total_s": float(np.sum(v))}
            for k, v in self._timings.items()
        }

    def timing_summary(self) -> str:
        rows = [f"{k:>10}: median {v['median_s'] * 1e3:8.2f} ms  total {v['total_s']:7.2f} s" for k, v in self.timings().items()]
        return "\n".join(rows)

    def close(self) -> None:
        """Stop the workers and free their shared memory (idempotent; also run when the Loader
        is garbage-collected and at exit)."""
        self._iter = None
        self._finalizer()
        LIVE_LOADERS.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def checked_classes(ignore_classes: str | Sequence[str]) -> tuple[str, ...]:
    """``ignore_classes`` as a tuple of union class names; a single string is one class.

    >>> checked_classes("neuron"), checked_classes(["cleft", "mito_boundary"])
    (('neuron',), ('cleft', 'mito_boundary'))
    """
    if isinstance(ignore_classes, str):
        ignore_classes = (ignore_classes,)
    try:
        classes = tuple(ignore_classes)
    except TypeError:
        raise TypeError(f"ignore_classes: expected a class name or a sequence of names from "
                        f"{UNION_CLASSES}; got {type(ignore_classes).__name__}") from None
    unknown = [c for c in classes if c not in UNION_CLASSES]
    if unknown:
        raise ValueError(f"ignore_classes: unknown class(es) {unknown}; expected names from {UNION_CLASSES}")
    return classes


def _release(holder: dict, stage, reader: Reader, pool, workers: bool) -> None:
    """What ``Loader.close`` frees (no reference to the Loader, so it can run at its collection)."""
    stage.close()
    it = holder.pop("it", None)
    if it is not None and hasattr(it, "close"):
        it.close()
    if workers:
        flush_shared_memory_deletes()
    reader.close_all()  # unlink the blocks of this Loader's batches (ours only)
    pool.close()


def _absl_parsed() -> None:
    try:
        from absl import flags

        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
    except Exception:  # noqa: BLE001 - absl is optional
        pass
