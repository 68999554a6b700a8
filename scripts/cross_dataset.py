#!/usr/bin/env python
"""Cross-data-set check: a model trained on COLD, evaluated on other Chinese abuse data.

    SWSR comments          sexist (label 1) = abuse, not sexist = clean          (8,969 rows)
    ChineseHarm-Bench      谩骂引战 (abuse) vs 不违规 (no violation) rows only    (1,000 rows)

Without ``--checkpoint`` the COLD recipe is trained first. Several checkpoints may be given
(e.g. the cold.yaml, cold_distilled.yaml and cold_ensemble.yaml models) to compare them. The
TF-IDF + LR baseline (scripts/baselines.py) is fitted on COLD train with cold.yaml's decision
rule (threshold 0.5) and scored alike. Full reports go to --output-dir.

    python scripts/cross_dataset.py --data-root ../shared/data [--checkpoint runs/text-cold ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import TfidfLogisticRegression  # noqa: E402


def fit_baseline(root: Path) -> TfidfLogisticRegression:
    rows = [json.loads(line) for line in (root / "cold" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    return TfidfLogisticRegression(exclusive=False).fit([r["text"] for r in rows], np.array([[r["label"]] for r in rows]))


def baseline_row(model: TfidfLogisticRegression, texts: list[str], truth: np.ndarray) -> dict[str, float]:
    """The baseline's figures on one target, decided at 0.5 like cold.yaml."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

    scores = model.predict_proba(texts)[:, 0]
    predicted = scores >= 0.5
    precision, recall, f1, _ = precision_recall_fscore_support(truth, predicted, average="binary", zero_division=0)
    return {"n": len(texts), "accuracy": accuracy_score(truth, predicted), "precision": precision, "recall": recall,
            "f1": f1, "roc_auc": roc_auc_score(truth, scores)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--checkpoint", nargs="+", help="COLD checkpoints (default: train configs/text/cold.yaml)")
    parser.add_argument("--output-dir", help="write each report here (default: a temporary directory)")
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()

    import modelkit
    from modelkit.data.records import load_table

    scratch = tempfile.TemporaryDirectory(prefix="modelkit-cross-")
    checkpoints = args.checkpoint or [
        modelkit.train(REPO / "configs" / "text" / "cold.yaml", data_root=args.data_root,
                       overrides=[f"output_dir={scratch.name}/cold"])
    ]
    root = Path(args.data_root)
    harm = load_table(root / "chineseharm_bench" / "dev.jsonl").filter(lambda row: row["label"] in ("谩骂引战", "不违规"))
    targets = {
        "SWSR comments (sexist = abuse)": (root / "swsr" / "comments.jsonl", {"0": [], "1": ["abuse"]}),
        "ChineseHarm abuse vs no violation": (harm, {"谩骂引战": ["abuse"], "不违规": []}),
    }
    output = Path(args.output_dir or Path(scratch.name) / "reports")
    print("| model | data | rows | accuracy | precision | recall | F1 | ROC-AUC |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    baseline = fit_baseline(root)
    for name, (data, label_map) in targets.items():
        table = load_table(data) if isinstance(data, Path) else data
        truth = np.array([bool(label_map[str(label)]) for label in table["label"]])
        m = baseline_row(baseline, list(table["text"]), truth)
        print(f"| TF-IDF + LR | {name} | {m['n']} | {m['accuracy']:.4f} | {m['precision']:.4f} | {m['recall']:.4f} "
              f"| {m['f1']:.4f} | {m['roc_auc']:.4f} |", flush=True)
    for checkpoint in checkpoints:
        for t, (name, (data, label_map)) in enumerate(targets.items()):
            report = modelkit.evaluate(
                checkpoint, data, output_dir=output / Path(checkpoint).name / f"target-{t}",
                bootstrap_resamples=args.bootstrap, input_field="text", label_field="label", label_map=label_map,
            )
            m = report["categories"]["abuse"]
            print(f"| {Path(checkpoint).name} | {name} | {report['overall']['n']} | {report['overall']['accuracy']:.4f} "
                  f"| {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['roc_auc']:.4f} |", flush=True)
    print(f"\nreports: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
