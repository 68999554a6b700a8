#!/usr/bin/env python
"""End-to-end check of `modelkit bootstrap` on ChineseHarm-Bench's gambling (博彩) rows.

The corpus is ChineseHarm-Bench's shared half (3,000 rows, 499 gambling) with its labels hidden
from the bootstrap. A person is simulated: 10 seed examples (the first 10 gambling rows by
id) and answers to the questions of each round, both taken from the data set's labels; the
100 questions are asked in --rounds rounds (default 4 x 25), each from the model retrained on
the answers so far. Prints F1 against the true labels of the rules alone and of every round's
model, on all rows and on the rows no person labelled. Target (issue 4): F1 >= 0.85 at the end.

    python scripts/bootstrap_gambling.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "bootstrap" / "gambling.yaml"
TARGET = 0.85


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--config", default=str(CONFIG), help="bootstrap recipe (default: %(default)s)")
    parser.add_argument("--output-dir", help="keep the rounds here (default: a temporary directory)")
    parser.add_argument("--rounds", type=int, default=4, help="question rounds after round 0")
    parser.add_argument("--budget", type=int, default=100, help="questions answered in all, split over the rounds")
    args = parser.parse_args()

    import modelkit
    from modelkit.text.bootstrap import bootstrap, load_bootstrap_config, rule_votes

    corpus = Path(args.data_root) / "chineseharm_bench" / "dev.jsonl"
    rows = [json.loads(line) for line in corpus.open(encoding="utf-8")]
    truth = np.array([row["label"] == "博彩" for row in rows])
    texts = [row["text"] for row in rows]
    seed_ids = sorted(row["id"] for row in rows if row["label"] == "博彩")[:10]

    scratch = tempfile.TemporaryDirectory(prefix="modelkit-bootstrap-")
    output_dir = args.output_dir or scratch.name
    config = load_bootstrap_config(args.config, data_root=args.data_root,
                                   overrides=[f"seed_ids={json.dumps(seed_ids)}", f"output_dir={output_dir}",
                                              f"query_size={args.budget // max(args.rounds, 1)}"])
    figures = {}

    def score(name: str, predicted: np.ndarray, asked: set) -> None:
        unseen = np.array([str(row["id"]) not in asked for row in rows])
        figures[name] = {
            "precision": precision_score(truth, predicted), "recall": recall_score(truth, predicted),
            "f1": f1_score(truth, predicted), "f1_unlabelled_rows": f1_score(truth[unseen], predicted[unseen]),
        }

    def predictions(summary: dict) -> np.ndarray:
        classifier = modelkit.load(summary["checkpoint"], device="cpu")
        return classifier.decide(classifier.predict_proba(texts, batch_size=512))[:, 0]

    score("rules only", rule_votes(texts, config.rules).sum(axis=1) >= config.min_votes, set())
    by_id = {str(row["id"]): row for row in rows}
    answer_files: list[Path] = []
    asked = set(map(str, seed_ids))
    for round_number in range(args.rounds + 1):
        summary = bootstrap(config, labels=answer_files)
        answered = len(asked) - len(seed_ids)
        stage = "round 0: rules + 10 seeds" if not round_number else f"round {round_number}: + {answered} answers"
        score(stage, predictions(summary), asked)
        if round_number == args.rounds:
            break
        # The simulated person answers this round's questions from the data set's labels.
        questions = [json.loads(line) for line in Path(summary["questions"]).open(encoding="utf-8")]
        answers = Path(output_dir) / f"answers-round-{round_number}.jsonl"
        answers.write_text("".join(
            json.dumps({"id": q["id"], "label": int(by_id[q["id"]]["label"] == "博彩")}) + "\n" for q in questions
        ), encoding="utf-8")
        answer_files.append(answers)
        asked |= {str(q["id"]) for q in questions}

    print(f"ChineseHarm-Bench shared half: {len(rows)} rows, {int(truth.sum())} gambling\n")
    print("| stage | precision | recall | F1 (all rows) | F1 (rows nobody labelled) |")
    print("|---|---:|---:|---:|---:|")
    for name, f in figures.items():
        print(f"| {name} | {f['precision']:.3f} | {f['recall']:.3f} | {f['f1']:.3f} | {f['f1_unlabelled_rows']:.3f} |")
    final = list(figures.values())[-1]["f1"]
    print(f"\nfinal F1 {final:.3f} (target >= {TARGET}): {'met' if final >= TARGET else 'NOT met'}")
    return 0 if final >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
