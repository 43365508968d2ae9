"""What every dataset downloader shares: options, fetching a list of files, linking a copy.

Example:
    >>> from neurons_jax.download.common import Options, fetch_files
    >>> fetch_files("cremi3d", ["sample_A_20160501.hdf"], "data/cremi3d",
    ...             Options(mirror="http://mirror.lan/cremi/"))          # doctest: +SKIP
    [PosixPath('data/cremi3d/sample_A_20160501.hdf')]
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .http import DownloadError, Expected, fetch, fetch_text, format_bytes, part_path
from .sources import checksums_url, file_url, parse_checksums, source


@dataclass(frozen=True)
class Options:
    """Network behaviour and source overrides shared by all datasets.

    ``retries``/``backoff``/``timeout`` left None follow the network policy
    (:func:`neurons_jax.net.policy`: ``NEURONS_JAX_NET_*``, else 2 retries, 1 s, 7 s).
    """

    retries: int | None = None
    backoff: float | None = None
    timeout: float | None = None
    progress: bool = True
    mirror: str | None = None
    checksums: str | None = None
    verify_tls: bool = True

    def say(self, msg: str) -> None:
        if self.progress:
            print(msg, file=sys.stderr)


def expectations(dataset: str, names: Sequence[str], opts: Options) -> dict[str, Expected]:
    """Size/checksums per file: the table's, completed by the published checksum document."""
    specs = {f.name: f for f in source(dataset).files}
    published: dict[str, Expected] = {}
    doc = checksums_url(dataset, opts.checksums, opts.mirror)
    if doc:
        text = fetch_text(doc, retries=opts.retries, backoff=opts.backoff, timeout=opts.timeout,
                          verify_tls=opts.verify_tls)
        published = parse_checksums(text, origin=doc)
    out = {}
    for name in names:
        e = specs[name].expected() if name in specs else Expected()
        p = published.get(name)
        if p is not None:
            e = Expected(size=p.size or e.size, sha256=p.sha256 or e.sha256, md5=p.md5 or e.md5)
        out[name] = e
    return out


def fetch_files(
    dataset: str, names: Sequence[str], output: str | os.PathLike, opts: Options,
    expected: dict[str, Expected] | None = None,
) -> list[Path]:
    """Fetch ``names`` of ``dataset`` into ``output`` (resuming, verifying, skipping complete)."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    expected = expected if expected is not None else expectations(dataset, names, opts)
    check_space(output, [(output / n, expected[n].size) for n in names])
    paths = []
    for name in names:
        url = file_url(dataset, name, opts.mirror)
        dest = output / name
        if dest.exists():
            opts.say(f"{name}: present, checking")
        else:
            opts.say(f"{name}: {url}")
        paths.append(
            fetch(url, dest, expected=expected[name], retries=opts.retries,
                  backoff=opts.backoff, timeout=opts.timeout, progress=opts.progress,
                  verify_tls=opts.verify_tls)
        )
    return paths


def check_space(directory: Path, planned: Sequence[tuple[Path, int | None]]) -> None:
    """Refuse to start when the known sizes still to fetch exceed the free space."""
    need = 0
    for dest, size in planned:
        if size is None or dest.exists():
            continue
        part = part_path(dest)
        need += size - (part.stat().st_size if part.exists() else 0)
    existing = Path(directory)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if need > free:
        raise DownloadError(f"disk full: need {format_bytes(need)}, {format_bytes(free)} free in {directory}")


def link_files(
    src_dir: str | os.PathLike, wanted: Sequence[Sequence[str]], output: str | os.PathLike,
    what: str = "file",
) -> list[Path]:
    """Symlink existing copies into ``output``; each entry of ``wanted`` lists alternative names.

    Every source is checked before anything is linked, so a missing one leaves ``output``
    untouched. Existing links are replaced; a real file or directory in the way is refused.
    """
    src_dir = Path(src_dir).expanduser()
    if not src_dir.is_dir():
        raise FileNotFoundError(f"--link {src_dir}: no such directory")
    found, missing = [], []
    for names in wanted:
        hit = next((src_dir / n for n in names if (src_dir / n).exists()), None)
        if hit is None:
            missing.append(" or ".join(names))
        else:
            found.append(hit)
    if missing:
        raise FileNotFoundError(f"--link {src_dir}: missing {what}(s): {', '.join(missing)}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    links = []
    for src in found:
        dst = output / src.name
        if dst.exists() and not dst.is_symlink():
            if dst.resolve() == src.resolve():
                links.append(dst)
                continue
            raise FileExistsError(f"{dst}: a real {what} is in the way of the link to {src}; move it away")
        tmp = output / f".{src.name}.link-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(src.resolve(), tmp, target_is_directory=src.is_dir())
        os.replace(tmp, dst)
        links.append(dst)
    return links
