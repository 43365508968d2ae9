"""Command line: ``neurons-jax {demo,prepare,train,preview,explore,view,relabel,download,info}`` and ``neurons-relabel``.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only dispatches (modules load lazily, so ``--help`` is fast).
Dataset kinds (choices, per-kind options, help) come from the registry
(``nj.datasets.kind_names()``), read by the command modules, never listed here.

Example:
    $ neurons-jax prepare snemi3d data/snemi3d prepared/snemi3d
    $ neurons-relabel components seg.h5:labels out.zarr --connectivity 26
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("neurons_jax.commands.demo", "write the sample workspace, prepare, mix, train briefly, preview"),
    "prepare": ("neurons_jax.commands.prepare", "ingest native dataset files into zarr3 + metadata.json"),
    "info": ("neurons_jax.commands.info", "print what a dataset root holds (volumes, shapes, voxel sizes, classes)"),
    "train": ("neurons_jax.commands.train", "train the Flax UNet example on mixed datasets"),
    "preview": ("neurons_jax.commands.preview", "write a PNG montage of one batch"),
    "explore": ("neurons_jax.commands.explore", "statistics, pictures and an HTML report of datasets"),
    "view": ("neurons_jax.commands.view", "a Neuroglancer viewer of a dataset (or --screenshot PNG)"),
    "relabel": ("neurons_jax.commands.relabel", "relabel a label volume (components, instances, union, renumber)"),
    "download": ("neurons_jax.commands.download", "download a public dataset (neurons-jax download --help lists the kinds)"),
}


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _load(name: str):
    return importlib.import_module(COMMANDS[name][0])


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    if only is not None:
        p = argparse.ArgumentParser(prog=f"neurons-{only}", description=COMMANDS[only][1])
        _load(only).add_arguments(p)
        p.set_defaults(_command=only)
        return p
    p = argparse.ArgumentParser(prog="neurons-jax", description="connectomics EM input pipeline for JAX/Flax")
    sub = p.add_subparsers(dest="_command", metavar="COMMAND", required=True)
    wanted = sys.argv[1] if len(sys.argv) > 1 else None
    for name, (_, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        if name == wanted:  # only the module being run is imported
            _load(name).add_arguments(sp)
    return p


def _run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    args = parser.parse_args(argv)
    try:
        return int(_load(args._command).run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (CommandError, FileNotFoundError, FileExistsError, KeyError, ValueError, TypeError, OSError,
            FloatingPointError) as e:
        text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        msg = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        prog = parser.prog if parser.prog.startswith("neurons-relabel") else f"neurons-jax {args._command}"
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    return _run(build_parser(), argv)


def relabel_main(argv: list[str] | None = None) -> int:
    return _run(build_parser("relabel"), argv)


if __name__ == "__main__":
    raise SystemExit(main())
