"""``neurons-relabel MODE INPUT OUTPUT``: relabel a label volume on the GPU (or the CPU).

Modes: ``components`` (multilabel connected components), ``instances`` (boundary-separated
instances from 3-class semantic labels), ``union`` (native ids -> the 5 union classes of a
dataset kind), ``renumber`` (compact ids 1..n); ``MODE --help`` lists each mode's options.
Inputs and outputs are any format of :mod:`neurons_jax.labelio`; the output format follows its
suffix (zarr3 when there is none). The input is never written.

Outputs are safe to interrupt and to share: the output is locked while written (a second run
into it is refused, naming the first), written under a temporary name that carries the process
id (a later run removes what a killed one left) and renamed at the end; Ctrl-C or SIGTERM
stops with exit status 130, the temporary removed and the old output as it was. An existing
output is replaced only with ``--overwrite``, and only when it is what this tool writes (a file
of the output's format, or a folder holding only a store's files; never a folder with other
files); if the replacing run fails or is killed, the old output is kept or, on the next run,
put back. A missing chunk in a store input is an error unless ``--allow-missing`` (a sparse
store). In memory, a run whose estimated peak exceeds the memory budget (80% of the available
RAM, or ``--max-memory`` / ``NEURONS_JAX_MAX_MEMORY``) is refused before reading, with the
hint to label block by block (``--block-shape``).

Example:
    $ neurons-relabel components seg.h5:labels seg_cc.zarr3 --connectivity 26
    $ neurons-relabel union cremi.h5:volumes/labels/neuron_ids union.nii.gz --kind cremi3d
    $ neurons-jax relabel renumber microns.zarr3 compact.npy --device cpu
    $ neurons-relabel components huge.zarr3 huge_cc.zarr3 --block-shape 256 256 256
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from neurons_jax.backend import CONNECTIVITIES, DEVICES

MODES = ("components", "instances", "union", "renumber")
BLOCK_MODES = ("components", "union", "renumber")  # the modes with a blockwise (Dask) version
TOOL = "neurons-relabel"
MEMORY_FRACTION = 0.8  # of the available RAM: the default budget of an in-memory run
MEMORY_ENV = "NEURONS_JAX_MAX_MEMORY"

MODE_HELP = {
    "components": "multilabel connected components: voxels join when they touch and carry the "
                  "same nonzero id; ids 1..n in raster order (as cc3d)",
    "instances": "boundary-separated instances from 3-class semantic labels (background, "
                 "interior, boundary): interiors split by boundaries, boundary voxels given to a "
                 "neighbour",
    "union": "native ids -> the 5 union classes of a dataset kind (its label rule)",
    "renumber": "compact ids 1..n in the order of each id's first voxel (0 stays 0)",
}
MODE_EXAMPLES = {
    "components": "  neurons-relabel components seg.h5:labels seg_cc.zarr3 --connectivity 26\n"
                  "  neurons-relabel components huge.zarr3 huge_cc.zarr3 --block-shape 256 256 256",
    "instances": "  neurons-relabel instances mito.nii.gz mito_instances.zarr3 --interior 1 --boundary 2",
    "union": "  neurons-relabel union cremi.h5:volumes/labels/neuron_ids union.nii.gz --kind cremi3d "
             "--ignore-class cleft",
    "renumber": "  neurons-relabel renumber microns.zarr3 compact.npy --device cpu",
}
EXAMPLES = "examples:\n" + "\n".join(MODE_EXAMPLES.values()) + "\n\nMODE --help lists the options of a mode.\n"
DEFAULTS = {"connectivity": None, "interior": 1, "boundary": 2, "grow": True, "kind": None,
            "ignore_classes": [], "block_shape": None, "scheduler": None, "order": "auto"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class, p.epilog = argparse.RawDescriptionHelpFormatter, EXAMPLES
    sub = p.add_subparsers(dest="mode", metavar="MODE", required=True,
                           help="what to compute: " + ", ".join(MODES) + " (MODE --help: its options)")
    for mode in MODES:
        sp = sub.add_parser(mode, help=MODE_HELP[mode], description=MODE_HELP[mode],
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="examples:\n" + MODE_EXAMPLES[mode] + "\n")
        _mode_arguments(sp, mode)
        sp.set_defaults(**{k: v for k, v in DEFAULTS.items() if not _has(sp, k)})


def _has(p: argparse.ArgumentParser, dest: str) -> bool:
    return any(a.dest == dest for a in p._actions)


def _mode_arguments(p: argparse.ArgumentParser, mode: str) -> None:
    p.add_argument("input", help="file.h5:key, .tif/.tiff, .nii/.nii.gz, .npy, file.npz:key, a "
                   "zarr3/zarr/N5/precomputed folder, DRIVER://path or a URL")
    p.add_argument("output", help="same formats, chosen by suffix (.zarr3 or none: zarr3; .zarr: "
                   "zarr v2; .n5; precomputed://DIR; .h5:key, key 'labels' by default)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="auto: the GPU when CuPy finds one, else the CPU (default)")
    if mode in ("components", "instances"):
        p.add_argument("--connectivity", type=int, choices=(4, 6, 8, 18, 26), default=None,
                       help="6, 18 or 26 in 3D (default 6); 4 or 8 in 2D (default 4)")
    if mode == "instances":
        p.add_argument("--interior", type=int, default=1, help="interior class value (default 1)")
        p.add_argument("--boundary", type=int, default=2, help="boundary class value (default 2)")
        p.add_argument("--no-grow", dest="grow", action="store_false",
                       help="leave boundary voxels at 0 instead of giving them to a neighbour")
    if mode == "union":
        p.add_argument("--kind", help="dataset kind whose label rule applies (e.g. cremi3d, snemi3d)")
        p.add_argument("--ignore-class", dest="ignore_classes", action="append", default=[], metavar="NAME",
                       help="a union class to turn into background (repeatable)")
    if mode in BLOCK_MODES:
        p.add_argument("--block-shape", type=int, nargs=3, metavar=("Z", "Y", "X"),
                       help="work block by block on Dask (out of core, any size; local zarr3 "
                       "output; rerun to resume)")
        p.add_argument("--scheduler", metavar="ADDRESS",
                       help="--block-shape: the Dask scheduler to use (default: a LocalCluster; "
                       "'synchronous': this process)")
    if mode == "components":
        p.add_argument("--order", choices=("auto", "raster", "blocks"), default="auto",
                       help="--block-shape: numbering of the components: raster (the in-memory "
                       "numbering), blocks (by first block, then raster order in it; scales to any "
                       "size) or auto (raster up to 2^30 voxels, else blocks; default)")
    p.add_argument("--voxel-size", type=float, nargs="+", metavar="NM",
                   help="voxel size (z y x nm, positive) to record in the output (default: the "
                   "input's, if it has one; else none is recorded)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output: a file of the output's format, or a folder "
                   "holding only a store's files (never a folder with other files)")
    p.add_argument("--allow-missing", action="store_true",
                   help="read missing chunks of a store input as 0 (a sparse store); without it a "
                   "missing chunk is an error")
    p.add_argument("--max-memory", metavar="SIZE",
                   help=f"memory budget of an in-memory run, e.g. 16G (default: {MEMORY_FRACTION:.0%}% "
                   f"of the available RAM, or ${MEMORY_ENV}); 'none': no limit")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _error(msg: str) -> Exception:
    from neurons_jax.cli import CommandError

    return CommandError(msg)


def resolve_device(device: str) -> str:
    """``cpu`` or ``gpu`` (``neurons_jax.backend.resolve_device``); ``gpu`` without a usable CUDA
    device is an error that says why."""
    from neurons_jax import backend

    try:
        return backend.resolve_device(device, "--device")
    except backend.GpuUnavailableError as e:
        raise _error(str(e)) from None


def _check_args(args: argparse.Namespace, ndim: int) -> None:
    if args.connectivity is not None and args.connectivity not in CONNECTIVITIES[ndim]:
        allowed = " or ".join(map(str, CONNECTIVITIES[ndim]))
        raise _error(f"--connectivity {args.connectivity} does not apply to a {ndim}D volume; use {allowed}")
    if args.mode == "union":
        from neurons_jax import rules

        if not args.kind:
            raise _error(f"union needs --kind (one of {', '.join(rules.known_kinds())})")
        rules.get_rule(args.kind)
        for name in args.ignore_classes:
            rules.class_index(name)


def check_voxel_size(values: list[float] | None, ndim: int | None = None) -> tuple[float, ...] | None:
    """``--voxel-size``: positive finite numbers, ``ndim`` of them (z y x nm) once it is known."""
    if values is None:
        return None
    vs = tuple(float(v) for v in values)
    if not all(math.isfinite(v) and v > 0 for v in vs):
        shown = " ".join(f"{v:g}" for v in vs)
        raise _error(f"--voxel-size needs positive finite numbers (z y x nm); got {shown}")
    if ndim is not None and len(vs) != ndim:
        raise _error(f"--voxel-size needs {ndim} values (z y x nm); got {len(vs)}")
    return vs


def check_dtype(dtype: np.dtype, where: object) -> None:
    """Integer (or bool) label ids only; floats and everything else are refused
    (``ops._checks.check_label_dtype``, which the blockwise ops use too)."""
    from neurons_jax.ops._checks import check_label_dtype

    check_label_dtype(dtype, where)


def as_unsigned(arr: np.ndarray, where: object) -> np.ndarray:
    """Bool -> uint8; signed ids -> the unsigned type of the same width (negative ids refused,
    by ``ops._checks.check_label_values``, which checks every block of a blockwise run too)."""
    from neurons_jax.ops._checks import check_label_values

    return check_label_values(arr, where)


def count_ids(arr: np.ndarray) -> int:
    """Distinct nonzero ids (one fastremap.unique pass)."""
    import fastremap

    u = fastremap.unique(arr)
    return int(len(u) - (len(u) > 0 and u[0] == 0))


def compute(mode: str, labels, args: argparse.Namespace):
    """The library call of ``mode`` on a NumPy or CuPy array (the backend follows the array)."""
    from neurons_jax import ops

    conn = args.connectivity or (6 if labels.ndim == 3 else 4)
    if mode == "components":
        return ops.connected_components(labels, connectivity=conn)[0]
    if mode == "instances":
        return ops.boundary_separated_instances(
            labels, interior=args.interior, boundary=args.boundary, connectivity=conn, grow=args.grow
        )[0]
    if mode == "union":
        return ops.union_semantic(labels, args.kind, ignore_classes=tuple(args.ignore_classes))
    return ops.renumber(labels, preserve_zero=True)[0]


def _on_device(mode: str, arr: np.ndarray, args: argparse.Namespace, device: str) -> np.ndarray:
    if device == "cpu":
        return np.asarray(compute(mode, arr, args))
    import cupy

    out = compute(mode, cupy.asarray(arr), args)
    return cupy.asnumpy(out)


# ----------------------------------------------------------------------------- memory budget
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, what: str = "--max-memory") -> int | None:
    """``8G``, ``512M``, ``1.5T``, ``16GiB``, ``2e9`` -> bytes (binary units); ``none`` -> None."""
    t = str(text).strip().lower()
    if t in ("none", "off", "unlimited"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d*)?(?:e\d+)?)\s*([kmgt]?)(?:i?b)?", t)
    if m is None or (m[2] == "" and t.endswith("ib")):
        raise _error(f"{what}: expected a size such as 16G, 512M or 1.5T (or none); got {text!r}")
    n = int(float(m[1]) * _UNITS[m[2]])
    if n <= 0:
        raise _error(f"{what}: expected a positive size; got {text!r}")
    return n


def fmt_bytes(n: float) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable (``/proc/meminfo``, else
    ``os.sysconf``), lowered to what a cgroup (container) limit leaves; None when unknown."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    try:
        cg = Path("/sys/fs/cgroup")
        limit = (cg / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cg / "memory.current").read_text())
            stat = dict(line.split() for line in (cg / "memory.stat").read_text().splitlines() if " " in line)
            free = int(limit) - used + int(stat.get("inactive_file", 0))
            avail = free if avail is None else min(avail, free)
    except (OSError, ValueError):
        pass
    return avail


def memory_budget(text: str | None) -> tuple[int | None, str]:
    """(bytes or None for no limit, where the budget comes from)."""
    if text is not None:
        return parse_size(text), f"--max-memory {text}"
    env = os.environ.get(MEMORY_ENV)
    if env:
        return parse_size(env, MEMORY_ENV), f"{MEMORY_ENV}={env}"
    avail = available_memory()
    if avail is None:
        return None, "no limit: the available memory is unknown"
    return int(avail * MEMORY_FRACTION), f"{MEMORY_FRACTION:.0%} of the {fmt_bytes(avail)} available"


def peak_bytes(mode: str, shape: tuple[int, ...], dtype: np.dtype) -> int:
    """About the most memory an in-memory run of ``mode`` holds at once: the input, the output
    and the mode's working arrays (or the copy that counting ids sorts, if larger)."""
    n, b = int(np.prod(shape)), np.dtype(dtype).itemsize
    out = 1 if mode == "union" else 4
    work = {"components": max(4, b), "instances": 16, "union": b, "renumber": b + 4}[mode]
    return n * (b + out + work)


def _check_memory(args: argparse.Namespace, lv, budget: int | None, source: str) -> int:
    need = peak_bytes(args.mode, lv.shape, lv.dtype)
    if budget is None or need <= budget:
        return need
    if args.mode in BLOCK_MODES:
        hint = ("label it block by block with --block-shape Z Y X (e.g. --block-shape 256 256 256; "
                "zarr3 output)")
    else:
        hint = (f"{args.mode} has no block-by-block mode (--block-shape is for "
                f"{', '.join(BLOCK_MODES)}): crop the input")
    raise _error(f"{lv.location}: {args.mode} of {lv.shape} {lv.dtype} in memory needs about "
                 f"{fmt_bytes(need)}, more than the memory budget of {fmt_bytes(budget)} ({source}); "
                 f"{hint}, or raise the budget with --max-memory SIZE (or {MEMORY_ENV})")


# ----------------------------------------------------------------------------- blockwise
def records_path(path: Path) -> Path:
    """``OUT.blockwise``: where a blockwise job keeps its records."""
    return path.with_name(path.name + ".blockwise")


def _blockwise(args: argparse.Namespace, lv, dst, vs) -> int:
    """``--block-shape``: the Dask blockwise op (zarr3 out, resumable). With ``--overwrite``
    the old output and its records wait aside until the new output is complete, and are put
    back if the run fails (or, after a kill, by the next run)."""
    from neurons_jax import safeio

    try:
        from neurons_jax.ops import blockwise as bw
    except ImportError as e:
        raise _error(f"--block-shape needs neurons_jax.ops.blockwise, which is not available ({e})") from None
    t0 = time.perf_counter()
    records = records_path(dst.path)
    aside: dict[Path, Path] = {}
    if args.overwrite and os.path.lexists(dst.path):
        safeio.check_replaceable(dst.path, "store", TOOL)
        safeio.check_replaceable(records, "records", TOOL)
        with safeio.deferred_interrupts():
            for p in (dst.path, records):
                if os.path.lexists(p):
                    aside[p] = safeio.temp_path(p, "old")
                    os.replace(p, aside[p])
    bs, common = tuple(args.block_shape), {"client": args.scheduler, "progress": args.progress,
                                           "voxel_size": vs}
    try:
        n = None
        if args.mode == "components":
            vol, n = bw.blockwise_connected_components(lv.volume, str(dst.path), bs, args.connectivity or 6,
                                                       device=args.device, order=args.order, **common)
        elif args.mode == "union":
            vol = bw.blockwise_union_semantic(lv.volume, str(dst.path), bs, args.kind,
                                              tuple(args.ignore_classes), **common)
        else:
            vol, old_ids = bw.blockwise_renumber(lv.volume, str(dst.path), bs, **common)
            n = len(old_ids) - 1
    except BaseException:
        with safeio.deferred_interrupts():
            if aside and not os.path.lexists(dst.path):
                safeio.remove_tree(records)  # the new job's records: it never finished
                for p, q in aside.items():
                    os.replace(q, p)
                aside = {}
        for q in aside.values():
            safeio.remove_tree(q)
        raise
    for q in aside.values():
        safeio.remove_tree(q)
    print(f"{TOOL} {args.mode}: {lv.location} {lv.shape} {lv.dtype} -> {dst} (zarr3, {vol.dtype}) "
          f"in blocks of {bs}")
    if n is not None:
        print(f"ids out: {int(n)}  (nonzero)")
    _print_voxel_size(vs, lv, dst)
    print(f"time: {time.perf_counter() - t0:.2f} s")
    return 0


def _print_voxel_size(vs, lv, dst) -> None:
    if vs is not None or dst.format in ("npy", "npz"):
        return
    if dst.format == "precomputed":
        print(f"voxel size: unknown in {lv.location}; recorded 1 nm, as precomputed requires one "
              "(pass --voxel-size Z Y X)")
    elif dst.format == "nifti":
        print(f"voxel size: unknown in {lv.location}; recorded zooms of 1 with unknown units, as "
              "NIfTI requires zooms (pass --voxel-size Z Y X)")
    else:
        print(f"voxel size: unknown in {lv.location}; none recorded (pass --voxel-size Z Y X)")


# ----------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    from neurons_jax import labelio, safeio

    t0 = time.perf_counter()
    src, dst = labelio.parse_input(args.input), labelio.parse_output(args.output)
    if labelio.same_storage(src, dst):
        raise _error(f"{dst}: refusing to write into the input {src}; choose another output")
    check_voxel_size(args.voxel_size)
    budget = memory_budget(args.max_memory)
    if args.block_shape and (dst.format != "zarr3" or dst.path is None):
        raise _error(f"{dst}: --block-shape writes a local zarr3 output (.zarr3 or no suffix); got {dst.format}")
    labelio.check_target(dst)
    if labelio.output_exists(dst) and not args.overwrite:  # before any work; again under the lock
        raise FileExistsError(f"{dst}: already exists; pass --overwrite to replace it")
    device = resolve_device(args.device)
    with safeio.sigterm_as_interrupt(), safeio.OutputLock(dst.path, f"{TOOL} {args.mode}"):
        for note in safeio.clean_stale(dst.path, (records_path(dst.path),)):
            print(f"{TOOL}: note: {note}", file=sys.stderr)
        labelio.check_output(dst, args.overwrite, TOOL)
        lv = labelio.open_labels(src, allow_missing=args.allow_missing)
        check_dtype(lv.dtype, lv.location)
        _check_args(args, lv.volume.ndim)
        vs = check_voxel_size(args.voxel_size, lv.volume.ndim) or lv.voxel_size
        if args.block_shape:
            return _blockwise(args, lv, dst, vs)
        need = _check_memory(args, lv, *budget)
        try:
            return _in_memory(args, lv, dst, vs, device, t0)
        except MemoryError:
            where = " on the GPU (try --device cpu)" if device == "gpu" else ""
            hint = " or label it block by block with --block-shape Z Y X" if args.mode in BLOCK_MODES else ""
            raise _error(f"{lv.location}: ran out of memory{where} relabelling {lv.shape} {lv.dtype} "
                         f"in memory (estimated peak {fmt_bytes(need)}); free memory{hint}") from None


def _in_memory(args: argparse.Namespace, lv, dst, vs, device: str, t0: float) -> int:
    from tqdm import tqdm

    from neurons_jax import labelio

    n = lv.shape[0]
    with tqdm(total=3 * n, unit="section", desc="read", disable=None if args.progress else True,
              file=sys.stderr, leave=False, dynamic_ncols=True) as bar:
        labels = as_unsigned(lv.read(progress=bar.update), lv.location)
        t_read = time.perf_counter()
        bar.set_description(f"{args.mode} ({device})")
        out = _on_device(args.mode, labels, args, device)
        bar.update(n)
        t_compute = time.perf_counter()
        ids_in, ids_out = count_ids(labels), count_ids(out)
        t_count = time.perf_counter()
        bar.set_description("write")
        labelio.write_labels(dst, out, voxel_size=vs, like=lv, overwrite=args.overwrite, progress=bar.update)
    t_end = time.perf_counter()
    print(f"{TOOL} {args.mode}: {lv.location} {lv.shape} {lv.dtype} -> {dst} "
          f"({dst.format}, {out.dtype}) on {device}")
    print(f"ids in: {ids_in}  ids out: {ids_out}  (nonzero)")
    _print_voxel_size(vs, lv, dst)
    print(f"time: {t_end - t0:.2f} s (read {t_read - t0:.2f} s, {args.mode} {t_compute - t_read:.2f} s, "
          f"count ids {t_count - t_compute:.2f} s, write {t_end - t_count:.2f} s)")
    return 0
