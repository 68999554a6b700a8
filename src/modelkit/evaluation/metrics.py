"""Classification metrics for multi-label scores (scikit-learn does the arithmetic)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

NONE_CLASS = "none"


def check_inputs(y_true: np.ndarray, scores: np.ndarray, categories: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.shape != scores.shape:
        raise ValueError(f"labels have shape {y_true.shape} but scores have shape {scores.shape}")
    if y_true.ndim != 2 or y_true.shape[1] != len(categories):
        raise ValueError(f"expected [n, {len(categories)}] arrays for categories {list(categories)}, got {y_true.shape}")
    if np.isnan(scores).any():
        rows = np.flatnonzero(np.isnan(scores).any(axis=1))
        raise ValueError(f"scores contain NaN (first rows: {rows[:5].tolist()})")
    return y_true, scores


def is_exclusive(y_true: np.ndarray) -> bool:
    """True when no row carries more than one category (a multi-class data set)."""
    return bool(len(y_true)) and bool((y_true.sum(axis=1) <= 1).all())


def exclusive_classes(matrix: np.ndarray, scores: np.ndarray | None, categories: Sequence[str]) -> np.ndarray:
    """Collapse multi-hot rows to one class name each (the highest-scoring hit, or 'none')."""
    names = np.array([*categories, NONE_CLASS], dtype=object)
    ranking = matrix.astype(np.float64) if scores is None else np.where(matrix, scores, -np.inf)
    best = np.argmax(ranking, axis=1)
    best[~matrix.any(axis=1)] = len(categories)
    return names[best]


def class_view(metrics: dict[str, Any]) -> dict[str, float]:
    """The exclusive (one class per row) figures of :func:`compute_metrics` as ``classes_*`` keys;
    empty when the labels were not exclusive."""
    exclusive = metrics.get("exclusive")
    if not exclusive:
        return {}
    return {f"classes_{k}": exclusive[k] for k in ("accuracy", "macro_f1", "weighted_f1")}


def _safe(metric, *args) -> float | None:
    try:
        value = float(metric(*args))
    except ValueError:  # a category without both classes present
        return None
    return None if np.isnan(value) else value


def category_prf(truth: np.ndarray, pred: np.ndarray, average: str | None = None):
    """scikit-learn's precision/recall/F1/support over category columns.

    A one-column indicator matrix would be read by scikit-learn as a binary problem with two
    classes (negatives included); asking for the positive class keeps it per category.
    """
    if truth.shape[1] == 1:
        return precision_recall_fscore_support(truth[:, 0], pred[:, 0], labels=[True], average=average, zero_division=0)
    return precision_recall_fscore_support(truth, pred, average=average, zero_division=0)


def ranking_metrics(truth: np.ndarray, scores: np.ndarray) -> dict[str, list[float | None] | float | None]:
    """Threshold-free metrics: ROC-AUC and average precision per category and averaged.

    A category whose labels are all one class has no ROC-AUC (``None``), and none without
    positives has no AP. ``macro`` averages the defined categories, ``weighted`` weights them
    by support (positives) as scikit-learn does, ``micro`` pools all (row, category) pairs.
    """
    truth = truth >= 0.5
    support = truth.sum(axis=0)
    result: dict[str, Any] = {}
    for name, metric in (("roc_auc", roc_auc_score), ("average_precision", average_precision_score)):
        values = [
            _safe(metric, truth[:, j], scores[:, j]) if truth[:, j].any() else None for j in range(truth.shape[1])
        ]
        defined = [j for j, v in enumerate(values) if v is not None]
        result[name] = values
        if truth.shape[1] == 1:  # pooling one column is that column
            result[f"micro_{name}"] = values[0]
        else:
            result[f"micro_{name}"] = _safe(metric, truth.ravel(), scores.ravel()) if truth.any() else None
        result[f"macro_{name}"] = float(np.mean([values[j] for j in defined])) if defined else None
        result[f"weighted_{name}"] = (
            float(np.average([values[j] for j in defined], weights=support[defined])) if defined else None
        )
    return result


def compute_metrics(
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    categories: Sequence[str],
) -> dict[str, Any]:
    """Per-category and averaged metrics at ``thresholds``.

    ``accuracy`` is exact-match (every category right); for a single category it is plain
    binary accuracy. ROC-AUC and AP are ``None`` for a category whose labels are all one class.
    When the labels are mutually exclusive, ``exclusive`` adds the multi-class view
    (categories + 'none'), e.g. for comparing with published multi-class results.
    """
    y_true, scores = check_inputs(y_true, scores, categories)
    y_pred = scores >= np.asarray(thresholds)[None, :]
    truth = y_true >= 0.5
    ranking = ranking_metrics(truth, scores)
    per_category = {}
    precision, recall, f1, support = category_prf(truth, y_pred)
    for j, category in enumerate(categories):
        per_category[category] = {
            "support": int(support[j]),
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "f1": float(f1[j]),
            "roc_auc": ranking["roc_auc"][j],
            "average_precision": ranking["average_precision"][j],
        }
    result: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(truth, y_pred)),
        "per_category": per_category,
    }
    for average in ("micro", "macro", "weighted"):
        p, r, f, _ = category_prf(truth, y_pred, average)
        result[f"{average}_precision"], result[f"{average}_recall"], result[f"{average}_f1"] = float(p), float(r), float(f)
        for name in ("roc_auc", "average_precision"):
            result[f"{average}_{name}"] = ranking[f"{average}_{name}"]
    if is_exclusive(truth):
        true_class = exclusive_classes(truth, None, categories)
        pred_class = exclusive_classes(y_pred, scores, categories)
        labels = [*categories, NONE_CLASS]
        p, r, f, s = precision_recall_fscore_support(true_class, pred_class, labels=labels, zero_division=0)
        _, _, weighted_f1, _ = precision_recall_fscore_support(
            true_class, pred_class, labels=labels, average="weighted", zero_division=0
        )
        result["exclusive"] = {
            "accuracy": float(accuracy_score(true_class, pred_class)),
            "weighted_f1": float(weighted_f1),
            "macro_f1": float(np.mean(f)),
            "labels": labels,
            "confusion_matrix": confusion_matrix(true_class, pred_class, labels=labels).tolist(),
            "per_class": {
                name: {"support": int(s[i]), "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i])}
                for i, name in enumerate(labels)
            },
        }
    return result


def format_metrics(metrics: dict[str, Any]) -> str:
    """A compact plain-text table for terminals and logs."""
    lines = [
        f"rows {metrics['n']}  accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
        f"micro-F1 {metrics['micro_f1']:.4f}  macro ROC-AUC "
        + ("undefined" if metrics["macro_roc_auc"] is None else f"{metrics['macro_roc_auc']:.4f}"),
        f"{'category':<22}{'support':>8}{'prec':>8}{'recall':>8}{'F1':>8}{'ROC-AUC':>9}",
    ]
    for name, m in metrics["per_category"].items():
        auc = "undef" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
        lines.append(f"{name:<22}{m['support']:>8}{m['precision']:>8.4f}{m['recall']:>8.4f}{m['f1']:>8.4f}{auc:>9}")
    if "exclusive" in metrics:
        ex = metrics["exclusive"]
        lines.append(
            f"as one class per row: accuracy {ex['accuracy']:.4f}  weighted-F1 {ex['weighted_f1']:.4f}  "
            f"macro-F1 {ex['macro_f1']:.4f}"
        )
    return "\n".join(lines)
