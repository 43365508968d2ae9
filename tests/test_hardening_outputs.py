"""Issue 13, "nothing lost, nothing silent, nothing unbounded", for the writers of neurons-relabel,
blockwise jobs and prepare: every case asserts the exit code (or exception), the first line of
the message, and that no user file changed.

1. --overwrite replaces only what the tool wrote; an interrupted replacement is undone.
2. missing chunks are errors unless --allow-missing; negative ids refused in memory and blockwise.
3. an in-memory run past the memory budget is refused, naming --block-shape.
4. outputs are locked; temporaries carry the pid and dead runs' leftovers are cleaned; SIGINT
   (exit 130) and SIGKILL mid-write leave the old output intact.
5. messages name the file, the box, the block; symlink loops; --voxel-size; per-mode help.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import neurons_jax as nj
from neurons_jax import safeio
from neurons_jax.cli import main as jax_main
from neurons_jax.cli import relabel_main

ROOT = Path(__file__).resolve().parents[1]
EXE = ROOT / ".venv" / "bin" / "neurons-relabel"
PREFIX = "neurons-relabel: error: "


def relabel(*argv) -> int:
    return relabel_main([*map(str, argv), "--device", "cpu", "--no-progress"])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if not ln.startswith("neurons-relabel: note:")]
    assert len(lines) == 1, err
    assert lines[0].startswith(PREFIX), err
    return lines[0][len(PREFIX):]


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (or ``root`` itself) -> its sha256: what a user would lose."""
    root = Path(root)
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def labels(tmp_path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    a = (rng.random((24, 40, 40)) < 0.3).astype(np.uint32) * rng.integers(1, 6, (24, 40, 40)).astype(np.uint32)
    p = tmp_path / "l.npy"
    np.save(p, a)
    return p, a


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def command(*argv: str) -> list[str]:
    return [str(EXE)] if EXE.exists() else [sys.executable, "-m", "neurons_jax.cli", "relabel"]


def start(argv: list[str], flag: Path | None = None, point: str = "write", exe: list[str] | None = None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NEURONS_JAX_TEST_PAUSE", None)
    if flag is not None:
        env["NEURONS_JAX_TEST_PAUSE"] = f"{point}:{flag}"
    cmd = (exe or command()) + [str(a) for a in argv]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def wait_for(flag: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not flag.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the writer ended (rc {proc.returncode}) before its pause point: {err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the writer never reached its pause point")
        time.sleep(0.02)


def hidden(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


# ----------------------------------------------------------------------------- 1. --overwrite
def test_overwrite_refuses_a_folder_with_user_files(labels, tmp_path, capsys):
    src, _ = labels
    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    before = tree(mine)
    for extra in ([], ["--block-shape", "8", "8", "8", "--scheduler", "synchronous"]):
        assert relabel("components", src, mine, "--overwrite", *extra) == 2
        msg = one_line_error(capsys)
        assert msg.startswith(f"{mine}: holds files neurons-relabel did not write (notes.txt); "
                              "--overwrite replaces only a zarr3/zarr/N5/precomputed store"), msg
        assert tree(mine) == before
    assert sorted(os.listdir(tmp_path)) == ["l.npy", "mydata"]


def test_overwrite_replaces_a_store_but_not_one_with_extra_files(labels, tmp_path, capsys):
    src, a = labels
    out = tmp_path / "out.zarr3"
    assert relabel("renumber", src, out) == 0
    assert relabel("components", src, out, "--overwrite") == 0  # a store it wrote: replaced
    np.testing.assert_array_equal(nj.Volume.open(out).read(), nj.ops.connected_components(a)[0])
    (out / "README.txt").write_text("mine")
    before = tree(out)
    assert relabel("renumber", src, out, "--overwrite") == 2
    assert one_line_error(capsys).startswith(f"{out}: holds files neurons-relabel did not write (README.txt)")
    assert tree(out) == before
    (tmp_path / "file.zarr3").write_text("a file, not a store")
    assert relabel("renumber", src, tmp_path / "file.zarr3", "--overwrite") == 2
    assert one_line_error(capsys).startswith(f"{tmp_path / 'file.zarr3'}: is a file, not a zarr3/zarr/N5/precomputed store")
    assert (tmp_path / "file.zarr3").read_text() == "a file, not a store"
    (tmp_path / "dir.npy").mkdir()
    assert relabel("renumber", src, tmp_path / "dir.npy", "--overwrite") == 2
    assert one_line_error(capsys).startswith(f"{tmp_path / 'dir.npy'}: is a directory")


def test_prepare_overwrite_refuses_a_root_with_user_files(tmp_path):
    img = np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8)
    out = nj.datasets.prepare("generic", img, tmp_path / "root", voxel_size=(1, 1, 1), progress=False)
    (out / "volumes" / "volume" / "my_notes.md").write_text("keep")
    before = tree(out)
    with pytest.raises(FileExistsError) as e:
        nj.datasets.prepare("generic", img + 1, out, voxel_size=(1, 1, 1), overwrite=True, progress=False)
    assert str(e.value).startswith(f"{out}: holds files prepare did not write (volumes/volume/my_notes.md)")
    assert tree(out) == before
    (out / "volumes" / "volume" / "my_notes.md").unlink()
    nj.datasets.prepare("generic", img + 1, out, voxel_size=(1, 1, 1), overwrite=True, progress=False)
    np.testing.assert_array_equal(nj.datasets.generic(out).image.read()[0], (img + 1)[0])
    assert sorted(os.listdir(tmp_path)) == ["root"]


def test_a_replacement_killed_midway_is_undone_by_the_next_run(labels, tmp_path, capsys):
    src, _ = labels
    out = tmp_path / "out.zarr3"
    assert relabel("renumber", src, out) == 0
    before = tree(out)
    flag = tmp_path / "flag"
    proc = start(["components", src, out, "--overwrite", "--device", "cpu", "--no-progress"], flag, "replace")
    wait_for(flag, proc)
    proc.send_signal(signal.SIGKILL)  # between moving the old output aside and renaming the new
    proc.wait(30)
    assert not out.exists() and any(".njold-" in n for n in hidden(tmp_path))
    assert relabel("renumber", src, out) == 2  # the next run puts the old output back first
    err = capsys.readouterr().err
    assert f"note: restored {out.name} from .{out.name}.njold-" in err
    assert "already exists; pass --overwrite" in err
    assert tree(out) == before
    assert sorted(os.listdir(tmp_path)) == ["flag", "l.npy", "out.zarr3"]


def test_blockwise_overwrite_killed_or_failing_keeps_the_old_output(labels, tmp_path, capsys):
    pytest.importorskip("dask")
    src, a = labels
    out = tmp_path / "cc.zarr3"
    blocks = ["--block-shape", "8", "16", "16", "--scheduler", "synchronous"]
    assert relabel("components", src, out, *blocks) == 0
    before, records = tree(out), tree(tmp_path / "cc.zarr3.blockwise")
    flag = tmp_path / "flag"
    proc = start(["components", src, out, "--overwrite", "--connectivity", "26", *blocks, "--device", "cpu",
                  "--no-progress"], flag, "task-label")
    wait_for(flag, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert not out.exists()  # hidden aside while the dead run worked
    assert relabel("components", src, out, *blocks) == 2
    err = capsys.readouterr().err
    assert "note: restored cc.zarr3" in err and "already exists" in err
    assert tree(out) == before and tree(tmp_path / "cc.zarr3.blockwise") == records
    # a replacing run that fails (here on a damaged input) puts the old output back itself
    bad = tmp_path / "bad.zarr3"
    nj.volumes.write_zarr3(bad, a, chunks=(8, 8, 8))
    (bad / "c" / "1" / "1" / "1").write_bytes(b"not zstd" * 4)
    assert relabel("components", bad, out, "--overwrite", *blocks) == 2
    assert "cannot read" in one_line_error(capsys)
    assert tree(out) == before and tree(tmp_path / "cc.zarr3.blockwise") == records
    assert sorted(os.listdir(tmp_path)) == ["bad.zarr3", "cc.zarr3", "cc.zarr3.blockwise", "flag", "l.npy"]


# ----------------------------------------------------------------------------- 2. missing chunks, ids
def test_a_deleted_chunk_is_an_error_unless_allow_missing(labels, tmp_path, capsys):
    pytest.importorskip("dask")
    _, a = labels
    src = tmp_path / "in.zarr3"
    nj.volumes.write_zarr3(src, a, chunks=(8, 16, 16))
    (src / "c" / "1" / "0" / "1").unlink()
    before = tree(src)
    for extra in ([], ["--block-shape", "8", "16", "16", "--scheduler", "synchronous"]):
        out = tmp_path / f"out{len(extra)}.zarr3"
        assert relabel("components", src, out, *extra) == 2
        msg = one_line_error(capsys)
        assert msg.startswith(f"zarr3 store file://{src}/: chunk {{1, 0, 1}} stored at local file "
                              f"\"{src}/c/1/0/1\" is missing (reading z "), msg
        assert "pass --allow-missing" in msg
        assert ("(block 10 of 27)" in msg) == bool(extra)
        assert not out.exists() and tree(src) == before
        assert relabel("components", src, out, *extra, "--allow-missing") == 0  # a sparse store
        zeroed = a.copy()
        zeroed[8:16, 0:16, 16:32] = 0
        np.testing.assert_array_equal(nj.Volume.open(out).read(), nj.ops.connected_components(zeroed)[0])


def test_negative_ids_are_refused_in_memory_and_block_by_block(tmp_path, capsys):
    a = np.ones((4, 6, 6), np.int16)
    a[3, 5, 5] = -7
    src = tmp_path / "neg.npy"
    np.save(src, a)
    before = tree(src)
    for extra in ([], ["--block-shape", "2", "3", "3", "--scheduler", "synchronous"]):
        assert relabel("components", src, tmp_path / "out.zarr3", *extra) == 2
        msg = one_line_error(capsys)
        assert "negative label ids are not supported (found minimum -7)" in msg, msg
        assert msg.startswith(f"{src}") and ("block 7 (z 2:4, y 3:6, x 3:6)" in msg) == bool(extra)
        assert not (tmp_path / "out.zarr3").exists()
    assert tree(src) == before


# ----------------------------------------------------------------------------- 3. memory budget
def test_in_memory_run_past_the_budget_is_refused_naming_block_shape(labels, tmp_path, capsys, monkeypatch):
    src, _ = labels
    out = tmp_path / "out.zarr3"
    assert relabel("components", src, out, "--max-memory", "100K") == 2
    msg = one_line_error(capsys)
    assert msg.startswith(f"{src}: components of (24, 40, 40) uint32 in memory needs about 450.0 KiB, "
                          "more than the memory budget of 100.0 KiB (--max-memory 100K); label it block "
                          "by block with --block-shape Z Y X"), msg
    assert not out.exists()
    monkeypatch.setenv("NEURONS_JAX_MAX_MEMORY", "64K")
    assert relabel("instances", src, out) == 2
    msg = one_line_error(capsys)
    assert "(NEURONS_JAX_MAX_MEMORY=64K); instances has no block-by-block mode (--block-shape is for " in msg
    assert relabel("components", src, out, "--max-memory", "lots") == 2
    assert one_line_error(capsys).startswith("--max-memory: expected a size such as 16G, 512M or 1.5T")
    assert relabel("components", src, out, "--max-memory", "1M") == 0  # the flag wins over the variable
    assert sorted(os.listdir(tmp_path)) == ["l.npy", "out.zarr3"]


def test_default_budget_is_a_fraction_of_available_memory(monkeypatch):
    from neurons_jax.commands import relabel as rl

    monkeypatch.delenv("NEURONS_JAX_MAX_MEMORY", raising=False)
    monkeypatch.setattr(rl, "available_memory", lambda: 10 << 30)
    assert rl.memory_budget(None) == (8 << 30, "80% of the 10.0 GiB available")
    assert rl.memory_budget("none") == (None, "--max-memory none")
    assert rl.parse_size("1.5G") == 3 << 29 and rl.parse_size("512MiB") == 512 << 20
    assert rl.available_memory() > 0 if sys.platform == "linux" else True


# ----------------------------------------------------------------------------- 4. locks, temps, signals
def test_two_writers_of_one_output_the_second_is_refused(labels, tmp_path, capsys):
    src, a = labels
    out = tmp_path / "out.zarr3"
    flag = tmp_path / "flag"
    proc = start(["components", src, out, "--device", "cpu", "--no-progress"], flag)
    wait_for(flag, proc)
    assert relabel("renumber", src, out) == 2
    msg = one_line_error(capsys)
    assert msg.startswith(f"{out}: another run is writing it (neurons-relabel components, pid {proc.pid} on "
                          f"host "), msg
    assert ", started 20" in msg and not out.exists()
    flag.unlink()  # let the first writer finish
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 0, stderr
    np.testing.assert_array_equal(nj.Volume.open(out).read(), nj.ops.connected_components(a)[0])
    assert sorted(os.listdir(tmp_path)) == ["l.npy", "out.zarr3"]  # no lock, no temporary left


def test_two_prepares_into_one_root_the_second_is_refused(tmp_path):
    img = np.arange(6 * 8 * 8, dtype=np.uint8).reshape(6, 8, 8)
    with h5py.File(tmp_path / "img.h5", "w") as f:
        f["image"] = img
    out, flag = tmp_path / "root", tmp_path / "flag"
    exe = [str(ROOT / ".venv" / "bin" / "neurons-jax")]
    proc = start(["prepare", "generic", f"{tmp_path / 'img.h5'}:image", out, "--voxel-size", "1", "1", "1",
                  "--quiet"], flag, exe=exe)
    wait_for(flag, proc)
    with pytest.raises(safeio.OutputBusyError) as e:
        nj.datasets.prepare("generic", img, out, voxel_size=(1, 1, 1), progress=False)
    assert str(e.value).startswith(f"{out}: another run is writing it (prepare generic, pid {proc.pid} on host ")
    proc.send_signal(signal.SIGINT)  # Ctrl-C: exit 130, its temporary removed
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err, err
    assert sorted(os.listdir(tmp_path)) == ["flag", "img.h5"]


def test_lock_of_a_dead_process_is_taken_over(labels, tmp_path):
    src, _ = labels
    out = tmp_path / "out.zarr3"
    lock = tmp_path / ".out.zarr3.njlock"
    lock.write_text(f'{{"what": "neurons-relabel components", "pid": {dead_pid()}, "host": "x"}}')
    assert relabel("components", src, out) == 0
    assert sorted(os.listdir(tmp_path)) == ["l.npy", "out.zarr3"]
    with safeio.OutputLock(out, "test") as held:  # re-entrant within a process
        with safeio.OutputLock(out, "test again"):
            assert lock.exists()
        assert lock.exists() and held.took_over is None
    assert not lock.exists()


def test_sigint_mid_write_exits_130_and_keeps_the_old_output(labels, tmp_path):
    src, _ = labels
    for out in (tmp_path / "out.zarr3", tmp_path / "out.h5"):
        assert relabel("renumber", src, out) == 0
        before = tree(out)
        flag = tmp_path / "flag"
        proc = start(["components", src, out, "--overwrite", "--device", "cpu", "--no-progress"], flag)
        wait_for(flag, proc)
        assert any(".njtmp-" in n for n in hidden(tmp_path))  # it is writing its temporary
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
        assert tree(out) == before
        assert hidden(tmp_path) == []  # temporary and lock removed
        flag.unlink()


def test_sigterm_mid_write_cleans_up_as_ctrl_c(labels, tmp_path):
    src, _ = labels
    flag = tmp_path / "flag"
    proc = start(["components", src, tmp_path / "out.zarr3", "--device", "cpu", "--no-progress"], flag)
    wait_for(flag, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert sorted(os.listdir(tmp_path)) == ["flag", "l.npy"]


def test_sigkill_mid_write_leaves_a_temp_the_next_run_removes(labels, tmp_path, capsys):
    src, a = labels
    out, flag = tmp_path / "out.zarr3", tmp_path / "flag"
    proc = start(["components", src, out, "--device", "cpu", "--no-progress"], flag)
    wait_for(flag, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    left = [n for n in hidden(tmp_path) if ".njtmp-" in n]
    assert len(left) == 1 and f"-{proc.pid}-" in left[0]
    # leftovers of live processes and names this program did not make are never touched
    live = tmp_path / f".out.zarr3.njtmp-{safeio._HOST}-{os.getppid()}-0123abcd"
    foreign = tmp_path / ".out.zarr3.tmp-0123abcd"
    live.mkdir()
    foreign.mkdir()
    assert relabel("components", src, out) == 0
    assert f"note: removed {left[0]}, a temporary left by process {proc.pid}, which is gone" in capsys.readouterr().err
    np.testing.assert_array_equal(nj.Volume.open(out).read(), nj.ops.connected_components(a)[0])
    assert sorted(os.listdir(tmp_path)) == sorted([foreign.name, live.name, "flag", "l.npy", "out.zarr3"])


def test_prepare_removes_temporaries_of_dead_runs_only(tmp_path, capsys):
    pid = dead_pid()
    stale = tmp_path / f".root.njtmp-{safeio._HOST}-{pid}-00ff00ff"
    (stale / "volumes").mkdir(parents=True)
    (stale / "volumes" / "half.bin").write_bytes(b"x" * 1000)
    other = tmp_path / f".rootx.njtmp-{safeio._HOST}-{pid}-00ff00ff"  # another output's name
    other.mkdir()
    out = nj.datasets.prepare("generic", np.ones((4, 4, 4), np.uint8), tmp_path / "root", voxel_size=(1, 1, 1),
                              progress=False)
    assert f"prepare generic: note: removed {stale.name}, a temporary left by process {pid}" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == [other.name, "root"] and (out / "metadata.json").is_file()


@pytest.mark.slow
def test_ctrl_c_during_a_real_hdf5_write_is_honoured(tmp_path):
    """h5py swallows a KeyboardInterrupt raised inside its calls: the writer defers the signal to
    between slabs, so a Ctrl-C during the gzip write of a large dataset stops it."""
    rng = np.random.default_rng(1)
    a = rng.integers(1, 2**16, (192, 512, 512), dtype=np.uint32)  # 192 MiB of poorly compressible ids
    src = tmp_path / "big.npy"
    np.save(src, a)
    del a
    out = tmp_path / "big.h5"
    with h5py.File(out, "w") as f:
        f["labels"] = np.arange(5)
    before = tree(out)
    proc = start(["renumber", src, f"{out}:labels", "--overwrite", "--device", "cpu", "--no-progress"])
    deadline = time.monotonic() + 120
    while not any(".njtmp-" in n for n in hidden(tmp_path)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    time.sleep(0.3)  # inside the gzip write
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 30
    assert tree(out) == before and hidden(tmp_path) == []


# ----------------------------------------------------------------------------- 5. messages
def test_a_corrupt_hdf5_chunk_names_the_file_and_box(tmp_path, capsys):
    a = np.random.default_rng(2).integers(0, 9, (16, 32, 32)).astype(np.uint32)
    src = tmp_path / "seg.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("labels", data=a, chunks=(8, 32, 32), compression="gzip")
        info = f["labels"].id.get_chunk_info(1)
    with open(src, "r+b") as fh:
        fh.seek(info.byte_offset + 16)
        fh.write(b"\xff" * 64)
    before = tree(src)
    assert relabel("components", f"{src}:labels", tmp_path / "out.zarr3") == 2
    msg = one_line_error(capsys)
    assert msg.startswith(f"{src}:labels: cannot read z 0:16, y 0:32, x 0:32 ("), msg
    assert msg.endswith("the file may be damaged")
    assert tree(src) == before and not (tmp_path / "out.zarr3").exists()


def test_symlink_loops_are_called_symlink_loops(labels, tmp_path, capsys):
    src, _ = labels
    for name in ("loop.zarr3", "loop.h5", "loop.npy"):
        (tmp_path / name).symlink_to(tmp_path / name)
    assert relabel("components", tmp_path / "loop.zarr3", tmp_path / "o.zarr3") == 2
    assert one_line_error(capsys) == f"{tmp_path / 'loop.zarr3'}: symlink loop (a link that leads back to itself) " \
        "(expected a zarr3/zarr/n5/precomputed directory)"
    for name in ("loop.h5:labels", "loop.npy"):
        assert relabel("components", tmp_path / name, tmp_path / "o.zarr3") == 2
        assert one_line_error(capsys) == f"{tmp_path / name.split(':')[0]}: symlink loop (a link that leads back to itself)"
    assert relabel("components", src, tmp_path / "loop.npy", "--overwrite") == 2
    assert one_line_error(capsys).startswith(f"{tmp_path / 'loop.npy'}: is a symlink loop; refusing to write through it")
    with pytest.raises(FileNotFoundError, match=r"loop.h5: symlink loop .*prepare snemi3d cannot read its input"):
        nj.datasets.prepare("snemi3d", tmp_path / "loop.h5", tmp_path / "root", progress=False)
    assert jax_main(["prepare", "snemi3d", str(tmp_path / "loop.zarr3"), str(tmp_path / "root")]) == 2
    assert "symlink loop" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["l.npy", "loop.h5", "loop.npy", "loop.zarr3"]


@pytest.mark.parametrize("values, reason", [
    (["-1", "8", "8"], "--voxel-size needs positive finite numbers (z y x nm); got -1 8 8"),
    (["nan", "8", "8"], "--voxel-size needs positive finite numbers (z y x nm); got nan 8 8"),
    (["0", "8", "8"], "--voxel-size needs positive finite numbers (z y x nm); got 0 8 8"),
    (["8", "8"], "--voxel-size needs 3 values (z y x nm); got 2"),
])
def test_voxel_size_is_validated(values, reason, labels, tmp_path, capsys):
    src, _ = labels
    assert relabel("components", src, tmp_path / "o.zarr3", "--voxel-size", *values) == 2
    assert one_line_error(capsys) == reason
    assert sorted(os.listdir(tmp_path)) == ["l.npy"]


def test_each_mode_has_its_own_help_and_options(capsys):
    helps = {}
    for mode in ("components", "instances", "union", "renumber"):
        with pytest.raises(SystemExit) as e:
            relabel_main([mode, "--help"])
        assert e.value.code == 0
        helps[mode] = capsys.readouterr().out
    assert len(set(helps.values())) == 4
    assert "--kind" in helps["union"] and all("--kind" not in helps[m] for m in ("components", "instances", "renumber"))
    assert "--interior" in helps["instances"] and "--interior" not in helps["components"]
    assert "--block-shape" not in helps["instances"] and "--block-shape" in helps["renumber"]
    assert "--connectivity" not in helps["union"] and all("--allow-missing" in h for h in helps.values())
    assert "boundary-separated instances" in helps["instances"]
    with pytest.raises(SystemExit) as e:
        relabel_main(["components", "a.npy", "b.npy", "--kind", "cremi3d"])
    assert e.value.code == 2 and "unrecognized arguments: --kind" in capsys.readouterr().err


def test_block_shape_for_union_and_renumber(labels, tmp_path, capsys):
    pytest.importorskip("dask")
    src, a = labels
    blocks = ["--block-shape", "8", "16", "16", "--scheduler", "synchronous"]
    assert relabel("renumber", src, tmp_path / "r.zarr3", *blocks) == 0
    np.testing.assert_array_equal(nj.Volume.open(tmp_path / "r.zarr3").read(), nj.ops.renumber(a)[0])
    assert f"ids out: {len(np.unique(a)) - 1}" in capsys.readouterr().out
    assert relabel("union", src, tmp_path / "u.zarr3", "--kind", "snemi3d", *blocks) == 0
    np.testing.assert_array_equal(nj.Volume.open(tmp_path / "u.zarr3").read(), nj.ops.union_semantic(a, "snemi3d"))
