"""Decision thresholds fitted on a dev set."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve


def best_f1_thresholds(y_true: np.ndarray, scores: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per category, the score threshold that maximises F1 on (y_true, scores).

    A category with no positives keeps ``default``.
    """
    thresholds = np.full(y_true.shape[1], default, dtype=np.float64)
    for j in range(y_true.shape[1]):
        truth = y_true[:, j] >= 0.5
        if not truth.any() or truth.all():
            continue
        precision, recall, cut = precision_recall_curve(truth, scores[:, j])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        thresholds[j] = float(cut[int(np.argmax(f1))])
    return thresholds
