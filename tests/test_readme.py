"""Every shell command README.md shows in a ```bash block runs, as shown, and exits 0.

How it works: the README's ```bash blocks are parsed in order (``readme_commands``). In a block
with ``$ `` prompts only the prompted lines are commands (the others are their output);
otherwise every line that is not blank or a comment is one, and a trailing ``\\`` joins the
next line. Each block runs in one shared working directory, in README order (so a later block
may use what an earlier one wrote), through ``bash -c`` with ``.venv/bin`` first on ``PATH``.
The directory holds ``demo_out/workspace`` and ``demo_out/prepared`` as ``make demo`` leaves
them (the session's sample workspace, linked), and ``NEURONS_JAX_CACHE_DIR`` points into it,
so nothing outside the test's temporary directory is written.

A command that cannot run here goes into ``SKIP`` (a prefix of the command -> the reason);
``test_skip_list_is_not_stale`` fails when an entry no longer matches any README command.
Other parts of the project add their README lines in their sections (the HTML comments in
README.md mark them); they are run here with no change to this file, as long as their inputs
live under ``demo_out/`` or are written by an earlier README command.

Runtime: about a minute on 2 cores (train runs dominate).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent  # .venv/bin: neurons-jax, neurons-relabel

# command prefix -> why the README test does not run it
SKIP: dict[str, str] = {
    "make demo": "make demo itself is not re-run: its sample workspace is linked as demo_out/",
    "make test": "runs this test suite",
    ".venv/bin/pip install -e '.[gpu]'": "installs the CUDA 12 GPU extras (network, a CUDA driver)",
    ".venv/bin/pip install -e '.[gpu-cuda13]'": "installs the CUDA 13 GPU extras (network, a CUDA driver)",
    "make gpu-check": "needs a GPU",
    "neurons-jax download": "downloads public data (network)",
    "neurons-jax prepare snemi3d data/snemi3d": "needs data/snemi3d from neurons-jax download (network)",
    "neurons-jax view": "serves Neuroglancer until Ctrl-C; --screenshot needs Chromium (tests/test_view.py runs both)",
}
TIMEOUT_S = 240  # per block


def readme_commands(text: str) -> list[tuple[int, list[tuple[int, str]]]]:
    """``[(block line, [(command line, command), ...]), ...]`` of the ```bash blocks of ``text``.

    >>> readme_commands("x\\n```bash\\n$ a 1\\nout\\n$ b \\\\\\n  2\\n```\\n```bash\\nc  # why\\n# note\\n```\\n")
    [(2, [(3, 'a 1'), (5, 'b 2')]), (8, [(9, 'c  # why')])]
    """
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```bash":
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append((i + 1, lines[i]))
            i += 1
        prompted = any(ln.startswith("$ ") for _, ln in body)
        cmds: list[tuple[int, str]] = []
        k = 0
        while k < len(body):
            no, ln = body[k]
            k += 1
            if prompted:
                if not ln.startswith("$ "):
                    continue
                ln = ln[2:]
            if not ln.strip() or ln.lstrip().startswith("#"):
                continue
            cmd = ln.rstrip()
            while cmd.endswith("\\") and k < len(body):
                cmd = cmd[:-1].rstrip() + " " + body[k][1].strip()
                k += 1
            cmds.append((no, cmd))
        blocks.append((start, cmds))
        i += 1
    return blocks


def skip_reason(cmd: str) -> str | None:
    return next((why for prefix, why in SKIP.items() if cmd.startswith(prefix)), None)


BLOCKS = readme_commands(README.read_text())


@pytest.fixture(scope="module")
def work(workspace, prepared, tmp_path_factory) -> Path:
    """A directory laid out as the repository root after ``make demo`` (demo_out/...)."""
    d = tmp_path_factory.mktemp("readme")
    (d / "demo_out").mkdir()
    native = {Path(p).parent for p in workspace.values()}
    prep = {Path(p).parent for p in prepared.values()}
    assert len(native) == 1 and len(prep) == 1
    (d / "demo_out" / "workspace").symlink_to(native.pop(), target_is_directory=True)
    (d / "demo_out" / "prepared").symlink_to(prep.pop(), target_is_directory=True)
    yield d
    shutil.rmtree(d / "cache", ignore_errors=True)


def run_block(work: Path, cmds: list[tuple[int, str]]) -> list[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "NEURONS_JAX_CACHE_DIR": str(work / "cache"), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    ran = []
    for no, cmd in cmds:
        if skip_reason(cmd):
            continue
        r = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True, text=True,
                           timeout=TIMEOUT_S)
        assert r.returncode == 0, (f"README.md line {no}: `{cmd}` exited {r.returncode}\n"
                                   f"stdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-3000:]}")
        assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, (no, cmd, r.stderr[-3000:])
        ran.append(cmd)
    return ran


@pytest.mark.parametrize("start,cmds", BLOCKS, ids=[f"README.md:{s}" for s, _ in BLOCKS])
def test_readme_block_runs(work, start, cmds):
    if all(skip_reason(c) for _, c in cmds):
        pytest.skip("; ".join(sorted({skip_reason(c) for _, c in cmds})))
    run_block(work, cmds)


def test_readme_has_the_main_commands():
    """The parser finds the commands a newcomer runs first, and they are not skipped."""
    cmds = [c for _, block in BLOCKS for _, c in block]
    ran = [c for c in cmds if not skip_reason(c)]
    for prog in ("neurons-jax prepare", "neurons-jax info", "neurons-jax preview", "neurons-jax train",
                 "neurons-relabel components", "neurons-relabel union"):
        assert any(c.startswith(prog) for c in ran), prog
    assert any("--pad" in c for c in ran) and any("train --smoke" in c for c in ran)
    assert len(ran) >= 12, ran


def test_skip_list_is_not_stale():
    cmds = [c for _, block in BLOCKS for _, c in block]
    stale = [p for p in SKIP if not any(c.startswith(p) for c in cmds)]
    assert not stale, f"SKIP entries match no README command: {stale}"


def test_readme_workers_snippet_runs_cleanly(work):
    """The README's worker example (with its main guard) runs as a script: no "Exception ignored"
    tracebacks, no leaked shared memory at exit."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    code = next(textwrap.dedent(b) for b in blocks if "worker_count=2" in b)
    assert 'if __name__ == "__main__":' in code
    script = work / "workers.py"
    code, n = re.subn(r"^(\s+)\.\.\.$", r"\1print(step, batch['image'].shape)", code, flags=re.M)
    assert n == 1, code
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], cwd=work, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "9 (4, 8, 64, 64, 1)" in r.stdout
    assert "Exception ignored" not in r.stderr and "leaked shared_memory" not in r.stderr, r.stderr[-3000:]


def test_readme_says_where_the_sample_data_is():
    text = README.read_text()
    assert "demo_out/workspace/KIND/" in text and "demo_out/prepared/KIND/" in text
    assert re.search(r'if __name__ == "__main__":\s+# needed with worker_count > 0', text)
