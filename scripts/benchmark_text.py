#!/usr/bin/env python
"""Text models against the scikit-learn TF-IDF + LR baseline, through one protocol.

The first --recipe fixes the protocol: its splits (its dev file, or a seeded dev fraction),
with --cv K its K folds, and its decision rule (bce or exclusive, thresholds tuned on dev or
0.5). On every split, in the same run:

  * the TF-IDF + LR baseline (scripts/baselines.py) is fitted on the training rows;
  * every --recipe is trained (``modelkit.train``) on the same rows;
  * every --checkpoint is scored as it is (under --cv: CHECKPOINT/fold-k, which must have been
    trained with fold k held out, e.g. by ``modelkit train --cv K`` or ``modelkit distill --cv K``);

and all are scored on the evaluation split (the test fold under --cv, else the recipe's test
file, else its dev file) with the same metrics. Throughput is texts/s on that split (raw
strings in, scores out, best of --repeats passes).

    python scripts/benchmark_text.py --recipe configs/text/cold.yaml --checkpoint runs/text-cold-distilled
    python scripts/benchmark_text.py --recipe configs/text/chineseharm.yaml --cv 5 \\
        --checkpoint runs/text-chineseharm-m3e runs/text-chineseharm-distilled
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import TfidfLogisticRegression  # noqa: E402

BASELINE = "TF-IDF + LR (scikit-learn)"
# Multi-label figures; for data with one class per row, also the class view ('none' a class, each
# row's class its highest-scoring flagged category), which is how exclusive data sets are read.
FIGURES = ("accuracy", "macro_f1", "classes_accuracy", "classes_macro_f1")


def best_throughput(predict, texts: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict(texts)
        best = min(best, time.perf_counter() - started)
        if best > 30:  # a slow model's figure is steady enough from one pass
            break
    return len(texts) / best


def protocol_splits(config, folds: int | None):
    """[(name, run config, splits)] of the protocol: one per fold, or the recipe's own split."""
    from modelkit.training.trainer import load_splits

    taxonomy = config.build_taxonomy()
    if not folds:
        return [("", config, load_splits(config, taxonomy))]
    out = []
    for fold in range(folds):
        run = copy.deepcopy(config)
        run.data.folds, run.data.fold = folds, fold
        run.output_dir = str(Path(config.output_dir) / f"fold-{fold}")
        out.append((f"fold-{fold}", run, load_splits(run, taxonomy)))
    return out


def figures(labels, scores, thresholds, categories) -> dict[str, float]:
    from modelkit.evaluation.metrics import compute_metrics

    metrics = compute_metrics(labels, scores, thresholds, categories)
    out = {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
    if "exclusive" in metrics:
        out["classes_accuracy"] = metrics["exclusive"]["accuracy"]
        out["classes_macro_f1"] = metrics["exclusive"]["macro_f1"]
    return out


def run_baseline(run, splits, evaluated, repeats: int) -> dict:
    from modelkit.evaluation.thresholds import best_f1_thresholds

    started = time.perf_counter()
    model = TfidfLogisticRegression(exclusive=run.train.loss == "exclusive").fit(splits.train.inputs,
                                                                                  splits.train.labels)
    train_s = time.perf_counter() - started
    thresholds = np.full(splits.train.labels.shape[1], 0.5)
    if run.train.tune_thresholds:
        thresholds = best_f1_thresholds(splits.dev.labels, model.predict_proba(splits.dev.inputs))
    scores = model.predict_proba(evaluated.inputs)
    return {**figures(evaluated.labels, scores, thresholds, run.build_taxonomy().ids), "train_s": train_s,
            "texts_per_s": best_throughput(model.predict_proba, evaluated.inputs, repeats)}


def score_checkpoint(directory: Path, evaluated, categories, repeats: int, train_s: float | None = None) -> dict:
    import modelkit

    clf = modelkit.load(directory, device="cpu")
    columns = [clf.categories.index(c) for c in categories]
    predict = lambda texts: clf.predict_proba(texts, batch_size=1024)  # noqa: E731
    scores = predict(evaluated.inputs)[:, columns]
    return {**figures(evaluated.labels, scores, clf.threshold_vector[columns], categories), "train_s": train_s,
            "texts_per_s": best_throughput(predict, evaluated.inputs, repeats)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", nargs="+", default=[str(REPO / "configs/text/cold.yaml")],
                        help="recipes to train; the first fixes splits and decision rule (default cold.yaml)")
    parser.add_argument("--checkpoint", nargs="+", default=[], help="trained checkpoints to score as they are")
    parser.add_argument("--score-only", action="store_true",
                        help="do not train the recipes: the first still fixes the protocol (baseline + checkpoints)")
    parser.add_argument("--cv", type=int, metavar="K", help="K-fold cross-validation on the recipe's data.train")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--output-dir", default="runs/benchmark-text", help="where the recipes' runs go")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], help="override for every recipe (KEY=VALUE)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    import modelkit
    from modelkit.training.cv import check_held_out

    recipes = [modelkit.load_run_config(path, [f"output_dir={args.output_dir}/{Path(path).stem}", *args.set],
                                        data_root=args.data_root) for path in args.recipe]
    protocol = protocol_splits(recipes[0], args.cv)
    categories = recipes[0].build_taxonomy().ids
    results: dict[str, list[dict]] = {}
    for name, run, splits in protocol:
        evaluated = splits.test if splits.test is not None else splits.dev
        print(f"[{name or 'split'}] train {len(splits.train)}, dev {len(splits.dev)}, evaluated {len(evaluated)}",
              flush=True)
        results.setdefault(BASELINE, []).append(run_baseline(run, splits, evaluated, args.repeats))
        for path, recipe in zip(args.recipe if not args.score_only else [], recipes):
            fold_recipe = copy.deepcopy(recipe)
            fold_recipe.data = copy.deepcopy(run.data)  # the protocol's rows, whatever the recipe's data block
            fold_recipe.data.split_seed = run.split_seed
            if name:
                fold_recipe.output_dir = str(Path(recipe.output_dir) / name)
            started = time.perf_counter()
            checkpoint = modelkit.train(fold_recipe)
            # The resume state (weights and optimiser moments again) is no use to a benchmark, and
            # an n-gram table's is a gigabyte a run.
            shutil.rmtree(Path(fold_recipe.output_dir) / "last", ignore_errors=True)
            results.setdefault(f"{Path(path).stem} (trained here)", []).append(
                score_checkpoint(checkpoint, evaluated, categories, args.repeats, time.perf_counter() - started))
        for path in args.checkpoint:
            directory = Path(path) / name if name else Path(path)
            if name:
                check_held_out(directory, run)
            results.setdefault(Path(path).name, []).append(score_checkpoint(directory, evaluated, categories,
                                                                            args.repeats))

    print(f"\n{Path(args.recipe[0]).name}: {'%d-fold CV' % args.cv if args.cv else 'its own split'}, "
          f"{len(protocol[0][2].train)} training rows, CPU threads: {os.cpu_count()}")
    shown = [f for f in FIGURES if all(f in r for runs in results.values() for r in runs)]
    print("| pipeline | " + " | ".join(shown) + " | train (s) | predict (texts/s) |")
    print("| --- |" + " ---: |" * (len(shown) + 2))
    summary = {}
    for pipeline, runs in results.items():
        mean = {k: float(np.mean([r[k] for r in runs])) for k in (*shown, "texts_per_s")}
        std = {k: float(np.std([r[k] for r in runs])) for k in shown}
        trained = [r["train_s"] for r in runs if r["train_s"] is not None]
        summary[pipeline] = {"mean": mean, "std": std, "per_split": runs}
        cells = [f"{mean[k]:.4f}" + (f" ± {std[k]:.4f}" if len(runs) > 1 else "") for k in shown]
        cells.append(f"{np.mean(trained):.1f}" if trained else "–")
        cells.append(f"{mean['texts_per_s']:,.0f}")
        print(f"| {pipeline} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
