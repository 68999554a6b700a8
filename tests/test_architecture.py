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


def test_modalities_are_found_through_the_entry_point():
    # A fresh interpreter that never imports modelkit.text or modelkit.image by name still finds
    # their models, processors and input checks.
    code = ("import sys, modelkit; from modelkit.processing import list_modalities, list_processors; "
            "assert 'modelkit.text' not in sys.modules and 'modelkit.image' not in sys.modules; "
            "print(modelkit.list_models(), list_processors(), list_modalities())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip() == (
        "['ensemble', 'exported_onnx', 'image', 'ngram', 'ocr_text', 'onnx', 'transformer', 'video'] "
        "['ensemble', 'image', 'image_ocr', 'text_ngram', 'text_tokenizer', 'video'] ['image', 'text', 'video']")
