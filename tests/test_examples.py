"""The short example scripts run as a user runs them and print what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    r = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_mix_and_look(tmp_path):
    out = run("01_mix_and_look.py", str(tmp_path))
    lines = [ln for ln in out.splitlines() if ln.startswith("sample ")]
    assert len(lines) == 6
    assert sum("snemi3d" in ln for ln in lines) == 2 and sum("mitoem2" in ln for ln in lines) == 4
    Image.open(tmp_path / "batch.png").load()


def test_relabel_on_pinky(shared_data):
    out = run("02_relabel.py", str(shared_data / "pinky40_seg_256.npz"))
    # the data README: 223 labels, 362 6-connected components
    assert "223 ids -> 362 6-connected components" in out


def test_readme_quick_start_runs(tmp_path):
    import re

    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", readme, re.S).group(1)
    assert "zip(range(100), loader)" in code and '"ws"' in code
    code = code.replace("zip(range(100), loader)", "zip(range(2), loader)").replace('"ws"', repr(str(tmp_path / "ws")))
    code += "\nprint('quick start:', float(loss), state['grain'])\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "quick start:" in r.stdout and "'next_index': 2" in r.stdout


def test_explore_notebook_runs_as_a_script(tmp_path):
    """examples/03_explore.py (Jupyter percent format) walks the four sample datasets."""
    text = (ROOT / "examples" / "03_explore.py").read_text()
    assert text.startswith("# %% [markdown]") and text.count("# %%\n") >= 5
    out = run("03_explore.py", str(tmp_path))
    for kind in ("snemi3d", "cremi3d", "microns", "mitoem2"):
        assert f"{kind}  z/x = " in out or f"{kind} z/x = " in out
    assert "Beta   1 volume(s)" in out and "Mossy  1 volume(s)" in out
    assert (tmp_path / "explore" / "report.html").is_file() and (tmp_path / "explore" / "stats.json").is_file()
