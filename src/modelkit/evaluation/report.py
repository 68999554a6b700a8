"""Evaluation reports: scores + labels -> ``report.json``, ``report.md``, ``report.html``.

A report consumes scores and labels, never a model, so every modality (text, image, video,
post) gets the same report. :class:`ScoredData` checks the inputs; :func:`build_report`
computes the numbers (JSON-ready); :func:`write_report` writes the three report files, the
plots and ``predictions.jsonl`` (what ``modelkit compare`` and the notebook read back).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_fscore_support

from ..errors import EvaluationError
from .._version import __version__
from ..checkpoint import write_json
from .bootstrap import AVERAGES, HEADLINE, headline_draws, interval
from .metrics import NONE_CLASS, compute_metrics
from .sections import OPERATING_POINTS, plot_name, report_sections
from .thresholds import operating_point

REPORT_VERSION = 1
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))
PREDICTIONS = "predictions.jsonl"
MAX_INPUT_CHARS = 600



@dataclass
class ScoredData:
    """Labels and scores of ``n`` rows over ``categories``, with what identifies each row.

    ``inputs`` is what a reader sees in error examples (text, or an image/video path);
    ``preview(input)`` turns one into ``{"text": ..., "thumbnail": "data:image/..."}`` (only the
    examples shown are previewed); ``fields`` holds other columns of the rows, for slicing.
    """

    categories: list[str]
    labels: np.ndarray
    scores: np.ndarray
    ids: list[Any]
    inputs: list[Any]
    fields: dict[str, list[Any]] = field(default_factory=dict)
    preview: Callable[[Any], dict[str, str]] | None = None

    @classmethod
    def build(
        cls,
        labels: np.ndarray | Sequence[Sequence[str]],
        scores: np.ndarray | Sequence[Mapping[str, float]],
        categories: Sequence[str],
        ids: Sequence[Any] | None = None,
        inputs: Sequence[Any] | None = None,
        fields: Mapping[str, Sequence[Any]] | None = None,
        preview: Callable[[Any], dict[str, str]] | None = None,
    ) -> ScoredData:
        """Validate and normalise. ``labels`` is a 0/1 matrix or per-row lists of category ids;
        ``scores`` a matrix (columns in ``categories`` order) or per-row ``{category: score}``."""
        categories = list(categories)
        if not categories:
            raise EvaluationError("no categories given")
        label_matrix = _label_matrix(labels, categories)
        score_matrix = _score_matrix(scores, categories)
        n = len(label_matrix)
        if len(score_matrix) != n:
            raise EvaluationError(f"{len(score_matrix)} rows of scores but {n} rows of labels")
        if label_matrix.shape[1] != len(categories) or score_matrix.shape[1] != len(categories):
            raise EvaluationError(
                f"expected {len(categories)} columns ({', '.join(categories)}), got labels "
                f"{label_matrix.shape[1]} and scores {score_matrix.shape[1]}"
            )
        bad = np.flatnonzero(~np.isfinite(score_matrix).all(axis=1))
        if bad.size:
            raise EvaluationError(f"scores are NaN or infinite in {bad.size} rows (first rows: {bad[:5].tolist()})")
        ids = list(range(n)) if ids is None else list(ids)
        inputs = [""] * n if inputs is None else list(inputs)
        columns = {name: list(values) for name, values in (fields or {}).items()}
        for name, values in [("ids", ids), ("inputs", inputs), *((f"field {k!r}", v) for k, v in columns.items())]:
            if len(values) != n:
                raise EvaluationError(f"{name} has {len(values)} rows but labels have {n}")
        return cls(categories, label_matrix, score_matrix, ids, inputs, columns, preview)

    def __len__(self) -> int:
        return len(self.labels)


def _label_matrix(labels: Any, categories: list[str]) -> np.ndarray:
    if isinstance(labels, np.ndarray):
        if labels.ndim != 2:
            raise EvaluationError(f"labels must be a [rows, categories] matrix, got shape {labels.shape}")
        return labels >= 0.5
    index = {c: j for j, c in enumerate(categories)}
    matrix = np.zeros((len(labels), len(categories)), dtype=bool)
    for row, names in enumerate(labels):
        for name in [names] if isinstance(names, str) else names:
            if name not in index:
                raise EvaluationError(f"labels row {row}: unknown category {name!r} (categories: {', '.join(categories)})")
            matrix[row, index[name]] = True
    return matrix


def _score_matrix(scores: Any, categories: list[str]) -> np.ndarray:
    if isinstance(scores, np.ndarray):
        if scores.ndim != 2:
            raise EvaluationError(f"scores must be a [rows, categories] matrix, got shape {scores.shape}")
        return scores.astype(np.float64)
    matrix = np.zeros((len(scores), len(categories)), dtype=np.float64)
    for row, mapping in enumerate(scores):
        unknown = set(mapping) - set(categories)
        if unknown:
            raise EvaluationError(f"scores row {row}: unknown category {sorted(unknown)[0]!r} (categories: {', '.join(categories)})")
        missing = [c for c in categories if c not in mapping]
        if missing:
            raise EvaluationError(f"scores row {row}: no score for {missing[0]!r}")
        matrix[row] = [float(mapping[c]) for c in categories]
    return matrix


# --------------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------------
def label_counts(labels: np.ndarray, categories: Sequence[str]) -> dict[str, int]:
    counts = {c: int(n) for c, n in zip(categories, labels.sum(axis=0))}
    counts[NONE_CLASS] = int((~labels.any(axis=1)).sum())
    return counts


def calibration(truth: np.ndarray, scores: np.ndarray, bins: int) -> dict[str, Any]:
    """Expected calibration error over ``bins`` equal-width bins and the reliability table."""
    # Bins are assigned as calibration_curve assigns them, so counts and curve line up.
    assigned = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], scores)
    counts = np.bincount(assigned, minlength=bins)
    fraction, mean_score = calibration_curve(truth, scores, n_bins=bins, strategy="uniform")
    filled = np.flatnonzero(counts)
    ece = float(np.sum(counts[filled] / len(scores) * np.abs(fraction - mean_score)))
    table = [
        {
            "low": b / bins,
            "high": (b + 1) / bins,
            "count": int(counts[b]),
            "mean_score": float(s),
            "fraction_positive": float(f),
        }
        for b, s, f in zip(filled, mean_score, fraction)
    ]
    return {"ece": ece, "bins": table}


def threshold_table(truth: np.ndarray, scores: np.ndarray, threshold: float) -> list[dict[str, float]]:
    rows = []
    for cut in sorted({*THRESHOLD_GRID, round(float(threshold), 6)}):
        p, r, f, _ = precision_recall_fscore_support(truth, scores >= cut, average="binary", zero_division=0)
        rows.append({"threshold": float(cut), "precision": float(p), "recall": float(r), "f1": float(f),
                     "flagged": int((scores >= cut).sum())})
    return rows


def _errors(data: ScoredData, j: int, threshold: float, count: int) -> dict[str, list[dict[str, Any]]]:
    truth, scores = data.labels[:, j], data.scores[:, j]
    flagged = scores >= threshold
    false_pos = np.flatnonzero(~truth & flagged)
    false_neg = np.flatnonzero(truth & ~flagged)
    false_pos = false_pos[np.argsort(-scores[false_pos], kind="stable")][:count]
    false_neg = false_neg[np.argsort(scores[false_neg], kind="stable")][:count]

    def example(row: int) -> dict[str, Any]:
        preview = data.preview(data.inputs[row]) if data.preview else {"text": str(data.inputs[row])}
        text = preview.get("text", "")
        shown = {
            "id": _jsonable(data.ids[row]),
            "input": text if len(text) <= MAX_INPUT_CHARS else text[:MAX_INPUT_CHARS] + "…",
            "score": float(scores[row]),
            "labels": [c for c, hit in zip(data.categories, data.labels[row]) if hit],
        }
        if "thumbnail" in preview:
            shown["thumbnail"] = preview["thumbnail"]
        return shown

    return {"false_positives": [example(r) for r in false_pos], "false_negatives": [example(r) for r in false_neg]}


def _summary(data: ScoredData, rows: np.ndarray, thresholds: np.ndarray, resamples: int, seed: int, bins: int):
    """Metrics, bootstrap intervals and calibration error of ``rows``: what every slice gets."""
    truth, scores = data.labels[rows], data.scores[rows]
    metrics = compute_metrics(truth, scores, thresholds, data.categories)
    draws = headline_draws(truth, scores, thresholds, resamples, seed)
    categories = {}
    for j, (category, values) in enumerate(metrics.pop("per_category").items()):
        categories[category] = {
            **values,
            "threshold": float(thresholds[j]),
            "ci": {m: interval(draws[f"{j}/{m}"]) for m in HEADLINE},
            "ece": calibration(truth[:, j], scores[:, j], bins)["ece"],
        }
    metrics["ci"] = {avg: {m: interval(draws[f"{avg}/{m}"]) for m in HEADLINE} for avg in AVERAGES}
    metrics["label_counts"] = label_counts(truth, data.categories)
    return metrics, categories


def _threshold_vector(data: ScoredData, thresholds: Sequence[float] | Mapping[str, float]) -> np.ndarray:
    if isinstance(thresholds, Mapping):
        unknown = set(thresholds) - set(data.categories)
        if unknown:
            raise EvaluationError(f"thresholds: unknown category {sorted(unknown)[0]!r}")
        thresholds = [thresholds.get(c, 0.5) for c in data.categories]
    vector = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if vector.shape != (len(data.categories),):
        raise EvaluationError(f"expected {len(data.categories)} thresholds, got {vector.shape[0]}")
    return vector


def at_thresholds(
    data: ScoredData, thresholds: Sequence[float] | Mapping[str, float], errors_per_category: int = 5
) -> dict[str, dict[str, Any]]:
    """Per category: precision, recall, F1 and the top errors at other thresholds (no intervals).

    What the evaluation notebook re-runs as a reader moves a threshold.
    """
    vector = _threshold_vector(data, thresholds)
    metrics = compute_metrics(data.labels, data.scores, vector, data.categories)["per_category"]
    return {
        category: {**metrics[category], "threshold": float(vector[j]), **_errors(data, j, vector[j], errors_per_category)}
        for j, category in enumerate(data.categories)
    }


def build_report(
    data: ScoredData,
    thresholds: Sequence[float] | Mapping[str, float],
    *,
    header: Mapping[str, Any] | None = None,
    slice_by: Sequence[str] = (),
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    errors_per_category: int = 10,
    calibration_bins: int = 15,
    max_slice_values: int = 50,
) -> dict[str, Any]:
    """All numbers of the report as a JSON-ready dict (docs/evaluation.md describes the layout)."""
    thresholds = _threshold_vector(data, thresholds)
    if bootstrap_resamples < 1:
        raise EvaluationError("bootstrap_resamples must be >= 1")
    missing = [f for f in slice_by if f not in data.fields]
    if missing:
        raise EvaluationError(f"cannot slice by {missing[0]!r}: the rows have fields {', '.join(data.fields) or '(none)'}")

    all_rows = np.arange(len(data))
    overall, categories = _summary(data, all_rows, thresholds, bootstrap_resamples, seed, calibration_bins)
    for j, category in enumerate(data.categories):
        truth, scores = data.labels[:, j], data.scores[:, j]
        section = categories[category]
        flagged = scores >= thresholds[j]
        section["confusion"] = {
            "tp": int((truth & flagged).sum()), "fp": int((~truth & flagged).sum()),
            "fn": int((truth & ~flagged).sum()), "tn": int((~truth & ~flagged).sum()),
        }
        section["calibration"] = calibration(truth, scores, calibration_bins)
        section["threshold_table"] = threshold_table(truth, scores, thresholds[j])
        section["operating_points"] = {o: operating_point(truth, scores, o) for o in OPERATING_POINTS}
        section["errors"] = _errors(data, j, thresholds[j], errors_per_category)

    slices: dict[str, Any] = {}
    for name in slice_by:
        groups: dict[str, list[int]] = {}
        for row, value in enumerate(data.fields[name]):
            groups.setdefault(_slice_key(value), []).append(row)
        ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
        slices[name] = {"values": len(ordered), "shown": min(len(ordered), max_slice_values), "groups": {}}
        for value, rows in ordered[:max_slice_values]:
            metrics, per_category = _summary(
                data, np.asarray(rows), thresholds, bootstrap_resamples, seed, calibration_bins
            )
            slices[name]["groups"][value] = {**metrics, "categories": per_category}

    return {
        "report_version": REPORT_VERSION,
        "header": {
            **dict(header or {}),
            "rows": len(data),
            "label_counts": label_counts(data.labels, data.categories),
            "categories": list(data.categories),
            "thresholds": dict(zip(data.categories, map(float, thresholds))),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "modelkit_version": __version__,
            "bootstrap": {"resamples": bootstrap_resamples, "seed": seed, "confidence": 0.95},
            "calibration_bins": calibration_bins,
            "slice_by": list(slice_by),
        },
        "overall": overall,
        "categories": categories,
        "slices": slices,
    }


def _slice_key(value: Any) -> str:
    if value is None:
        return "(missing)"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "(empty)"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------
def write_predictions(data: ScoredData, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in range(len(data)):
            record = {
                "id": _jsonable(data.ids[row]),
                "input": _jsonable(data.inputs[row]),
                "labels": [c for c, hit in zip(data.categories, data.labels[row]) if hit],
                "scores": {c: float(s) for c, s in zip(data.categories, data.scores[row])},
                **{name: _jsonable(values[row]) for name, values in data.fields.items()},
            }
            handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")


def read_predictions(path: str | Path) -> tuple[ScoredData, list[dict[str, Any]]]:
    """Read ``predictions.jsonl`` back as :class:`ScoredData` (plus the raw records)."""
    records = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not records:
        raise EvaluationError(f"{path}: no predictions")
    categories = list(records[0]["scores"])
    data = ScoredData.build(
        [r["labels"] for r in records],
        [r["scores"] for r in records],
        categories,
        ids=[r["id"] for r in records],
        inputs=[r.get("input", "") for r in records],
    )
    return data, records


def write_report(data: ScoredData, report: dict[str, Any], output_dir: str | Path) -> dict[str, Path]:
    """Write report.json/.md/.html, plots/*.png and predictions.jsonl; return their paths."""
    from .plots import category_figure, class_confusion_figure
    from .render import render_html, render_markdown

    output_dir = Path(output_dir)
    (output_dir / "plots").mkdir(parents=True, exist_ok=True)
    thresholds = report["header"]["thresholds"]
    images: dict[str, bytes] = {}
    for j, category in enumerate(data.categories):
        section = report["categories"][category]
        images[plot_name(category)] = category_figure(
            category, data.labels[:, j], data.scores[:, j], thresholds[category], section
        )
    for section in report_sections():
        if report.get(section.name) and section.figures is not None:
            images.update(section.figures(report[section.name], thresholds))
    exclusive = report["overall"].get("exclusive")
    if exclusive:
        images["plots/class_confusion.png"] = class_confusion_figure(exclusive["labels"], exclusive["confusion_matrix"])
    for name, png in images.items():
        (output_dir / name).write_bytes(png)
    report = {**report, "files": {"predictions": PREDICTIONS, "plots": sorted(images)}}
    write_predictions(data, output_dir / PREDICTIONS)
    write_json(output_dir / "report.json", _finite(report))
    (output_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (output_dir / "report.html").write_text(render_html(report, images), encoding="utf-8")
    return {name: output_dir / name for name in ("report.json", "report.md", "report.html", PREDICTIONS)}


def _finite(value: Any) -> Any:
    """JSON has no NaN: an undefined number is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
