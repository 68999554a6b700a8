#!/usr/bin/env python
"""Cross-data-set check: a model trained on COLD, evaluated on other Chinese abuse data.

    SWSR comments          sexist (label 1) = abuse, not sexist = clean          (8,969 rows)
    ChineseHarm-Bench      谩骂引战 (abuse) vs 不违规 (no violation) rows only    (1,000 rows)

Without ``--checkpoint`` the COLD recipe is trained first. Several checkpoints may be given
(e.g. cold.yaml and cold_evasion.yaml models) to compare them. Full reports go to --output-dir.

    python scripts/cross_dataset.py --data-root ../shared/data [--checkpoint runs/text-cold ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
    for checkpoint in checkpoints:
        for t, (name, (data, label_map)) in enumerate(targets.items()):
            report = modelkit.evaluate(
                checkpoint, data, output_dir=output / Path(checkpoint).name / f"target-{t}",
                bootstrap_resamples=args.bootstrap, input_field="text", label_field="label", label_map=label_map,
            )
            m = report["categories"]["abuse"]
            print(f"| {Path(checkpoint).name} | {name} | {report['overall']['n']} | {report['overall']['accuracy']:.4f} "
                  f"| {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['roc_auc']:.4f} |")
    print(f"\nreports: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
