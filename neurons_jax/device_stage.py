"""The Loader's device stage: host batches -> finished, global batches.

On the CPU the samples were finished in the Grain workers (``transforms.FinishOnHost``) and only
become global ``jax.Array`` s here. On GPUs every local GPU finishes its own rows of the host
batch (``GpuStage``), then hands them to JAX.

Which stage runs (``choose``): ``device="auto"`` takes the GPU when CuPy can compile and run our
kernels *and* JAX's local devices are GPUs (or the output is CuPy arrays); ``device="gpu"`` runs
the kernels even under a CPU-only JAX and hands the batch over through host memory.

Per device (``device_rows``), inside ``with cupy.cuda.Device(i)``: upload the rows (image,
packed labels, and the mask only when some voxel is masked), ``stage.finish`` on that GPU, and
export every output there, so DLPack records its ordering event on the stream that wrote the
data and JAX's stream waits for it (no host sync). With several GPUs one thread per device
uploads and launches, so no device waits for another's copies.

Example (GPU only):
    >>> stage = GpuStage(mesh, batch_size=8, patch_shape=(16, 64, 64), handover="dlpack")  # doctest: +SKIP
    >>> batch = stage(host_batch, timings={})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .backend import resolve_device
from .stage import finish


def jax_on_gpu() -> bool:
    """True when every local JAX device is a GPU."""
    import jax

    return all(d.platform == "gpu" for d in jax.local_devices())


def choose(device: str, output: str) -> tuple[bool, str]:
    """``(on_gpu, handover)`` for a Loader: handover is "dlpack", "host" or "cupy"."""
    if resolve_device(device, "device") == "cpu":
        return False, "host"
    if output != "jax":
        return True, "cupy"
    if jax_on_gpu():
        return True, "dlpack"
    return device == "gpu", "host"


def device_rows(host: dict, rows: slice, gpu: int, params, patch_shape, export: Callable,
                timings: dict, targets=None) -> dict:
    """Finish ``host[...][rows]`` on CuPy device ``gpu``; ``export`` each output inside its context."""
    import cupy as cp

    mask = host.get("mask")  # absent: every voxel of the batch is valid
    mask = None if mask is None else mask[rows]
    full = mask is None or bool(mask.all())  # on the host: no device round trip, no upload of ones
    boxes = host.get("box")
    extra = {}
    if targets is not None:
        extra = {"targets": targets, "grow": host["grow"][rows], "voxel_sizes": host["voxel_size"][rows],
                 "target_params": {k: host[f"_tp_{k}"][rows] for k in targets.specs if f"_tp_{k}" in host}}
    with cp.cuda.Device(gpu):
        part = finish(
            cp.asarray(host["image"][rows]), cp.asarray(host["packed"][rows]),
            None if full else cp.asarray(mask), None if params is None else params[rows],
            patch_shape, host["instance_classes"][rows], timings,
            boxes=None if boxes is None else boxes[rows], **extra,
        )
        return {k: export(v) for k, v in part.items()}


def to_host(a) -> np.ndarray:
    return a.get()


class GpuStage:
    """Callable ``(host_batch, timings) -> batch`` for one Loader (see the module docstring)."""

    def __init__(self, mesh, batch_size: int, patch_shape: Sequence[int], handover: str, targets=None):
        self.mesh, self.batch_size = mesh, int(batch_size)
        self.targets = targets
        self.patch_shape = tuple(patch_shape)
        self.handover = handover
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, host: dict, timings: dict) -> dict:
        import cupy as cp

        params = host.get("params")
        if self.handover == "cupy":  # CuPy arrays on the current GPU
            return device_rows(host, slice(None), cp.cuda.Device().id, params, self.patch_shape,
                               lambda v: v, timings, self.targets)
        import jax
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        sharding = NamedSharding(self.mesh, P("data"))
        rows = sharding.addressable_devices_indices_map((self.batch_size,))
        base = min(idx[0].start or 0 for idx in rows.values())
        n_gpu = cp.cuda.runtime.getDeviceCount()
        jobs = []
        for k, (device, idx) in enumerate(rows.items()):
            r0 = (idx[0].start or 0) - base
            r1 = (idx[0].stop if idx[0].stop is not None else self.batch_size) - base
            gpu = device.local_hardware_id if self.handover == "dlpack" else k % n_gpu
            jobs.append((device, slice(r0, r1), gpu))
        export = jax.dlpack.from_dlpack if self.handover == "dlpack" else to_host
        times = [dict() for _ in jobs]

        def run(j: int) -> dict:
            _, sl, gpu = jobs[j]
            return device_rows(host, sl, gpu, params, self.patch_shape, export, times[j], self.targets)

        if len({g for _, _, g in jobs}) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(len(jobs), thread_name_prefix="nj-gpu")
            parts = list(self._pool.map(run, range(len(jobs))))
        else:
            parts = [run(j) for j in range(len(jobs))]
        for t in times:  # devices run side by side: a stage takes as long as its slowest device
            for key, v in t.items():
                timings[key] = max(timings.get(key, 0.0), v)
        shape = (self.batch_size,)
        if self.handover == "dlpack":
            return {
                k: jax.make_array_from_single_device_arrays((*shape, *parts[0][k].shape[1:]), sharding,
                                                            [p[k] for p in parts])
                for k in parts[0]
            }
        return {
            k: jax.make_array_from_single_device_arrays(
                (*shape, *parts[0][k].shape[1:]), sharding,
                [jax.device_put(p[k], dev) for p, (dev, _, _) in zip(parts, jobs)],
            )
            for k in parts[0]
        }

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


OUTPUTS = ("image", "semantic", "instance", "mask")
META = ("dataset", "position", "volume")


class DeviceStage:
    """``(host_batch, timings) -> batch`` of a Loader: pads a short last batch (masked out),
    finishes it on the GPUs or takes the host-finished arrays, and makes global arrays."""

    def __init__(self, mesh, batch_size: int, local_batch: int, patch_shape: Sequence[int],
                 device: str, output: str, targets=None):
        if output not in ("jax", "numpy"):
            raise ValueError(f"output must be 'jax' or 'numpy'; got {output!r}")
        self.on_gpu, self.handover = choose(device, output)
        self.mesh, self.output, self.local_batch = mesh, output, int(local_batch)
        self.gpu = (GpuStage(mesh, batch_size if output == "jax" else local_batch, patch_shape, self.handover,
                             targets) if self.on_gpu else None)
        self.outputs = OUTPUTS + tuple(targets.output_keys() if targets is not None else ())
        self.patch_shape = tuple(patch_shape)
        self._ones = None  # the all-valid mask, made once (a global jax.Array is immutable)

    def __call__(self, host: dict, timings: dict) -> dict:
        import time

        if len(host["dataset"]) < self.local_batch:  # last eval batch: pad with masked-out copies
            host = pad_batch(host, self.local_batch)
        meta = {k: host[k].astype(np.int32) for k in META}
        t0 = time.perf_counter()
        if self.gpu is not None:
            out = self.gpu(host, timings)
            out.update(self.to_global(meta) if self.output == "jax" else meta)
        else:
            out = {**{k: host[k] for k in self.outputs if k in host}, **meta}
            if self.output == "jax":
                out = self.to_global(out)
            if "mask" not in out:  # every voxel valid: the workers shipped no mask
                out["mask"] = self.ones()
        timings["transfer"] = time.perf_counter() - t0 - timings.get("augment", 0) - timings.get("labels", 0)
        return out

    def ones(self):
        """The all-valid mask of a batch: a cached global array (or a fresh NumPy one)."""
        shape = (self.local_batch, *self.patch_shape)
        if self.output != "jax":
            return np.ones(shape, np.uint8)
        if self._ones is None:
            self._ones = self.to_global({"mask": np.ones(shape, np.uint8)})["mask"]
        return self._ones

    def to_global(self, batch: dict) -> dict:
        """Global arrays sharded on ``data`` from this process's rows, from private copies: on CPU
        devices JAX keeps a zero-copy alias of host memory (even with ``may_alias=False``, JAX
        0.10), and the host batch is a reused shared-memory block that the workers refill as
        soon as it is released."""
        import jax
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        sharding = NamedSharding(self.mesh, P("data"))
        return {k: jax.make_array_from_process_local_data(sharding, np.array(v, copy=True)) for k, v in batch.items()}

    def close(self) -> None:
        if self.gpu is not None:
            self.gpu.close()


def pad_batch(host: dict, size: int) -> dict:
    """A short batch padded to ``size`` rows with copies of row 0, masked out, dataset -1."""
    n = len(host["dataset"])
    idx = np.r_[np.arange(n), np.zeros(size - n, np.int64)]
    out = {k: (v if k == "params" else np.asarray(v)[idx]) for k, v in host.items()}
    if out.get("params") is not None:
        out["params"] = [out["params"][i] for i in idx]
    if out.get("mask") is None:  # all valid so far: ones in the image's spatial shape
        out["mask"] = np.ones(np.shape(out["image"])[:4], np.uint8)
    else:
        out["mask"] = out["mask"].copy()
    out["mask"][n:] = 0
    out["dataset"] = out["dataset"].copy()
    out["dataset"][n:] = -1
    return out
