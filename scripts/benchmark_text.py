#!/usr/bin/env python
"""Text model benchmark on COLD: modelkit `ngram` vs a scikit-learn TF-IDF + LR pipeline.

Both are trained on COLD train and measured on COLD dev in the same run, on the same machine:
training time, dev accuracy, and predict throughput (texts/s, raw strings in, scores out,
best of --repeats passes). The scikit-learn pipeline is the reference from shared/data/README.md
(character 1-3-grams, min_df=2, sublinear tf, C=4).

    python scripts/benchmark_text.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def read_jsonl(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows], np.array([r["label"] for r in rows])


def best_throughput(predict, texts: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict(texts)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best


def run_sklearn(train_x, train_y, dev_x, dev_y, repeats: int) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True),
        LogisticRegression(C=4, max_iter=2000),
    )
    started = time.perf_counter()
    pipeline.fit(train_x, train_y)
    train_seconds = time.perf_counter() - started
    accuracy = float((pipeline.predict(dev_x) == dev_y).mean())
    return {"train_s": train_seconds, "dev_accuracy": accuracy,
            "texts_per_s": best_throughput(pipeline.predict_proba, dev_x, repeats)}


def run_modelkit(data_root: Path, output_dir: Path, dev_x, dev_y, repeats: int, overrides: list[str]) -> dict:
    import modelkit

    config = modelkit.load_run_config(REPO / "configs/text/cold.yaml", [f"output_dir={output_dir}", *overrides],
                                      data_root=data_root)
    started = time.perf_counter()
    checkpoint = modelkit.train(config)
    train_seconds = time.perf_counter() - started
    clf = modelkit.load(checkpoint, device="cpu")
    predict = lambda texts: clf.predict_proba(texts, batch_size=1024)  # noqa: E731
    accuracy = float(((predict(dev_x)[:, 0] >= clf.thresholds["abuse"]).astype(int) == dev_y).mean())
    return {"train_s": train_seconds, "dev_accuracy": accuracy, "texts_per_s": best_throughput(predict, dev_x, repeats)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--output-dir", default="runs/benchmark-cold")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], help="recipe override for the modelkit run")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    data_root = Path(args.data_root)
    train_x, train_y = read_jsonl(data_root / "cold/train.jsonl")
    dev_x, dev_y = read_jsonl(data_root / "cold/dev.jsonl")
    results = {
        "scikit-learn tfidf+LR": run_sklearn(train_x, train_y, dev_x, dev_y, args.repeats),
        "modelkit ngram": run_modelkit(data_root, Path(args.output_dir), dev_x, dev_y, args.repeats, args.set),
    }
    base, ours = results["scikit-learn tfidf+LR"], results["modelkit ngram"]
    print(f"\nCOLD train {len(train_x)} rows -> dev {len(dev_x)} rows, CPU threads: {os.cpu_count()}")
    print("| pipeline | train time (s) | dev accuracy | predict (texts/s) |")
    print("| --- | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['train_s']:.1f} | {r['dev_accuracy']:.4f} | {r['texts_per_s']:,.0f} |")
    print(f"| ratio modelkit / scikit-learn | {ours['train_s'] / base['train_s']:.2f}x | "
          f"{ours['dev_accuracy'] - base['dev_accuracy']:+.4f} | {ours['texts_per_s'] / base['texts_per_s']:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
