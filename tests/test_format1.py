"""Checkpoints written by modelkit 0.1 (format 1: preprocessing inside the model config) load,
predict exactly what 0.1 predicted, and `modelkit convert` rewrites them as format 2.

The fixtures are real 0.1 checkpoints: config.json, tokenizer and metrics files verbatim, and
the weights as JSON numbers (written back to the byte-identical safetensors file here).
"""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import modelkit
from modelkit.cli import main

from conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "format1"


def _materialise(name, directory):
    shutil.copytree(FIXTURES / name, directory, ignore=shutil.ignore_patterns("weights.json", "expected.json"))
    weights = json.loads((FIXTURES / name / "weights.json").read_text())
    save_file({k: torch.tensor(v, dtype=torch.float32) for k, v in weights.items()}, str(directory / "model.safetensors"),
              metadata={"format": "pt"})
    return json.loads((FIXTURES / name / "expected.json").read_text())


@pytest.mark.parametrize("name", ["ngram", "ensemble"])
def test_format1_checkpoint_loads_and_converts(name, tmp_path, capsys, caplog):
    old = tmp_path / "old"
    expected = _materialise(name, old)
    clf = modelkit.load(old, device="cpu")  # the hash check passes: the weights are the 0.1 file
    assert "modelkit convert" in caplog.text
    np.testing.assert_allclose(clf.predict_logits(expected["texts"]), np.array(expected["logits"], dtype=np.float32),
                               rtol=1e-5, atol=1e-6)

    assert main(["convert", str(old), "--output", str(tmp_path / "new")]) == 0
    assert "converted from format 1" in capsys.readouterr().out
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    assert config["format_version"] == 2 and "processor_config.json" in config["files"]
    assert "normalizer" not in json.dumps(config["model"])  # preprocessing now lives in the processor
    new = modelkit.load(tmp_path / "new", device="cpu")
    np.testing.assert_allclose(new.predict_logits(expected["texts"]), np.array(expected["logits"], dtype=np.float32),
                               rtol=1e-5, atol=1e-6)
    assert new.metrics == clf.metrics and new.thresholds == clf.thresholds
    # Converted in place too; format 2 stays format 2.
    assert main(["convert", str(old)]) == 0 and main(["convert", str(old)]) == 0
    assert "already format 2" in capsys.readouterr().out

