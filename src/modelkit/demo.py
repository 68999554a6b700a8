"""``modelkit demo``: the whole path on synthetic bilingual data in about a minute."""

from __future__ import annotations

import json
from pathlib import Path

from .classifier import load
from .data.synthetic import write_synthetic_splits
from .evaluation.evaluate import evaluate, summary_text
from .training.api import train

EXAMPLES = ["你这个傻逼，滚", "今天天气不错，去公园走走", "pirated movie torrent, please share", "大师开光转运符，保平安"]


def run_demo(output_dir: Path) -> dict[str, Path]:
    output_dir = Path(output_dir)
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
    outputs = {"data": splits["train"].parent, "checkpoint": checkpoint, "report": report_dir / "report.html",
               "predictions": predictions_path, "train_log": checkpoint / "train_log.jsonl"}
    print("\noutputs:")
    for name, path in outputs.items():
        print(f"  {name:<12} {path}")
    return outputs
