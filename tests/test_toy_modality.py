"""A modality defined here, in the test file, goes through the whole path with no edit to modelkit.

Fixed-length numeric vectors: their own input check, processor and model, registered with
modelkit's public registries, then records -> train -> checkpoint -> load -> predict ->
evaluate report, all through the command line. The model scores each half of a vector (its
parts) and pools them; the processor places the halves and adds an output field of its own
(which half scored highest per category), and a report section of its own: both reach
predictions, engine shards (jsonl and parquet), ``read_predictions`` and the report.
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
from modelkit.evaluation.sections import ReportSection, register_report_section
from modelkit.models import MultiLabelHead

DIM = 8
HALF = DIM // 2


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

    output_fields = ("strongest_half",)

    def part_positions(self, item):
        return np.array([0, HALF])  # where each half starts

    def postprocess(self, positions, part_scores, thresholds, categories):
        return {"strongest_half": {c: int(positions[np.argmax(part_scores[:, j])]) for j, c in enumerate(categories)}}


def _halves_section(outputs, records):
    if "strongest_half" not in outputs.fields:
        return None
    counts = {c: {"0": 0, str(HALF): 0} for c in outputs.categories}
    for row in outputs.fields["strongest_half"]:
        for category, start in (row or {}).items():
            counts[category][str(start)] += 1
    return {"counts": counts}


register_report_section(ReportSection(
    "toy_halves", _halves_section,
    lambda section: [("heading", 2, "Strongest halves"),
                     ("table", ["category", "first half", "second half"],
                      [[c, str(n["0"]), str(n[str(HALF)])] for c, n in section["counts"].items()])]))


@dataclass
class MLPConfig:
    hidden: int = 16


@modelkit.register_model("toy_mlp")
class VectorMLP(modelkit.ModerationModel):
    config_class = MLPConfig
    default_processor = "toy_vector"

    def __init__(self, config, num_labels):
        super().__init__(config, num_labels)
        # A half and which half it is: the parts share one body.
        self.body = nn.Sequential(nn.Linear(HALF + 1, config.hidden), nn.ReLU())
        self.head = MultiLabelHead(config.hidden, num_labels)

    def part_logits(self, features):
        halves = features.reshape(-1, HALF)
        which = torch.arange(len(halves), device=features.device) % 2
        rows = torch.arange(len(features), device=features.device).repeat_interleave(2)
        return self.head(self.body(torch.cat([halves, which[:, None].to(halves.dtype)], dim=1))), rows

    def forward(self, features):
        return self.pool_parts(*self.part_logits(features))


def _rows(n, seed):
    """abuse when x0 > 0.2 (first half), violence when x5 > 0.2 (second half): a separable
    multi-label task."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x = rng.normal(size=DIM).round(4)
        labels = [c for c, v in (("abuse", x[0]), ("violence", x[HALF + 1])) if v > 0.2]
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
        {"id": "a", "features": [2.0, 0.0, 0.0, 0.0, 0.0, -2.0, 0.0, 0.0]},
        {"id": "b", "features": [1.0, 2.0]},  # wrong length: an error record, not a crash
        {"id": "c", "features": [-2.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0]},
    ])
    for output_format in ("jsonl", "parquet"):
        output = tmp_path / f"predictions-{output_format}"
        assert main(["predict", str(checkpoint), "--input", str(inputs), "--output", str(output),
                     "--format", output_format]) == 0
        written = list(modelkit.read_predictions(output))
        assert written[0]["labels"] == ["abuse"] and written[2]["labels"] == ["violence"]
        assert written[0]["strongest_half"]["abuse"] == 0 and written[2]["strongest_half"]["violence"] == HALF
        assert written[1] == {"id": "b",
                              "error": f"field 'features' (vector8 input): expected a list of {DIM} numbers, got list"}

    assert main(["evaluate", str(checkpoint), "--data", str(splits["test"]), "--output-dir", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["overall"]["macro_f1"] > 0.9, report["overall"]
    assert report["header"]["checkpoint"]["modality"] == "vector8"
    counts = report["toy_halves"]["counts"]
    assert sum(counts["abuse"].values()) == 150
    assert "<h2>Strongest halves</h2>" in (tmp_path / "eval" / "report.html").read_text()
    assert "## Strongest halves" in (tmp_path / "eval" / "report.md").read_text()

    clf = modelkit.load(checkpoint)
    prediction = clf.predict([{"vector8": [2.0, 0, 0, 0, 0, 2.0, 0, 0]}])[0]  # a record with the field
    assert prediction.labels == ["abuse", "violence"]
    assert prediction.strongest_half == {"abuse": 0, "violence": HALF}
    positions, part_scores = prediction.parts
    assert positions.tolist() == [0, HALF] and part_scores.shape == (2, 2)
    assert modelkit.load_processor(checkpoint).config.noise == 0.05
