import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

import modelkit

from conftest import REPO, ngram_recipe


def test_two_process_data_parallel_training(synthetic_splits, tmp_path):
    """torchrun starts 2 CPU processes (gloo); both train one model on halves of each batch."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(ngram_recipe(synthetic_splits, tmp_path / "ddp")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", str(REPO / "scripts" / "train.py"), str(recipe)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()]
    start = [r for r in log if r["event"] == "start"]
    assert len(start) == 1 and start[0]["world_size"] == 2  # one log, written by rank 0 only
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["dev"]["n"] == len(synthetic_splits["dev"].read_text().splitlines())  # no duplicated rows
    assert metrics["test"]["macro_f1"] >= 0.9
    modelkit.load(tmp_path / "ddp").predict(["hello"])
