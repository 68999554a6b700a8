"""The wheel a user pip-installs: it carries the recipes (configs/ as modelkit/configs), and from a
folder outside the repository, with the editable install out of sight, `modelkit recipes` lists
them and `modelkit demo --quick` runs."""

import shutil
import subprocess
import sys
import sysconfig

import pytest

from conftest import REPO


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_wheel_ships_recipes_and_runs_outside_the_repository(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    shutil.copytree(REPO / "configs", source / "configs")
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
          "-w", str(tmp_path / "dist")])
    wheel = next((tmp_path / "dist").glob("modelkit-*.whl"))
    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)])

    # python -S: no .pth files, so the editable install's path hook is not there; the wheel's
    # modelkit comes first and the dependencies come from this environment's site-packages.
    env = {"PYTHONPATH": f"{site}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path), "MODELKIT_OCR_CACHE": str(tmp_path / "ocr")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    python = [sys.executable, "-S"]
    where = _run([*python, "-c", "import modelkit, modelkit.recipes as r; print(modelkit.__file__); "
                  "print(r.find_recipe('text/cold'))"], env=env, cwd=elsewhere).splitlines()
    assert where[0].startswith(str(site)) and where[1] == str(site / "modelkit" / "configs" / "text" / "cold.yaml")

    listed = _run([*python, "-m", "modelkit.cli", "recipes"], env=env, cwd=elsewhere)
    assert "text/cold " in listed and "video/synthetic " in listed and str(site) in listed

    _run([*python, "-m", "modelkit.cli", "demo", "--quick", "--output-dir", "demo"], env=env, cwd=elsewhere)
    for part in ("text", "image", "video"):
        assert (elsewhere / "demo" / part / "eval" / "report.html").is_file()
    # The simulated week ran on the shipped escalation ladder (a package resource).
    assert (elsewhere / "demo" / "week" / "day-1" / "queue.html").is_file()
