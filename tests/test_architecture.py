"""The architecture rule, checked: the core never imports a modality package (pyproject.toml's
import-linter contracts), and the built-in modality arrives through the plugin entry point."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_text_modality_is_found_through_the_entry_point():
    # A fresh interpreter that never imports modelkit.text by name still finds its models.
    code = ("import sys, modelkit; assert 'modelkit.text' not in sys.modules; "
            "print(modelkit.list_models(), 'modelkit.text' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip() == "['ensemble', 'ngram', 'transformer'] True"
