#!/usr/bin/env python
"""Can benign padding hide a violation? COLD's offensive dev rows, hidden in benign text.

Trains configs/text/cold.yaml (or takes --checkpoint) and scores the first --rows offensive rows
of COLD dev clean and with about 4,200 characters of padding before them, after them, or half on
each side.
The padding is other COLD dev rows the model itself scores below 0.2 (clearly benign to it).
The last column is the share of padded *benign* rows flagged: windows trade some false
positives on long benign texts for recall. Three processors over the same model weights:

    windows + clauses  the checkpoint's processor (text_ngram: windows of 256, 128 and 64
                       characters, and runs of 1 to 3 clauses)
    windows only       the same without the clause runs (clause_windows: 0)
    one bag            modelkit 0.1's preprocessing: one bag of n-grams over the first 4,000 characters

The rows are glued together as written (no punctuation added between them), so a clause run
isolates a violation only where its row or its neighbour ends in punctuation.

    python scripts/benchmark_long_text.py --data-root ../shared/data [--checkpoint runs/text-cold] [--rows 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--checkpoint", help="a COLD checkpoint (default: train configs/text/cold.yaml)")
    parser.add_argument("--padding", type=int, default=4200, help="characters of benign padding")
    parser.add_argument("--rows", type=int, default=1000, help="offensive (and benign) dev rows to pad, the first N")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import modelkit
    from modelkit.config import to_dict

    with tempfile.TemporaryDirectory(prefix="modelkit-long-") as scratch:
        checkpoint = args.checkpoint or modelkit.train(REPO / "configs" / "text" / "cold.yaml", data_root=args.data_root,
                                                       overrides=[f"output_dir={scratch}/cold"])
        clf = modelkit.load(checkpoint, device="cpu")
    rows = [json.loads(line) for line in (Path(args.data_root) / "cold" / "dev.jsonl").open(encoding="utf-8")]
    benign = [r["text"] for r in rows if r["label"] == 0]
    quiet = [t for t, s in zip(benign, clf.predict_proba(benign, batch_size=1024)[:, 0]) if s < 0.2]
    offensive = [r["text"] for r in rows if r["label"] == 1][: args.rows]
    benign = benign[: args.rows]
    rng = random.Random(args.seed)

    def padding(size: int) -> str:
        text = ""
        while len(text) < size:
            text += rng.choice(quiet)
        return text

    half = args.padding // 2
    cases = {
        "clean": offensive,
        "before": [padding(args.padding) + t for t in offensive],
        "after": [t + padding(args.padding) for t in offensive],
        "both": [padding(half) + t + padding(half) for t in offensive],
        "benign": benign,
        "benign padded": [padding(args.padding) + t for t in benign],
    }

    def variant(**changes) -> modelkit.Classifier:
        config = {**to_dict(clf.processor.config), **changes}
        return modelkit.Classifier(clf.model, modelkit.create_processor("text_ngram", **config), clf.policy)

    one_bag_normalizer = {**to_dict(clf.processor.config.normalizer), "max_chars": 4000}
    variants = {"windows + clauses": clf, "windows only": variant(clause_windows=0),
                "one bag (0.1)": variant(window_chars=[], clause_windows=0, normalizer=one_bag_normalizer)}

    print(f"\nCOLD dev: the first {len(offensive)} offensive rows and {len(benign)} benign ones; padding {args.padding} characters of "
          f"{len(quiet)} rows the model scores < 0.2. Flagged share (ratio to clean recall).\n")
    print("| processor | clean recall | padding before | after | both sides | benign rows flagged: alone | padded |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, classifier in variants.items():
        flagged = {case: float(np.mean(classifier.decide(classifier.predict_proba(texts, batch_size=256))[:, 0]))
                   for case, texts in cases.items()}
        clean = flagged["clean"]
        cells = [f"{flagged[c]:.3f} ({flagged[c] / clean:.2f})" for c in ("before", "after", "both")]
        print(f"| {name} | {clean:.3f} | " + " | ".join(cells) + f" | {flagged['benign']:.3f} | {flagged['benign padded']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
