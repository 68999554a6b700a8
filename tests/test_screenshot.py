"""Headless-Chromium screenshots of a self-contained report (modelkit.evaluation.screenshot)."""

from __future__ import annotations

import base64
import io
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelkit.evaluation.screenshot import find_chromium, screenshot_html

REPO = Path(__file__).resolve().parents[1]


def _plot_png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4, 3), dpi=100)
    axes.fill_between([0, 1, 2], [0, 1, 0.5], color="tab:blue")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


@pytest.fixture()
def loopback_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 and the paths it was asked for, to prove none were."""
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requested
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture()
def report(tmp_path: Path, loopback_server) -> Path:
    """A report with an embedded plot, a tall body, and an image and script that try the network."""
    url, _ = loopback_server
    plot = base64.b64encode(_plot_png()).decode("ascii")
    page = tmp_path / "report.html"
    page.write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>report</title></head>
<body style="margin:0;background:#fff">
<img id="plot" src="data:image/png;base64,{plot}" width="400" height="300">
<img src="{url}/image.png" width="1" height="1">
<div style="height:2000px"></div><p>end</p>
<script>
fetch("{url}/fetch").catch(() => {{}});
fetch("https://example.com/beacon").catch(() => {{}});
</script>
</body></html>
""", encoding="utf-8")
    return page


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def _plot_colours(path: Path) -> set[tuple[int, int, int]]:
    from PIL import Image

    with Image.open(path) as image:
        plot = image.convert("RGB").crop((0, 0, 400, 300))
        return {colour for _, colour in plot.getcolors(400 * 300)}


def test_full_page_screenshot_shows_the_plot_and_reaches_no_network(chromium, report, tmp_path,
                                                                    loopback_server):
    shot = screenshot_html(report, tmp_path / "shot.png", width=800)

    width, height = _png_size(shot)
    assert width == 800
    assert 2000 < height < 3000  # the whole page, not the window nor MAX_HEIGHT
    assert _plot_colours(shot) - {(255, 255, 255)}, "the plot's area is blank"
    assert loopback_server[1] == [], "the page reached the network"


def test_fixed_height_and_cli(chromium, report, tmp_path):
    out = tmp_path / "cli.png"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "screenshot_report.py"), str(report), str(out),
         "--width", "640", "--height", "480"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert _png_size(out) == (640, 480)
    assert _plot_colours(out) - {(255, 255, 255)}


def test_missing_browser_is_a_clear_error(report, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELKIT_CHROMIUM", str(tmp_path / "no-such-browser"))
    assert find_chromium() is None
    with pytest.raises(RuntimeError, match="MODELKIT_CHROMIUM"):
        screenshot_html(report, tmp_path / "shot.png")
