#!/usr/bin/env python
"""Evasion benchmark: recall on disguised offensive text, with and without the defences.

Trains one COLD model per variant (COLD train, dev for early stopping), from
configs/text/cold_evasion.yaml with its defences switched on or off:

    plain            no evasion normaliser, no pinyin features, no augmentation (= cold.yaml)
    augment          training-time attacks only
    normaliser       evasion normaliser + pinyin features
    normaliser+aug   both (= cold_evasion.yaml)
    ensemble         three normaliser+aug models with different training seeds, logits averaged
                     (= cold_evasion_ensemble.yaml)

then rewrites every offensive row of COLD dev with each attack of modelkit.data.augment (and all
of them chained) and prints recall on clean vs attacked text and their ratio. Target (issue 4):
with the defences, attacked recall >= 0.95 x clean recall under every attack.

    python scripts/benchmark_evasion.py --data-root ../shared/data [--output results.json]
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
RECIPE = REPO / "configs" / "text" / "cold_evasion.yaml"
TARGET = 0.95
NORMALISER_OFF = [
    "model.normalizer.traditional_to_simplified=false", "model.normalizer.fold_homoglyphs=false",
    "model.normalizer.strip_separators=false", "model.normalizer.max_repeat=0", "model.normalizer.emoji=keep",
    "model.features.pinyin=false",
]
ENSEMBLE = REPO / "configs" / "text" / "cold_evasion_ensemble.yaml"
# variant -> (recipe, --set overrides)
VARIANTS = {
    "plain": (RECIPE, [*NORMALISER_OFF, "augment.probability=0"]),
    "augment": (RECIPE, NORMALISER_OFF),
    "normaliser": (RECIPE, ["augment.probability=0"]),
    "normaliser+aug": (RECIPE, []),
    "ensemble": (ENSEMBLE, []),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="also write the figures as JSON here")
    args = parser.parse_args()

    import modelkit
    from modelkit.data.augment import ATTACKS, apply_attack

    dev_rows = [json.loads(line) for line in (Path(args.data_root) / "cold" / "dev.jsonl").open(encoding="utf-8")]
    offensive = [row["text"] for row in dev_rows if row["label"] == 1]
    attacks = [*ATTACKS, "all"]
    attacked = {
        name: [apply_attack(text, name, random.Random(f"{args.seed}:{name}:{i}")) for i, text in enumerate(offensive)]
        for name in attacks
    }
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="modelkit-evasion-") as scratch:
        for variant in args.variants:
            print(f"training {variant} ...", file=sys.stderr)
            recipe, overrides = VARIANTS[variant]
            checkpoint = modelkit.train(
                recipe, data_root=args.data_root, overrides=[*overrides, f"output_dir={scratch}/{variant}"]
            )
            classifier = modelkit.load(checkpoint, device="cpu")
            threshold = classifier.thresholds["abuse"]

            def recall(texts: list[str]) -> float:
                return float(np.mean(classifier.predict_proba(texts, batch_size=1024)[:, 0] >= threshold))

            dev_scores = classifier.predict_proba([row["text"] for row in dev_rows], batch_size=1024)[:, 0]
            labels = np.array([row["label"] for row in dev_rows])
            results[variant] = {"dev_accuracy": float(np.mean((dev_scores >= threshold) == labels)),
                                "clean": recall(offensive)}
            results[variant].update({name: recall(texts) for name, texts in attacked.items()})

    variants = args.variants
    print(f"\nCOLD dev: {len(offensive)} offensive rows, recall at each model's threshold (ratio to clean)\n")
    print("| attack | " + " | ".join(variants) + " |")
    print("|---|" + "---:|" * len(variants))
    print("| dev accuracy (clean, all rows) | " + " | ".join(f"{results[v]['dev_accuracy']:.4f}" for v in variants) + " |")
    print("| clean recall | " + " | ".join(f"{results[v]['clean']:.3f}" for v in variants) + " |")
    for name in attacks:
        cells = [f"{results[v][name]:.3f} ({results[v][name] / results[v]['clean']:.2f})" for v in variants]
        print(f"| {name} | " + " | ".join(cells) + " |")
    best = variants[-1]
    worst = min(results[best][name] / results[best]["clean"] for name in attacks)
    print(f"\n{best}: lowest attacked/clean recall ratio {worst:.3f} (target >= {TARGET}): "
          f"{'met' if worst >= TARGET else 'NOT met'}")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
