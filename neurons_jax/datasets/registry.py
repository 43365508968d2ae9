"""The dataset-kind registry: one record per kind, the one list every other list derives from.

A kind registers once, in its own module, with :func:`register_kind`: its reader
``reader(root, split="train", *, ...)``, its label rule (registered through ``nj.rules``), how
``prepare`` ingests it (``native_entries``, ``options``, the roles it reads), its command-line
options, an optional downloader and an optional sample-workspace writer. ``READER_FUNCTIONS``,
``prepare``, ``parse_dataset_spec``, ``summarize``, ``nj.download``, ``nj.sample`` and the
``neurons-jax`` commands (prepare, info, download, preview, demo) all read their kinds here, so
a new kind is one module plus one ``register_kind`` call. Kinds are listed in registration
order (the built-ins: snemi3d, cremi3d, microns, mitoem2, generic).

Example:
    >>> from neurons_jax.datasets import registry
    >>> def toy(root, split="train", *, valid_fraction=0.2): ...
    >>> k = registry.register_kind("toy_doc", toy, rule=[(1, 1, "mitochondria")], help="a toy")
    >>> "toy_doc" in registry.kind_names(), k.label_rule.classes_present()
    (True, ('mitochondria',))
    >>> registry.unregister_kind("toy_doc")
    >>> registry.get_kind("snemi3d").rule, registry.get_kind("mitoem2").main_role
    ('snemi3d', 'tr')
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .. import rules as _rules
from ..rules import LabelRule

NEEDS = ("prepare", "download", "sample")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class CliOption:
    """One command-line option of a kind: argparse flags, the keyword argument it feeds, and
    argparse settings (``nargs``, ``type``, ``metavar``, ``action``/``const``, ``choices``).

    The option's default is None (not given: the reader's or downloader's own default applies);
    ``action="store_const", const=False`` makes a flag that passes False.
    """

    flags: tuple[str, ...]
    dest: str
    help: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)

    def add_to(self, parser: argparse.ArgumentParser | Any) -> None:
        parser.add_argument(*self.flags, dest=self.dest, help=self.help, **{"default": None, **self.settings})

    def value(self, args: argparse.Namespace) -> Any:
        return getattr(args, self.dest, None)


def option(*flags: str, dest: str, help: str = "", **settings: Any) -> CliOption:
    """``option("--subsets", dest="subsets", nargs="+", help=...)``: a :class:`CliOption`."""
    if not flags or not all(f.startswith("-") for f in flags):
        raise ValueError(f"option {dest!r}: flags must start with '-'; got {flags!r}")
    return CliOption(tuple(flags), dest, help, MappingProxyType(dict(settings)))


def given_options(options: Sequence[CliOption], args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``options`` given on the command line (None = not given)."""
    return {o.dest: v for o in options if (v := o.value(args)) is not None}


@dataclass(frozen=True)
class Downloader:
    """How ``neurons-jax download KIND`` (``nj.download.download``) gets a kind's native files.

    ``function`` is ``download(output: Path, *, options: nj.download.Options, **kwargs)`` or a
    ``"module:function"`` path imported on first use. With ``http`` the shared network options
    (``--retries``, ``--backoff``, ``--timeout``, ``--insecure``, ``--checksums``) apply.
    ``done`` is printed after a download that returned paths (``{kind}``, ``{output}`` filled in).
    """

    function: Callable[..., Any] | str
    help: str = ""
    options: tuple[CliOption, ...] = ()
    http: bool = True
    done: str = "next: neurons-jax prepare {kind} {output} prepared/{kind}"

    def load(self) -> Callable[..., Any]:
        return resolve(self.function, "downloader")


@dataclass(frozen=True)
class DatasetKind:
    """Everything the package knows about one dataset kind (see :func:`register_kind`)."""

    name: str
    reader: Callable[..., Any]
    rule: str  # the nj.rules kind of its label rule: the kind's own name
    help: str = ""
    root_help: str = "native dataset root (or a prepared root)"
    native_entries: Callable[..., list] | None = None
    options: Callable[..., dict] | None = None
    roles: tuple[str, ...] = ("trainval", "test")
    assign_roles: Callable[..., list] | None = None
    root_optional: bool = False
    prepare_options: tuple[CliOption, ...] = ()
    downloader: Downloader | None = None
    sample: Callable[..., None] | str | None = None

    @property
    def label_rule(self) -> LabelRule:
        """The ``nj.rules`` rule of this kind's labels."""
        return _rules.get_rule(self.rule)

    @property
    def main_role(self) -> str:
        """The role ``prepare`` requires (the others, e.g. ``test``, may be absent)."""
        return self.roles[0]

    def can(self, need: str) -> bool:
        """Whether the kind supports ``need``: ``prepare``, ``download`` or ``sample``."""
        return {"prepare": self.native_entries is not None, "download": self.downloader is not None,
                "sample": self.sample is not None}[need]

    def sample_writer(self) -> Callable[..., None]:
        """``writer(root: Path, rng: np.random.Generator)`` writing the kind's native sample files."""
        if self.sample is None:
            raise ValueError(f"dataset kind {self.name!r} has no sample-workspace writer")
        return resolve(self.sample, f"{self.name} sample writer")

    def record_options(self, **reader_kwargs: Any) -> dict:
        """The reader options ``prepare`` records in ``metadata.json`` (checked by the kind)."""
        if self.options is not None:
            return self.options(**reader_kwargs)
        return dict(reader_kwargs)


_KINDS: dict[str, DatasetKind] = {}
_OWN_RULES: set[str] = set()  # rules register_kind registered (unregister_kind removes them)


# ----------------------------------------------------------------------------- registration
def register_kind(
    name: str,
    reader: Callable[..., Any],
    *,
    rule: str | LabelRule | Sequence[Sequence] | None = None,
    instances: str = "ids",
    interior: int = 1,
    boundary: int = 2,
    help: str = "",
    root_help: str | None = None,
    native_entries: Callable[..., list] | None = None,
    options: Callable[..., dict] | None = None,
    roles: Sequence[str] = ("trainval", "test"),
    assign_roles: Callable[..., list] | None = None,
    root_optional: bool = False,
    prepare_options: Sequence[CliOption] = (),
    downloader: Downloader | None = None,
    sample: Callable[..., None] | str | None = None,
    overwrite: bool = False,
) -> DatasetKind:
    """Register dataset kind ``name``; returns its record.

    Args:
        reader: ``reader(root, split="train", *, ...)`` returning an ``nj.datasets.Dataset``
            (native or prepared root); everything after ``split`` keyword-only.
        rule: the label rule, registered through ``nj.rules`` under ``name`` (a dataset's
            ``kind`` selects its rule): ranges ``[(lo, hi, class), ...]`` (with ``instances``,
            ``interior``, ``boundary``), a ``LabelRule`` or the name of another kind's rule
            (copied); None: the rule already registered as ``name``.
        native_entries: ``native_entries(root, roles=(...), **reader_kwargs) -> [Entry]``; a
            kind without it cannot be prepared.
        options: ``options(**reader_kwargs) -> dict``: checks the reader options and returns
            the JSON that ``prepare`` records (default: the keyword arguments as given).
        roles: the roles ``prepare`` reads: the first is required (``trainval``: split by z;
            ``train``/``valid``/``test``; or a role ``assign_roles`` turns into those), the
            others are skipped with a note when the input has none.
        assign_roles: ``assign_roles(entries, valid_fraction) -> entries`` (e.g. MitoEM2's
            split by file) used for the splits ``prepare`` records.
        root_optional: the reader works without a root (``public`` on the command line).
        prepare_options: ``neurons-jax prepare KIND`` options (see :func:`option`).
        downloader: how ``neurons-jax download KIND`` gets the files (:class:`Downloader`).
        sample: ``writer(root, rng)`` (or ``"module:function"``) writing small native files
            for ``nj.sample.write_workspace``.
        help: one line for command-line help; ``root_help`` says what ROOT is.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"dataset kind name must start with a letter and hold only letters, digits, '_', "
            f"'.', '-' (it is used in KIND=ROOT specs and as a command-line choice); got {name!r}"
        )
    if name in _KINDS and not overwrite:
        raise ValueError(f"dataset kind {name!r} is already registered (pass overwrite=True)")
    check_reader(name, reader)
    roles = tuple(roles)
    if not roles or not all(isinstance(r, str) and r for r in roles):
        raise ValueError(f"dataset kind {name!r}: roles must be a non-empty sequence of role names; got {roles!r}")
    for what, fn in (("native_entries", native_entries), ("options", options), ("assign_roles", assign_roles)):
        if fn is not None and not callable(fn):
            raise TypeError(f"dataset kind {name!r}: {what} must be callable; got {type(fn).__name__}")
    if downloader is not None and not isinstance(downloader, Downloader):
        raise TypeError(f"dataset kind {name!r}: downloader must be a Downloader; got {type(downloader).__name__}")
    for o in (*prepare_options, *(downloader.options if downloader else ())):
        if not isinstance(o, CliOption):
            raise TypeError(f"dataset kind {name!r}: command-line options must be CliOption (see option()); got {o!r}")
    rule_name = _register_rule(name, rule, instances, interior, boundary, overwrite)
    kind = DatasetKind(
        name=name, reader=reader, rule=rule_name, help=help,
        root_help=root_help or DatasetKind.root_help, native_entries=native_entries, options=options,
        roles=roles, assign_roles=assign_roles, root_optional=bool(root_optional),
        prepare_options=tuple(prepare_options), downloader=downloader, sample=sample,
    )
    _KINDS[name] = kind
    return kind


def _register_rule(name, rule, instances, interior, boundary, overwrite) -> str:
    """The rule of kind ``name`` is registered under ``name`` (``Dataset.kind`` selects it)."""
    existing = _rules.get_rule(name) if name in _rules.known_kinds() else None
    if rule is None or rule == name:
        if existing is None:
            raise ValueError(
                f"dataset kind {name!r}: no label rule {name!r} is registered; pass rule= ranges "
                f"[(lo, hi, class), ...] or the name of a registered rule ({', '.join(_rules.known_kinds())})"
            )
        return name
    if isinstance(rule, str):  # another kind's rule, e.g. "mitoem2" for 0/1/2 labels: copied
        rule = _rules.get_rule(rule)  # raises for an unknown rule, listing the known ones
    if isinstance(rule, LabelRule):
        ranges, instances, interior, boundary = rule.ranges, rule.instances, rule.interior, rule.boundary
    else:
        ranges = rule
    if existing is not None and name not in _OWN_RULES and not overwrite:
        raise ValueError(
            f"dataset kind {name!r}: a label rule {name!r} is already registered; leave rule= out "
            "to use it, or pass overwrite=True to replace it"
        )
    _rules.register_rule(name, ranges, instances, interior=interior, boundary=boundary, overwrite=True)
    _OWN_RULES.add(name)
    return name


def check_reader(name: str, reader: Callable[..., Any]) -> None:
    """``reader(root, split="train", *, ...)``: two positional parameters, the rest keyword-only."""
    if not callable(reader):
        raise TypeError(f"dataset kind {name!r}: reader must be callable; got {type(reader).__name__}")
    try:
        params = list(inspect.signature(reader).parameters.values())
    except (TypeError, ValueError):
        return  # a builtin without a signature: trust it
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    ok = (
        len(positional) == 2
        and positional[1].name == "split"
        and positional[1].default == "train"
        and not any(p.kind == p.VAR_POSITIONAL for p in params)
    )
    if not ok:
        found = ", ".join(str(p) for p in params)
        raise TypeError(
            f"dataset kind {name!r}: reader must have the signature reader(root, split=\"train\", *, ...) "
            f"(everything after split keyword-only); found {getattr(reader, '__name__', reader)}({found})"
        )


def unregister_kind(name: str) -> None:
    """Remove kind ``name`` (and the label rule :func:`register_kind` registered for it)."""
    if name not in _KINDS:
        raise ValueError(f"dataset kind {name!r} is not registered; registered: {', '.join(_KINDS)}")
    del _KINDS[name]
    if name in _OWN_RULES:
        _OWN_RULES.discard(name)
        _rules.unregister_rule(name)


# ----------------------------------------------------------------------------- look-up
def kind_names(need: str | None = None) -> tuple[str, ...]:
    """Registered kind names in registration order (only those that can ``need``, if given)."""
    return tuple(k.name for k in kinds(need))


def kinds(need: str | None = None) -> tuple[DatasetKind, ...]:
    """Registered kinds in registration order (only those that can ``need``, if given)."""
    if need is not None and need not in NEEDS:
        raise ValueError(f"need must be one of {', '.join(NEEDS)}; got {need!r}")
    return tuple(k for k in _KINDS.values() if need is None or k.can(need))


def get_kind(name: str, need: str | None = None) -> DatasetKind:
    """The record of kind ``name``; a clear error for an unknown one (or one that cannot ``need``)."""
    names = kind_names(need)
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None or (need is not None and not kind.can(need)):
        purpose = f" for {need}" if need else ""
        why = f" ({name!r} cannot {need})" if kind is not None else ""
        raise ValueError(
            f"unknown dataset kind {name!r}{purpose}{why}; expected one of {', '.join(names) or 'none'} "
            "(or register one with nj.datasets.register_kind)"
        )
    return kind


class ReaderFunctions(Mapping):
    """A live, read-only ``{kind: reader}`` view of the registry (``READER_FUNCTIONS``)."""

    def __getitem__(self, name: str) -> Callable[..., Any]:
        if name not in _KINDS:
            raise KeyError(name)
        return _KINDS[name].reader

    def __iter__(self) -> Iterator[str]:
        return iter(kind_names())

    def __len__(self) -> int:
        return len(_KINDS)

    def __repr__(self) -> str:
        return f"READER_FUNCTIONS({', '.join(_KINDS)})"


def resolve(ref: Callable[..., Any] | str, what: str) -> Callable[..., Any]:
    """A callable, or ``"package.module:attribute"`` imported now."""
    if callable(ref):
        return ref
    module, sep, attr = str(ref).partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{what}: expected a callable or 'package.module:function'; got {ref!r}")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ImportError(f"{what}: cannot load {ref!r} ({e})") from None
