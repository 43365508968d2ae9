"""``neurons-relabel MODE INPUT OUTPUT``: relabel a label volume on the GPU (or the CPU).

Modes: ``components`` (multilabel connected components), ``instances`` (boundary-separated
instances from 3-class semantic labels), ``union`` (native ids -> the 5 union classes of a
dataset kind), ``renumber`` (compact ids 1..n). Inputs and outputs are any format of
:mod:`neurons_jax.labelio`; the output format follows its suffix (zarr3 when there is none).
The input is never written; an existing output is replaced only with ``--overwrite``.

Example:
    $ neurons-relabel components seg.h5:labels seg_cc.zarr3 --connectivity 26
    $ neurons-relabel union cremi.h5:volumes/labels/neuron_ids union.nii.gz --kind cremi3d
    $ neurons-jax relabel renumber microns.zarr3 compact.npy --device cpu
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from neurons_jax.backend import CONNECTIVITIES, DEVICES

MODES = ("components", "instances", "union", "renumber")


EXAMPLES = """examples:
  neurons-relabel components seg.h5:labels seg_cc.zarr3 --connectivity 26
  neurons-relabel union cremi.h5:volumes/labels/neuron_ids union.nii.gz --kind cremi3d
  neurons-jax relabel renumber microns.zarr3 compact.npy --device cpu
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class, p.epilog = argparse.RawDescriptionHelpFormatter, EXAMPLES
    p.add_argument("mode", choices=MODES, help="what to compute")
    p.add_argument("input", help="file.h5:key, .tif/.tiff, .nii/.nii.gz, .npy, file.npz:key, a "
                   "zarr3/zarr/N5/precomputed folder, DRIVER://path or a URL")
    p.add_argument("output", help="same formats, chosen by suffix (.zarr3 or none: zarr3; .zarr: "
                   "zarr v2; .n5; precomputed://DIR; .h5:key, key 'labels' by default)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="auto: the GPU when CuPy finds one, else the CPU (default)")
    p.add_argument("--connectivity", type=int, choices=(4, 6, 8, 18, 26), default=None,
                   help="components/instances: 6, 18 or 26 in 3D (default 6); 4 or 8 in 2D (default 4)")
    p.add_argument("--interior", type=int, default=1, help="instances: interior class value (default 1)")
    p.add_argument("--boundary", type=int, default=2, help="instances: boundary class value (default 2)")
    p.add_argument("--no-grow", dest="grow", action="store_false",
                   help="instances: leave boundary voxels at 0 instead of giving them to a neighbour")
    p.add_argument("--kind", help="union: dataset kind whose label rule applies (e.g. cremi3d, snemi3d)")
    p.add_argument("--ignore-class", dest="ignore_classes", action="append", default=[], metavar="NAME",
                   help="union: a union class to turn into background (repeatable)")
    p.add_argument("--block-shape", type=int, nargs=3, metavar=("Z", "Y", "X"),
                   help="components: label block by block (out of core; zarr3 output)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="components --block-shape: a scheduler to use")
    p.add_argument("--voxel-size", type=float, nargs="+", metavar="NM",
                   help="voxel size (z y x nm) to record in the output (default: the input's, "
                   "if it has one; else none is recorded)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
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
    elif args.kind or args.ignore_classes:
        raise _error(f"--kind/--ignore-class apply to union, not {args.mode}")
    if args.block_shape and args.mode != "components":
        raise _error(f"--block-shape applies to components, not {args.mode}")


def check_dtype(dtype: np.dtype, where: object) -> None:
    """Integer (or bool) label ids only; floats and everything else are refused."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        raise _error(f"{where}: float labels are not supported (found {dtype}); label ids must be integers")
    if dtype.kind not in "uib":
        raise _error(f"{where}: unsupported dtype {dtype}; expected unsigned/signed integer or bool labels")


def as_unsigned(arr: np.ndarray, where: object) -> np.ndarray:
    """Bool -> uint8; signed ids -> the unsigned type of the same width (negative ids refused)."""
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if arr.dtype.kind == "i":
        lo = int(arr.min()) if arr.size else 0
        if lo < 0:
            raise _error(f"{where}: negative label ids are not supported (found minimum {lo})")
        return arr.view(arr.dtype.str.replace("i", "u"))
    return arr


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


def _blockwise(args: argparse.Namespace, lv, dst, vs) -> int:
    """``components --block-shape``: the Dask blockwise labeller (zarr3 out, resumable)."""
    from neurons_jax import labelio

    try:
        from neurons_jax.ops.blockwise import cli_components
    except ImportError as e:
        raise _error(f"--block-shape needs neurons_jax.ops.blockwise, which is not available ({e})") from None
    if dst.format != "zarr3" or dst.path is None:
        raise _error(f"{dst}: --block-shape writes a local zarr3 output (.zarr3 or no suffix); got {dst.format}")
    t0 = time.perf_counter()
    # --overwrite: the old output and its job records (DEST.blockwise/) wait aside until the new
    # output is complete; without it an existing output was refused already
    records = dst.path.with_name(dst.path.name + ".blockwise")
    aside = {}
    if dst.path.exists():
        aside = {p: labelio.tmp_name(p, "old") for p in (dst.path, records) if p.exists()}
        for p, q in aside.items():
            p.rename(q)
    try:
        vol, n = cli_components(lv.volume, str(dst.path), tuple(args.block_shape), args.connectivity or 6,
                                scheduler=args.scheduler, progress=args.progress, voxel_size=vs)
    except BaseException:
        if aside and not dst.path.exists():
            labelio.remove_quietly(records)
            for p, q in aside.items():
                q.rename(p)
        raise
    for q in aside.values():
        labelio.remove_quietly(q)
    print(f"neurons-relabel components: {lv.location} {lv.shape} {lv.dtype} -> {dst} (zarr3, {vol.dtype}) "
          f"in blocks of {tuple(args.block_shape)}")
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


def run(args: argparse.Namespace) -> int:
    from neurons_jax import labelio

    t0 = time.perf_counter()
    src, dst = labelio.parse_input(args.input), labelio.parse_output(args.output)
    if labelio.same_storage(src, dst):
        raise _error(f"{dst}: refusing to write into the input {src}; choose another output")
    if labelio.output_exists(dst) and not args.overwrite:
        raise FileExistsError(f"{dst}: already exists; pass --overwrite to replace it")
    device = resolve_device(args.device)
    lv = labelio.open_labels(src)
    check_dtype(lv.dtype, lv.location)
    _check_args(args, lv.volume.ndim)
    vs = tuple(args.voxel_size) if args.voxel_size else lv.voxel_size
    if vs is not None and len(vs) != lv.volume.ndim:
        raise _error(f"--voxel-size needs {lv.volume.ndim} values (z y x nm); got {len(vs)}")
    if args.block_shape:
        return _blockwise(args, lv, dst, vs)

    from tqdm import tqdm

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
    print(f"neurons-relabel {args.mode}: {lv.location} {lv.shape} {lv.dtype} -> {dst} "
          f"({dst.format}, {out.dtype}) on {device}")
    print(f"ids in: {ids_in}  ids out: {ids_out}  (nonzero)")
    _print_voxel_size(vs, lv, dst)
    print(f"time: {t_end - t0:.2f} s (read {t_read - t0:.2f} s, {args.mode} {t_compute - t_read:.2f} s, "
          f"count ids {t_count - t_compute:.2f} s, write {t_end - t_count:.2f} s)")
    return 0
