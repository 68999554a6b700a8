"""k-fold cross-validation of a recipe: ``modelkit train CONFIG --cv K``.

Fold ``k`` of a seeded split of ``data.train`` is the test split of run ``k``; early stopping
and threshold tuning use a dev split carved from the other folds, so no fold's figures saw its
own rows. Each run is a normal checkpoint in ``OUTPUT_DIR/fold-k``; ``cv_metrics.json`` holds
every fold's test metrics and their mean and standard deviation.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from ..checkpoint import write_json
from ..config import ConfigError
from ..evaluation.metrics import class_view
from .recipe import RunConfig, load_run_config
from .api import train

HEADLINE = ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "macro_roc_auc")


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    out = {name: metrics[name] for name in HEADLINE if metrics.get(name) is not None}
    return {**out, **class_view(metrics)}


def cross_validate(
    config: str | Path | dict[str, Any] | RunConfig,
    folds: int = 5,
    overrides: list[str] | None = None,
    data_root: str | Path | None = None,
    fit: Callable[[RunConfig], Path] = train,
) -> dict[str, Any]:
    """Train ``folds`` models, each tested on its held-out fold; return and write the summary.

    ``fit`` trains one fold's recipe (``data.fold`` set) into its checkpoint directory.
    """
    base = config if isinstance(config, RunConfig) else load_run_config(config, overrides, data_root)
    if folds < 2:
        raise ConfigError(f"--cv: need at least 2 folds, got {folds}")
    if base.data.dev or base.data.test:
        raise ConfigError("--cv splits data.train itself; remove data.dev and data.test from the recipe")
    per_fold = []
    for fold in range(folds):
        run = copy.deepcopy(base)
        run.data.folds, run.data.fold = folds, fold
        run.output_dir = str(Path(base.output_dir) / f"fold-{fold}")
        checkpoint = fit(run)
        metrics = json.loads((checkpoint / "metrics.json").read_text(encoding="utf-8"))
        per_fold.append({"fold": fold, "checkpoint": str(checkpoint), **_headline(metrics["test"])})
    names = [k for k in per_fold[0] if k not in ("fold", "checkpoint")]
    summary = {
        "folds": folds,
        "seed": base.split_seed,
        "per_fold": per_fold,
        "mean": {k: float(np.mean([f[k] for f in per_fold])) for k in names},
        "std": {k: float(np.std([f[k] for f in per_fold])) for k in names},
    }
    write_json(Path(base.output_dir) / "cv_metrics.json", summary)
    return summary


def format_cv(summary: dict[str, Any]) -> str:
    names = list(summary["mean"])
    lines = ["fold  " + "  ".join(f"{n:>18}" for n in names)]
    lines += [f"{f['fold']:>4}  " + "  ".join(f"{f[n]:>18.4f}" for n in names) for f in summary["per_fold"]]
    lines.append("mean  " + "  ".join(f"{summary['mean'][n]:>9.4f} ± {summary['std'][n]:.4f}" for n in names))
    return "\n".join(lines)


def check_held_out(checkpoint: str | Path, run: RunConfig) -> None:
    """Refuse ``checkpoint`` for fold ``run.data.fold`` unless its ``run_config.yaml`` shows it was
    trained on the same folds with that fold held out: otherwise it has seen the fold's test rows."""
    checkpoint = Path(checkpoint)
    recipe = checkpoint / "run_config.yaml"
    if not recipe.is_file():
        raise ConfigError(f"{checkpoint} has no run_config.yaml, so nothing shows it was trained without fold "
                          f"{run.data.fold}; train it with --cv {run.data.folds}")
    stored = yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}
    data, train = stored.get("data") or {}, stored.get("train") or {}
    seed = data.get("split_seed") if data.get("split_seed") is not None else train.get("seed", 0)
    theirs = (data.get("folds"), data.get("fold"), seed, Path(str(data.get("train"))).name)
    ours = (run.data.folds, run.data.fold, run.split_seed, Path(str(run.data.train)).name)
    if theirs != ours:
        raise ConfigError(f"{checkpoint} was trained on (folds, fold, split seed, file) {theirs}, not {ours}: "
                          "its training rows include this fold's test rows, which would leak")
