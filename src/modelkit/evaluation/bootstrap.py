"""Bootstrap resampling of rows, shared by confidence intervals and model comparison.

Resample ``b`` takes the rows ``rng.integers(0, n, n)`` from the ``b``-th draw of
``numpy.random.default_rng(seed)``, so a test (or a reader) can reproduce every interval, and
two models scored on the same rows see the same resamples (a paired bootstrap). A metric that
is undefined on a resample (no positives drawn) is NaN there and left out of its interval.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .metrics import ranking_metrics

CONFIDENCE = 0.95
AVERAGES = ("micro", "macro", "weighted")
HEADLINE = ("f1", "roc_auc", "average_precision")


def _index_chunks(n: int, count: int, seed: int, chunk: int = 64) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    for start in range(0, count, chunk):
        yield np.stack([rng.integers(0, n, n) for _ in range(min(chunk, count - start))])


def _f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def _headline(truth: np.ndarray, scores: np.ndarray, pred: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The headline metrics on each resample in ``rows`` ([resamples, n] row indices).

    F1 comes from how often each row is drawn (one matrix product for the whole chunk, the
    same counts scikit-learn would tally); ROC-AUC and AP from scikit-learn per resample.
    """
    n, k = truth.shape
    drawn = np.stack([np.bincount(r, minlength=n) for r in rows]).astype(np.float64)
    tp = drawn @ (truth & pred)
    fp = drawn @ (~truth & pred)
    fn = drawn @ (truth & ~pred)
    support = tp + fn
    f1 = _f1_from_counts(tp, fp, fn)
    out: dict[str, np.ndarray] = {f"{j}/f1": f1[:, j] for j in range(k)}
    out["micro/f1"] = _f1_from_counts(tp.sum(1), fp.sum(1), fn.sum(1))
    out["macro/f1"] = f1.mean(axis=1)
    total = support.sum(axis=1)
    out["weighted/f1"] = np.divide((f1 * support).sum(axis=1), total, out=np.zeros_like(total), where=total > 0)
    ranking = [ranking_metrics(truth[r], scores[r]) for r in rows]
    for name in ("roc_auc", "average_precision"):
        for j in range(k):
            out[f"{j}/{name}"] = np.array([_nan(m[name][j]) for m in ranking])
        for average in AVERAGES:
            out[f"{average}/{name}"] = np.array([_nan(m[f"{average}_{name}"]) for m in ranking])
    return out


def _nan(value: float | None) -> float:
    return np.nan if value is None else value


def headline_draws(
    truth: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """F1 (at ``thresholds``), ROC-AUC and AP per category and averaged, on every resample.

    Keys are ``"{scope}/{metric}"``: scope is a category's column index (``"0"``) or ``micro``,
    ``macro``, ``weighted``; each value has one entry per resample.
    """
    truth = np.asarray(truth) >= 0.5
    pred = scores >= np.asarray(thresholds)[None, :]
    parts = [_headline(truth, scores, pred, rows) for rows in _index_chunks(len(truth), resamples, seed)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def headline_point(truth: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
    """The same metrics on the rows as they are (NaN where undefined)."""
    truth = np.asarray(truth) >= 0.5
    pred = scores >= np.asarray(thresholds)[None, :]
    return {k: float(v[0]) for k, v in _headline(truth, scores, pred, np.arange(len(truth))[None, :]).items()}


def interval(values: np.ndarray) -> list[float] | None:
    """Percentile interval at :data:`CONFIDENCE` of the defined draws (``None`` if none are)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]
