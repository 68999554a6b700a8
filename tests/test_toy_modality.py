"""A modality defined here, in the test file, goes through the whole path with no edit to modelkit.

Fixed-length numeric vectors: their own input check, processor and model, registered with
modelkit's public registries, then records -> train -> checkpoint -> load -> predict ->
evaluate report, all through the command line.
"""

import json
import math
from dataclasses import dataclass

import numpy as np
import torch
import yaml
from torch import nn

import modelkit
from modelkit.cli import main
from modelkit.models import MultiLabelHead

DIM = 8


def check_vector(value):
    if not isinstance(value, list) or len(value) != DIM:
        return f"expected a list of {DIM} numbers, got {type(value).__name__}"
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value):
        return "expected finite numbers"
    return None


modelkit.register_modality("vector8", check_vector)


@dataclass
class VectorConfig:
    scale: float = 1.0
    noise: float = 0.0  # train-mode augmentation: Gaussian noise on every coordinate


@modelkit.register_processor("toy_vector")
class VectorProcessor(modelkit.Processor):
    modality = "vector8"
    config_class = VectorConfig

    @property
    def augments(self):
        return self.config.noise > 0

    def decode_value(self, value, labels, rng):
        vector = np.asarray(value, dtype=np.float32) * self.config.scale
        if self.training and self.config.noise and rng is not None:
            vector = vector + np.array([rng.gauss(0, self.config.noise) for _ in vector], dtype=np.float32)
        return vector

    def collate(self, items):
        return {"features": torch.from_numpy(np.stack(items))}


@dataclass
class MLPConfig:
    hidden: int = 16


@modelkit.register_model("toy_mlp")
class VectorMLP(modelkit.ModerationModel):
    config_class = MLPConfig
    default_processor = "toy_vector"

    def __init__(self, config, num_labels):
        super().__init__(config, num_labels)
        self.body = nn.Sequential(nn.Linear(DIM, config.hidden), nn.ReLU())
        self.head = MultiLabelHead(config.hidden, num_labels)

    def forward(self, features):
        return self.head(self.body(features))


def _rows(n, seed):
    """abuse when x0 > 0, violence when x1 > 0: a separable multi-label task."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x = rng.normal(size=DIM).round(4)
        labels = [c for c, v in (("abuse", x[0]), ("violence", x[1])) if v > 0.2]
        rows.append({"id": f"v{seed}-{i}", "features": x.tolist(), "labels": labels})
    return rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_toy_modality_through_the_cli(tmp_path, capsys):
    splits = {name: _write(tmp_path / f"{name}.jsonl", _rows(n, seed))
              for name, n, seed in (("train", 600, 0), ("dev", 150, 1), ("test", 150, 2))}
    recipe = tmp_path / "vectors.yaml"
    recipe.write_text(yaml.safe_dump({
        "output_dir": str(tmp_path / "run"),
        "categories": ["abuse", "violence"],
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "inputs": {"vector8": "features"}},
        "model": {"name": "toy_mlp", "hidden": 16},
        "processor": {"noise": 0.05},
        "train": {"epochs": 20, "batch_size": 32, "learning_rate": 0.01, "consistency": 0.5},
    }))
    assert main(["train", str(recipe)]) == 0
    checkpoint = tmp_path / "run"
    assert json.loads((checkpoint / "processor_config.json").read_text()) == {"name": "toy_vector", "scale": 1.0,
                                                                               "noise": 0.05}

    inputs = _write(tmp_path / "inputs.jsonl", [
        {"id": "a", "features": [2.0, -2.0] + [0.0] * (DIM - 2)},
        {"id": "b", "features": [1.0, 2.0]},  # wrong length: an error record, not a crash
        {"id": "c", "features": [-2.0, 2.0] + [0.0] * (DIM - 2)},
    ])
    output = tmp_path / "predictions.jsonl"
    assert main(["predict", str(checkpoint), "--input", str(inputs), "--output", str(output)]) == 0
    written = list(modelkit.read_predictions(output))
    assert written[0]["labels"] == ["abuse"] and written[2]["labels"] == ["violence"]
    assert written[1] == {"id": "b", "error": f"field 'features' (vector8 input): expected a list of {DIM} numbers, got list"}

    assert main(["evaluate", str(checkpoint), "--data", str(splits["test"]), "--output-dir", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["overall"]["macro_f1"] > 0.9, report["overall"]
    assert report["header"]["checkpoint"]["modality"] == "vector8"
    assert (tmp_path / "eval" / "report.html").is_file()

    clf = modelkit.load(checkpoint)
    assert clf.predict([{"vector8": [2.0] * DIM}])[0].labels == ["abuse", "violence"]  # a record with the field
    assert modelkit.load_processor(checkpoint).config.noise == 0.05
