"""``modelkit demo``: the whole path on synthetic data, text (bilingual) and images, in a few minutes."""

from __future__ import annotations

import json
from pathlib import Path

from .classifier import load
from .data.synthetic import write_synthetic_image_splits, write_synthetic_splits
from .evaluation.evaluate import evaluate, summary_text
from .training.api import train

EXAMPLES = ["你这个傻逼，滚", "今天天气不错，去公园走走", "pirated movie torrent, please share", "大师开光转运符，保平安"]


def run_demo(output_dir: Path) -> dict[str, Path]:
    output_dir = Path(output_dir)
    outputs = _text_demo(output_dir / "text")
    outputs.update({f"image_{name}": path for name, path in _image_demo(output_dir / "image").items()})
    print("\noutputs:")
    for name, path in outputs.items():
        print(f"  {name:<18} {path}")
    return outputs


def _text_demo(output_dir: Path) -> dict[str, Path]:
    splits = write_synthetic_splits(output_dir / "data", seed=0)
    recipe = {
        "output_dir": str(output_dir / "model"),
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "label_field": "labels"},
        "model": {"name": "ngram", "embed_dim": 32},
        "processor": {"features": {"num_buckets": 1 << 18}},
        "train": {"epochs": 15, "batch_size": 16, "learning_rate": 0.01, "early_stopping_patience": 5, "log_every": 20},
    }
    checkpoint = train(recipe)
    report_dir = output_dir / "eval"
    report = evaluate(checkpoint, splits["test"], output_dir=report_dir, slice_by=["language"], bootstrap_resamples=200)
    print(summary_text(report))
    classifier = load(checkpoint)
    predictions_path = output_dir / "predictions.jsonl"
    with open(predictions_path, "w", encoding="utf-8") as handle:
        for text, prediction in zip(EXAMPLES, classifier.predict(EXAMPLES)):
            handle.write(json.dumps({"text": text, **prediction.to_dict()}, ensure_ascii=False) + "\n")
            print(f"{text!r:45} -> {prediction.labels or ['(clean)']}")
    return {"data": splits["train"].parent, "checkpoint": checkpoint, "report": report_dir / "report.html",
            "predictions": predictions_path, "train_log": checkpoint / "train_log.jsonl"}


def _image_demo(output_dir: Path) -> dict[str, Path]:
    """A small CNN learns synthetic picture categories (a motif per category) from scratch."""
    splits = write_synthetic_image_splits(output_dir / "data", seed=0, rows_per_category=60, clean_rows=200, size=48)
    recipe = {
        "output_dir": str(output_dir / "model"),
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "inputs": {"image": "image"}},
        "model": {"name": "image", "arch": "small_cnn", "dropout": 0.1},
        "processor": {"resize": 48, "crop": 48, "augment": {"hflip": 0.5}},
        "train": {"epochs": 12, "batch_size": 32, "learning_rate": 0.003, "tune_thresholds": True, "log_every": 20},
    }
    checkpoint = train(recipe)
    report_dir = output_dir / "eval"
    report = evaluate(checkpoint, splits["test"], output_dir=report_dir, bootstrap_resamples=200)
    print(summary_text(report))
    rows = [json.loads(line) for line in splits["test"].read_text(encoding="utf-8").splitlines()[:6]]
    paths = [str(splits["test"].parent / row["image"]) for row in rows]
    predictions_path = output_dir / "predictions.jsonl"
    with open(predictions_path, "w", encoding="utf-8") as handle:
        for row, path, prediction in zip(rows, paths, load(checkpoint).predict(paths)):
            handle.write(json.dumps({"image": path, **prediction.to_dict()}, ensure_ascii=False) + "\n")
            print(f"{row['image']:<22} true {row['labels'] or ['(clean)']!s:<28} -> {prediction.labels or ['(clean)']}")
    return {"checkpoint": checkpoint, "report": report_dir / "report.html", "predictions": predictions_path}
