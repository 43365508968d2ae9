"""A headless Chromium for screenshots: of a Neuroglancer viewer, or of an HTML page.

No WebDriver is needed: :class:`HeadlessBrowser` starts ``chromium --headless=new URL`` (a
throwaway profile, software WebGL through SwiftShader, bound to nothing), the page connects to
the Neuroglancer server of this process, and :func:`capture` asks the viewer for a screenshot
(Neuroglancer's own screenshot request: the client waits until the visible chunks are loaded,
then sends the PNG and its state back). :func:`page_screenshot` renders a file with
``chromium --screenshot``. The browser is ``$NEURONS_JAX_BROWSER`` or the first of
``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH`` (Debian: ``apt-get install
chromium``); :func:`find_browser` returns None when there is none.

Example:
    >>> find_browser() is None or find_browser().endswith(("chromium", "chromium-browser", "chrome"))  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

ENV_BROWSER = "NEURONS_JAX_BROWSER"
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--hide-scrollbars", "--mute-audio")
NO_BROWSER = ("no headless browser found: install Chromium (Debian: apt-get install chromium) or set "
              f"${ENV_BROWSER} to a Chromium/Chrome binary")


def find_browser() -> str | None:
    """The Chromium/Chrome binary to use, or None."""
    given = os.environ.get(ENV_BROWSER, "").strip()
    if given:
        return shutil.which(given) or (given if os.access(given, os.X_OK) else None)
    return next((p for p in map(shutil.which, NAMES) if p), None)


def require_browser() -> str:
    path = find_browser()
    if path is None:
        raise FileNotFoundError(NO_BROWSER)
    return path


class HeadlessBrowser:
    """``with HeadlessBrowser(url, size):`` a headless Chromium showing ``url``."""

    def __init__(self, url: str, size: tuple[int, int] = (1024, 768), browser: str | None = None):
        self.url, self.size = url, (int(size[0]), int(size[1]))
        self.binary = browser or require_browser()
        self.process: subprocess.Popen | None = None
        self._profile: str | None = None

    def __enter__(self) -> HeadlessBrowser:
        self._profile = tempfile.mkdtemp(prefix="nj_chromium_")
        args = [self.binary, *FLAGS, f"--user-data-dir={self._profile}",
                f"--window-size={self.size[0]},{self.size[1]}", self.url]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        return self

    def __exit__(self, *exc) -> None:
        p = self.process
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)  # the browser and its helper processes
            except ProcessLookupError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)


def capture(viewer, size: tuple[int, int] = (1024, 768), timeout: float = 120.0) -> Any:
    """A Neuroglancer screenshot reply (``.screenshot.image`` PNG bytes, ``.viewer_state``) from
    the browser connected to ``viewer``; a TimeoutError when none comes within ``timeout`` s."""
    prior = viewer.config_state.state
    with viewer.config_state.txn() as s:
        s.show_ui_controls = False
        s.show_panel_borders = False
        s.viewer_size = [int(size[0]), int(size[1])]
    done, reply = threading.Event(), []

    def handler(r):
        reply.append(r)
        done.set()

    try:
        viewer.async_screenshot(handler)
        if not done.wait(timeout):
            raise TimeoutError(f"the browser sent no screenshot within {timeout:g} s (is WebGL available "
                               f"to it? the viewer is at {viewer.get_viewer_url()})")
    finally:
        viewer.config_state.set_state(prior)
    return reply[0]


def screenshot(viewer, path: str | os.PathLike, size: tuple[int, int] = (1024, 768),
               timeout: float = 120.0, browser: str | None = None) -> tuple[Path, Any]:
    """Open ``viewer`` in a headless browser, write its screenshot to ``path`` (PNG, through a
    temporary name); (path, the browser's viewer state)."""
    from ..safeio import temp_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with HeadlessBrowser(viewer.get_viewer_url(), size, browser):
        reply = capture(viewer, size, timeout)
    tmp = temp_path(path)
    tmp.write_bytes(reply.screenshot.image)
    os.replace(tmp, path)
    return path, reply.viewer_state


def page_screenshot(page: str | os.PathLike, path: str | os.PathLike, size: tuple[int, int] = (1400, 1800),
                    timeout: float = 120.0, browser: str | None = None) -> Path:
    """Render a local HTML file (``report.html``) to a PNG with ``chromium --screenshot``."""
    binary = browser or require_browser()
    page, path = Path(page).resolve(), Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nj_chromium_") as profile:
        args = [binary, *FLAGS, "--disable-gpu", f"--user-data-dir={profile}",
                f"--window-size={int(size[0])},{int(size[1])}", f"--screenshot={path}", page.as_uri()]
        r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 or not path.is_file():
        raise OSError(f"{binary}: could not render {page} to {path} (exit {r.returncode}): "
                      f"{r.stderr.strip().splitlines()[-1:] or ''}")
    return path
