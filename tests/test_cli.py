import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

import modelkit

from modelkit.cli import main

from conftest import REPO, ngram_recipe


def test_train_predict_evaluate_end_to_end(synthetic_splits, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(ngram_recipe(synthetic_splits, tmp_path / "run")))
    assert main(["train", str(recipe), "--set", "train.seed=1"]) == 0
    checkpoint = tmp_path / "run"
    assert "checkpoint:" in capsys.readouterr().out

    inputs = tmp_path / "inputs.jsonl"
    rows = [{"id": "a", "text": "你这个傻逼"}, {"id": "b", "text": None}, {"id": "c", "text": ""}]
    inputs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    output = tmp_path / "preds" / "out.jsonl"
    assert main(["predict", str(checkpoint), "--input", str(inputs), "--output", str(output)]) == 0
    written = list(modelkit.read_predictions(output))
    assert [r["id"] for r in written] == ["a", "b", "c"]
    assert "abuse" in written[0]["labels"] and len(written[0]["scores"]) == 11
    assert "error" in written[1] and "scores" not in written[1]
    assert written[2]["labels"] == []

    assert main(["evaluate", str(checkpoint), "--data", str(synthetic_splits["test"]),
                 "--output-dir", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    assert "macro-F1" in printed and "abuse" in printed
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["overall"]["macro_f1"] > 0.9
    assert set(report["categories"]["abuse"]) >= {"precision", "recall", "f1", "roc_auc", "ci", "threshold_table"}


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("data: {train: x.jsonl}\ntrain: {epochs: many}\n")
    assert main(["train", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: train.epochs: expected int" in err and "Traceback" not in err
    assert main(["evaluate", str(tmp_path / "nothing"), "--data", "x.jsonl"]) == 2
    assert "not a checkpoint directory" in capsys.readouterr().err


def test_console_script_and_wrapper_scripts(ngram_checkpoint, synthetic_splits, tmp_path):
    exe = Path(sys.executable).parent / "modelkit"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("modelkit ")
    output = tmp_path / "predictions"
    subprocess.run([sys.executable, str(REPO / "scripts" / "predict.py"), str(ngram_checkpoint),
                    "--input", str(synthetic_splits["test"]), "--output", str(output), "--format", "jsonl"],
                   check=True, capture_output=True)
    written = (output / "part-00000.jsonl").read_text().splitlines()
    assert len(written) == len(synthetic_splits["test"].read_text().splitlines())


def test_closed_pipe_ends_quietly():
    """`modelkit ... | head`: the reader is gone before modelkit writes; no traceback, the pipe status."""
    exe = Path(sys.executable).parent / "modelkit"
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run([str(exe), "recipes"], stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(writer)
    assert done.stderr == "" and done.returncode == 141
