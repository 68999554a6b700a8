"""The documentation cannot rot: the site builds with --strict (broken links and references fail),
the API reference covers every public name (each with a docstring), and every Python block of the
docs that runs in seconds is run. A block that needs trained checkpoints or ../shared data says so
in a comment on the line before it: ``<!-- not run: why -->``."""

import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import modelkit
from conftest import REPO

DOCS = REPO / "docs"
_BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.S)


def test_site_builds_strict(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    result = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=REPO,
                            capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    site = tmp_path / "site"
    assert "modelkit predict" in (site / "cli" / "index.html").read_text()  # generated from the parser
    for notebook in ("quickstart", "evaluation", "images_and_video", "moderation"):
        page = (site / "notebooks" / notebook / "index.html").read_text()
        assert "jp-OutputArea" in page or "output_area" in page, notebook  # rendered with its outputs
    assert "Trainable multi-label" in (site / "index.html").read_text()  # the README is the front page


def _documented() -> set[str]:
    return {match for page in (DOCS / "api").glob("*.md")
            for match in re.findall(r"^::: ([\w.]+)$", page.read_text(encoding="utf-8"), re.M)}


def test_api_reference_covers_every_public_name():
    documented = _documented()
    wanted = [f"modelkit.{module}.{name}" for name, module in modelkit._EXPORTS.items()]
    for package in ("modelkit.image", "modelkit.video", "modelkit.accounts"):
        for name in importlib.import_module(package).__all__:
            found = [path for path in documented if path.startswith(package + ".") and path.endswith("." + name)]
            assert found, f"{package}.{name} is not in docs/api"
            wanted += found
    missing = [path for path in wanted if path not in documented]
    assert not missing, f"not in docs/api: {missing}"
    undocumented = []
    for path in wanted:
        module, name = path.rsplit(".", 1)
        if not inspect.getdoc(getattr(importlib.import_module(module), name)):
            undocumented.append(path)
    assert not undocumented, f"public names without a docstring: {undocumented}"


def _blocks():
    for page in [REPO / "README.md", *sorted(DOCS.glob("*.md"))]:
        for number, match in enumerate(_BLOCK.finditer(page.read_text(encoding="utf-8"))):
            skip = re.match(r"<!-- not run: (.+) -->", match["before"].strip())
            yield pytest.param(match["code"], id=f"{page.name}-{number}",
                               marks=[pytest.mark.skip(reason=skip[1])] if skip else [])


@pytest.mark.parametrize("code", list(_blocks()))
def test_python_blocks_of_the_docs_run(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<docs>", "exec"), {"__name__": "__docs__"})
