"""Screenshots of a self-contained HTML report in headless Chromium, with the network shut off.

The browser is Debian's ``chromium`` (``apt-get install chromium``), ``chromium-browser``,
``google-chrome``, or whatever executable the ``MODELKIT_CHROMIUM`` environment variable names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

# Longer captures get slow and can exceed what the compositor will draw in one frame.
MAX_HEIGHT = 16384

# How long (ms of virtual time) the page's own scripts may run before the capture.
_VIRTUAL_TIME_BUDGET_MS = 5000

_COMMON_FLAGS = (
    "--headless=new",
    "--disable-gpu",
    # Chromium refuses to start as root (as CI runs) with its sandbox on.
    "--no-sandbox",
    "--hide-scrollbars",
    "--no-first-run",
    "--no-default-browser-check",
    # Without these Chromium phones home at start-up, which a closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Every http(s)/ws request, loopback included, goes to a proxy on the discard port, where
    # nothing listens, so a report loads nothing from the network; file: and data: still load.
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    f"--virtual-time-budget={_VIRTUAL_TIME_BUDGET_MS}",
)

# Loads the report in an iframe of the capture's width and writes its full height, and how many
# of its images decoded, into the DOM, which --dump-dom then prints: the --screenshot flag only
# captures the window, and a screenshot alone cannot tell a missing plot from a blank one.
_MEASURE_PAGE = """<!doctype html><html><body style="margin:0">
<iframe id="report" style="width:{width}px;height:100px;border:0"></iframe><pre id="height"></pre>
<script>
const frame = document.getElementById("report");
frame.onload = () => {{
  const doc = frame.contentDocument;
  const images = Array.from(doc.images);
  const loaded = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.getElementById("height").textContent =
    "height=" + Math.max(doc.documentElement.scrollHeight, doc.body ? doc.body.scrollHeight : 0) +
    " images=" + loaded + "/" + images.length;
}};
frame.src = {url};
</script></body></html>
"""
_MEASURED = re.compile(r"height=(\d+) images=(\d+)/(\d+)")


def find_chromium() -> str | None:
    """The Chromium executable to use, or None where there is none.

    ``MODELKIT_CHROMIUM``, when set, is the only candidate, so that a wrong value is reported
    rather than silently replaced by another browser on PATH.
    """
    override = os.environ.get("MODELKIT_CHROMIUM")
    if override:
        return shutil.which(override)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _require_chromium() -> str:
    browser = find_chromium()
    if browser:
        return browser
    override = os.environ.get("MODELKIT_CHROMIUM")
    if override:
        raise RuntimeError(f"MODELKIT_CHROMIUM={override!r} is not an executable")
    raise RuntimeError(
        f"no headless browser found: none of {', '.join(CHROMIUM_NAMES)} is on PATH; "
        "install Debian's chromium (apt-get install chromium) or set MODELKIT_CHROMIUM"
    )


def _run_chromium(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    # A fresh profile per run: no first-run state, and no lock held by another Chromium.
    with tempfile.TemporaryDirectory(prefix="modelkit-chromium-") as profile:
        command = [browser, *_COMMON_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(command, check=False, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"{browser} did not finish within {timeout} s") from error


def _failure(browser: str, result: subprocess.CompletedProcess, what: str) -> RuntimeError:
    stderr = "\n".join(result.stderr.strip().splitlines()[-10:])
    return RuntimeError(f"{browser} failed to {what} (exit code {result.returncode}):\n{stderr}")


def _measure(browser: str, url: str, width: int, timeout: float) -> tuple[int, int, int]:
    """(page height, images decoded, images) of ``url`` laid out ``width`` pixels wide."""
    with tempfile.TemporaryDirectory(prefix="modelkit-measure-") as folder:
        page = Path(folder) / "measure.html"
        page.write_text(_MEASURE_PAGE.format(width=width, url=json.dumps(url)), encoding="utf-8")
        # The measuring page may read the report's document only when file: pages share access.
        result = _run_chromium(browser, ["--allow-file-access-from-files",
                                         f"--window-size={width},100", "--dump-dom",
                                         page.as_uri()], timeout)
    measured = _MEASURED.search(result.stdout)
    if result.returncode != 0 or not measured:
        raise _failure(browser, result, f"measure {url}")
    height, loaded, total = map(int, measured.groups())
    return height, loaded, total


def rendered_images(html_path: str | os.PathLike, width: int = 1280, timeout: float = 60) -> tuple[int, int]:
    """How many of the page's images Chromium decoded, and how many there are (no network)."""
    source = Path(html_path).resolve()
    if not source.is_file():
        raise FileNotFoundError(source)
    _, loaded, total = _measure(_require_chromium(), source.as_uri(), width, timeout)
    return loaded, total


def screenshot_html(html_path: str | os.PathLike, png_path: str | os.PathLike, width: int = 1280,
                    height: int | None = None, timeout: float = 60) -> Path:
    """Render ``html_path`` in headless Chromium, without network access, into ``png_path``.

    ``height=None`` captures the whole page (up to ``MAX_HEIGHT`` pixels); a number captures
    that many pixels from the top. ``timeout`` bounds each Chromium run, in seconds.
    Raises RuntimeError when no browser is found or it fails.
    """
    source = Path(html_path).resolve()
    if not source.is_file():
        raise FileNotFoundError(source)
    target = Path(png_path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    # An old PNG left in place would hide a run that wrote nothing.
    target.unlink(missing_ok=True)
    browser = _require_chromium()
    if height is None:
        height = min(max(_measure(browser, source.as_uri(), width, timeout)[0], 1), MAX_HEIGHT)
    result = _run_chromium(browser, [f"--window-size={width},{height}", f"--screenshot={target}",
                                     source.as_uri()], timeout)
    if result.returncode != 0 or not target.is_file():
        raise _failure(browser, result, f"take a screenshot of {source}")
    return target
