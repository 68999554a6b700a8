"""``modelkit compare``: is model B really better than model A on the same data?

Both reports' ``predictions.jsonl`` are aligned by row id; every headline metric (F1 at each
report's thresholds, ROC-AUC, AP; per category and averaged) is recomputed on the same
bootstrap resamples for both models, and the differences give an interval and a two-sided
p-value: how often the resampled difference falls on the other side of zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .bootstrap import AVERAGES, HEADLINE, headline_draws, headline_point, interval
from .report import EvaluationError, read_predictions


def _load(report: str | Path) -> tuple[Path, dict[str, Any]]:
    path = Path(report)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise EvaluationError(f"{path}: no report.json (write one with modelkit evaluate --output-dir)")
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise EvaluationError(f"{path}: not valid JSON ({err})") from None


def compare_reports(report_a: str | Path, report_b: str | Path, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap comparison of two reports made on the same labelled rows."""
    (path_a, a), (path_b, b) = _load(report_a), _load(report_b)
    data = []
    for path, report in ((path_a, a), (path_b, b)):
        predictions = path.parent / (report.get("files") or {}).get("predictions", "predictions.jsonl")
        if not predictions.is_file():
            raise EvaluationError(f"{path}: its predictions file {predictions} is missing")
        data.append(read_predictions(predictions)[0])
    data_a, data_b = data
    if data_a.categories != data_b.categories:
        raise EvaluationError(f"the reports score different categories: {data_a.categories} vs {data_b.categories}")
    position = {row_id: i for i, row_id in enumerate(data_b.ids)}
    if len(position) != len(data_b.ids) or len(set(data_a.ids)) != len(data_a.ids):
        raise EvaluationError("row ids repeat within a report; rows cannot be paired")
    if set(position) != set(data_a.ids):
        raise EvaluationError(f"the reports cover different rows ({len(data_a.ids)} vs {len(data_b.ids)} rows, ids differ)")
    order = np.array([position[row_id] for row_id in data_a.ids])
    if not np.array_equal(data_a.labels, data_b.labels[order]):
        raise EvaluationError("the reports disagree on the true labels of the same rows; they used different data")

    truth = data_a.labels
    categories = data_a.categories
    thresholds = [np.array([r["header"]["thresholds"][c] for c in categories]) for r in (a, b)]
    scores = [data_a.scores, data_b.scores[order]]
    points = [headline_point(truth, s, t) for s, t in zip(scores, thresholds)]
    draws = [headline_draws(truth, s, t, resamples, seed) for s, t in zip(scores, thresholds)]

    rows = []
    scopes = [(str(j), c) for j, c in enumerate(categories)] + [(avg, avg) for avg in AVERAGES]
    for key_scope, scope in scopes:
        for metric in HEADLINE:
            key = f"{key_scope}/{metric}"
            value_a, value_b = points[0][key], points[1][key]
            differences = draws[1][key] - draws[0][key]
            defined = differences[~np.isnan(differences)]
            undefined = np.isnan(value_a) or np.isnan(value_b) or defined.size == 0
            rows.append({
                "scope": scope,
                "metric": metric,
                "a": None if np.isnan(value_a) else value_a,
                "b": None if np.isnan(value_b) else value_b,
                "delta": None if undefined else value_b - value_a,
                "ci": None if undefined else interval(differences),
                "p_value": None if undefined else _two_sided_p(defined),
            })
    return {
        "a": str(path_a),
        "b": str(path_b),
        "rows": len(truth),
        "resamples": resamples,
        "seed": seed,
        "metrics": rows,
    }


def _two_sided_p(differences: np.ndarray) -> float:
    # With the +1 correction a p-value is never exactly 0 from a finite number of resamples.
    count = differences.size
    below = (np.sum(differences <= 0) + 1) / (count + 1)
    above = (np.sum(differences >= 0) + 1) / (count + 1)
    return float(min(1.0, 2 * min(below, above)))
