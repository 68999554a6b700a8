#!/usr/bin/env python
"""Evasion benchmark: recall on disguised offensive text, with and without the defences.

Trains one COLD model per variant (COLD train, dev for early stopping) from configs/text/cold.yaml,
whose defences (the processor's defaults: evasion normaliser, pinyin channels; the recipe's
training-time attacks with consistency) are switched on or off:

    plain            no evasion normaliser, no pinyin features, no augmentation (cold.yaml before
                     the defences became the default)
    augment          training-time attacks only
    normaliser       evasion normaliser + pinyin features, no attacks
    letters          cold.yaml with the pinyin channel of letter n-grams (the default before syllables)
    defended         cold.yaml as shipped: everything on
    seeds            three defended models with different training seeds, logits averaged
                     (= cold_seeds.yaml)
    m3e              the m3e-small transformer with the normaliser and augmentation
                     (= cold_m3e.yaml, about 30 minutes)

then rewrites every offensive row of COLD dev with each attack of modelkit.text.augment (and all
of them chained) and prints recall on clean vs attacked text and their ratio, and the share of
benign rows flagged clean and under all attacks. Target: with the defences (defended, or the
last variant listed when it is not run), attacked recall >= 0.95 x clean recall under every
attack, at the clean dev accuracy of plain. With --train-seeds N every single-model variant is
trained N times and the figures are means, which single runs need: their ratio under the
chained attack varies by about +-0.03.

    python scripts/benchmark_evasion.py --data-root ../shared/data [--train-seeds 3] [--set KEY=VALUE] [--output results.json]
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
RECIPE = REPO / "configs" / "text" / "cold.yaml"
TARGET = 0.95
NORMALISER_OFF = [
    "processor.normalizer.traditional_to_simplified=false", "processor.normalizer.fold_homoglyphs=false",
    "processor.normalizer.strip_separators=false", "processor.normalizer.max_repeat=0",
    "processor.normalizer.emoji=keep", "processor.features.pinyin=false",
]
AUGMENT_OFF = ["processor.augment.probability=0", "train.consistency=0"]
ENSEMBLE = REPO / "configs" / "text" / "cold_seeds.yaml"
# variant -> (recipe, --set overrides)
VARIANTS = {
    "plain": (RECIPE, [*NORMALISER_OFF, *AUGMENT_OFF]),
    "augment": (RECIPE, NORMALISER_OFF),
    "normaliser": (RECIPE, AUGMENT_OFF),
    "letters": (RECIPE, ["processor.features.pinyin_units=letters"]),
    "defended": (RECIPE, []),
    "seeds": (ENSEMBLE, []),
    "m3e": (REPO / "configs" / "text" / "cold_m3e.yaml", []),
}


def _figures(classifier, dev_rows: list[dict], offensive: list[str], attacked: dict[str, list[str]],
             benign_attacked: list[str]) -> dict:
    """Clean dev accuracy, recall on the offensive rows clean and under each attack, and the
    share of benign rows flagged clean and under all attacks (a defence that flags anything
    disguised would show there)."""
    threshold = classifier.thresholds["abuse"]

    def flagged(texts: list[str]) -> float:
        return float(np.mean(classifier.predict_proba(texts, batch_size=1024)[:, 0] >= threshold))

    dev_scores = classifier.predict_proba([row["text"] for row in dev_rows], batch_size=1024)[:, 0]
    labels = np.array([row["label"] for row in dev_rows])
    return {"dev_accuracy": float(np.mean((dev_scores >= threshold) == labels)), "clean": flagged(offensive),
            **{name: flagged(texts) for name, texts in attacked.items()},
            "benign_clean": float(np.mean(dev_scores[labels == 0] >= threshold)), "benign_all": flagged(benign_attacked)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                        help="default: plain augment normaliser defended (none when --checkpoint is given)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attacks")
    parser.add_argument("--train-seeds", type=int, default=1, metavar="N",
                        help="train each variant N times (train.seed 0..N-1) and report means: single runs "
                             "vary by about +-0.03 on the chained attack")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override applied to every variant (repeatable), e.g. model.hidden_dim=64")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=DIR",
                        help="score a trained COLD checkpoint as the variant NAME instead of training (repeatable)")
    parser.add_argument("--output", help="also write the figures as JSON here")
    args = parser.parse_args()

    import modelkit
    from modelkit.text.augment import ATTACKS, apply_attack

    dev_rows = [json.loads(line) for line in (Path(args.data_root) / "cold" / "dev.jsonl").open(encoding="utf-8")]
    offensive = [row["text"] for row in dev_rows if row["label"] == 1]
    attacks = [*ATTACKS, "all"]
    attacked = {
        name: [apply_attack(text, name, random.Random(f"{args.seed}:{name}:{i}")) for i, text in enumerate(offensive)]
        for name in attacks
    }
    benign_attacked = [apply_attack(row["text"], "all", random.Random(f"{args.seed}:benign:{i}"))
                       for i, row in enumerate(dev_rows) if row["label"] == 0]
    # variant -> figure -> one value per training seed
    results: dict[str, dict[str, list[float]]] = {}
    trained = dict(pair.split("=", 1) for pair in args.checkpoint)
    for variant, checkpoint in trained.items():
        results[variant] = {figure: [value] for figure, value in _figures(
            modelkit.load(checkpoint, device="cpu"), dev_rows, offensive, attacked, benign_attacked).items()}
    with tempfile.TemporaryDirectory(prefix="modelkit-evasion-") as scratch:
        default = [] if trained else ["plain", "augment", "normaliser", "defended"]
        for variant in default if args.variants is None else args.variants:
            recipe, overrides = VARIANTS[variant]
            results[variant] = {}
            # An ensemble's members carry their own seeds, so repeating it would repeat one run.
            for train_seed in range(1 if recipe == ENSEMBLE else args.train_seeds):
                print(f"training {variant} (train.seed={train_seed}) ...", file=sys.stderr)
                seed_override = [] if recipe == ENSEMBLE else [f"train.seed={train_seed}"]
                checkpoint = modelkit.train(recipe, data_root=args.data_root, overrides=[
                    *overrides, *args.overrides, *seed_override, f"output_dir={scratch}/{variant}-{train_seed}"])
                for figure, value in _figures(modelkit.load(checkpoint, device="cpu"), dev_rows, offensive,
                                              attacked, benign_attacked).items():
                    results[variant].setdefault(figure, []).append(value)

    variants = list(results)
    ratios = {v: {name: np.array(results[v][name]) / np.array(results[v]["clean"]) for name in attacks}
              for v in variants}
    runs = {v: len(results[v]["clean"]) for v in variants}
    print(f"\nCOLD dev: {len(offensive)} offensive rows, recall at each model's threshold (ratio to clean); "
          f"means over training seeds ({', '.join(f'{v}: {n}' for v, n in runs.items())})\n")
    print("| attack | " + " | ".join(variants) + " |")
    print("|---|" + "---:|" * len(variants))
    print("| dev accuracy (clean, all rows) | "
          + " | ".join(f"{np.mean(results[v]['dev_accuracy']):.4f}" for v in variants) + " |")
    print("| clean recall | " + " | ".join(f"{np.mean(results[v]['clean']):.3f}" for v in variants) + " |")
    for name in attacks:
        cells = []
        for v in variants:
            spread = f" ± {ratios[v][name].std():.2f}" if runs[v] > 1 else ""
            cells.append(f"{np.mean(results[v][name]):.3f} ({ratios[v][name].mean():.2f}{spread})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| benign rows flagged: clean -> all | "
          + " | ".join(f"{np.mean(results[v]['benign_clean']):.3f} -> {np.mean(results[v]['benign_all']):.3f}"
                       for v in variants) + " |")
    best = "defended" if "defended" in variants else variants[-1]
    worst = min(ratios[best][name].mean() for name in attacks)
    print(f"\n{best}: lowest mean attacked/clean recall ratio {worst:.3f} (target >= {TARGET}): "
          f"{'met' if worst >= TARGET else 'NOT met'}")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
