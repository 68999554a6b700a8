"""Decision thresholds and score calibration fitted on a dev set.

An *objective* names the operating point a team wants: ``f1`` (the threshold that maximises
F1), ``precision@0.95`` (the highest recall whose precision is at least 0.95) or ``recall@0.9``
(the highest precision whose recall is at least 0.9). The same function answers it for the
threshold table of a report and for ``modelkit calibrate``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import log_loss, precision_recall_curve

_OBJECTIVE = re.compile(r"^(f1|(precision|recall)@(0?\.\d+|1(\.0*)?))$")


@dataclass(frozen=True)
class Objective:
    metric: str  # "f1", "precision" or "recall"
    target: float | None = None

    @classmethod
    def parse(cls, text: str) -> Objective:
        match = _OBJECTIVE.match(text.strip().lower())
        if not match:
            raise ValueError(f"objective {text!r}: expected f1, precision@P or recall@R with 0 < P, R <= 1")
        if match.group(1) == "f1":
            return cls("f1")
        return cls(match.group(2), float(match.group(3)))

    def __str__(self) -> str:
        return self.metric if self.target is None else f"{self.metric}@{self.target:g}"


def operating_point(truth: np.ndarray, scores: np.ndarray, objective: Objective | str,
                    weights: np.ndarray | None = None) -> dict[str, Any] | None:
    """Threshold meeting ``objective`` on (truth, scores), with precision, recall and F1 there.

    ``None`` when the objective cannot be met (no positives, or the target precision is never
    reached). Scores at or above the threshold count as positive. ``weights``: each row counts
    this many times (rows drawn with probability p weigh 1/p, so that the estimates hold for the
    population they were drawn from).
    """
    objective = Objective.parse(objective) if isinstance(objective, str) else objective
    truth = np.asarray(truth) >= 0.5
    if not truth.any():
        return None
    precision, recall, cuts = precision_recall_curve(truth, scores, sample_weight=weights)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    if objective.metric == "f1":
        best = int(np.argmax(f1))
    else:
        met = (precision if objective.metric == "precision" else recall) >= objective.target - 1e-12
        if not met.any():
            return None
        other = recall if objective.metric == "precision" else precision
        # Among thresholds that meet the target, the best value of the other metric; ties go to
        # the higher threshold (fewer items flagged for the same quality).
        candidates = np.flatnonzero(met)
        best = int(candidates[np.lexsort((-cuts[candidates], -other[candidates]))[0]])
    # Any threshold between the chosen score and the next lower one flags the same rows: take the
    # middle of that gap rather than its edge (on a small dev set the edge is one row's score, and
    # a test row scoring a hair lower would be missed).
    threshold = (cuts[best] + cuts[best - 1]) / 2 if best > 0 else cuts[best]
    return {
        "threshold": float(threshold),
        "precision": float(precision[best]),
        "recall": float(recall[best]),
        "f1": float(f1[best]),
    }


def fit_thresholds(
    y_true: np.ndarray, scores: np.ndarray, objective: Objective | str, per_category: bool = True, default: float = 0.5
) -> np.ndarray:
    """One threshold per category (``per_category``) or one shared by all, fitted for ``objective``.

    The shared threshold is fitted on all (row, category) pairs pooled, i.e. the micro average.
    A category whose objective cannot be met keeps ``default``.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    if not per_category:
        point = operating_point(y_true.ravel(), scores.ravel(), objective)
        return np.full(y_true.shape[1], default if point is None else point["threshold"])
    thresholds = np.full(y_true.shape[1], default, dtype=np.float64)
    for j in range(y_true.shape[1]):
        if (y_true[:, j] >= 0.5).all():
            continue
        point = operating_point(y_true[:, j], scores[:, j], objective)
        if point is not None:
            thresholds[j] = point["threshold"]
    return thresholds


def best_f1_thresholds(y_true: np.ndarray, scores: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per category, the score threshold that maximises F1 on (y_true, scores)."""
    return fit_thresholds(y_true, scores, Objective("f1"), per_category=True, default=default)


def fit_temperature(truth: np.ndarray, logits: np.ndarray) -> float:
    """Temperature T minimising the log-loss of sigmoid(logits / T) (Guo et al., 2017).

    Returns 1.0 when the labels are all one class (nothing to calibrate against).
    """
    truth = np.asarray(truth) >= 0.5
    if truth.all() or not truth.any():
        return 1.0
    logits = np.asarray(logits, dtype=np.float64)

    def loss(log_t: float) -> float:
        return log_loss(truth, 1.0 / (1.0 + np.exp(-logits / np.exp(log_t))), labels=[False, True])

    result = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))
