"""``modelkit.evaluate``: score a labelled file with a checkpoint and build its report."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..classifier import Classifier, Prediction
from ..config import from_dict
from ..data.records import DataConfig, Records, read_records
from ..processing import input_preview
from .metrics import format_metrics
from .report import EvaluationError, ScoredData, build_report, write_report
from .segments import segment_metrics, temporal_iou


def data_config_for(classifier: Classifier, **overrides: Any) -> DataConfig:
    """The field names and label mapping the checkpoint was trained with, plus overrides."""
    stored = dict(classifier.extra.get("data") or {})
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if {"input_field", "inputs"} & set(overrides):  # a new input field replaces the stored ones
        stored.pop("inputs", None)
        stored.pop("input_field", None)
    stored.update(overrides)
    if "inputs" not in stored and "input_field" not in stored:  # a checkpoint built without a recipe
        stored["inputs"] = {classifier.processor.modality: classifier.processor.modality}
    known = {f.name for f in dataclasses.fields(DataConfig)}
    return from_dict(DataConfig, {k: v for k, v in stored.items() if k in known}, where="data")


def evaluate(
    checkpoint: str | Path | Classifier,
    data: Any,
    output_dir: str | Path | None = None,
    slice_by: Sequence[str] = (),
    batch_size: int = 256,
    progress: bool = False,
    bootstrap_resamples: int = 1000,
    errors_per_category: int = 10,
    num_workers: int = 0,
    **data_overrides: Any,
) -> dict[str, Any]:
    """The evaluation report of ``checkpoint`` on labelled ``data`` (a file or ``datasets.Dataset``).

    Field names and label mapping default to those the checkpoint was trained with;
    ``input_field=...``, ``label_field=...`` etc. override them. ``num_workers`` processes decode
    inputs (pictures) beside the model. ``slice_by`` names columns of
    the data to break every metric down by. With ``output_dir`` the report is also written
    there (``report.json``, ``report.md``, ``report.html``, plots, ``predictions.jsonl``).
    """
    classifier = checkpoint if isinstance(checkpoint, Classifier) else Classifier.load(checkpoint)
    config = data_config_for(classifier, **data_overrides)
    records = read_records(data, config, classifier.taxonomy)
    missing = [f for f in slice_by if f not in records.table.column_names]
    if missing:
        raise EvaluationError(
            f"{records.source}: cannot slice by {missing[0]!r}; columns: {', '.join(records.table.column_names)}"
        )
    segments = None
    if classifier.model.scores_parts:
        predictions = classifier.predict(records.inputs, batch_size=batch_size, progress=progress,
                                         num_workers=num_workers)
        scores = np.array([[p.scores[c] for c in classifier.categories] for p in predictions], dtype=np.float32)
        segments = segment_section(predictions, records, classifier)
    else:
        scores = classifier.predict_proba(records.inputs, batch_size=batch_size, progress=progress,
                                          num_workers=num_workers)
    modality = next(iter(records.columns))
    scored = ScoredData.build(
        records.labels, scores, classifier.categories, ids=records.ids, inputs=records.inputs,
        fields={name: records.table[name] for name in slice_by},
        preview=(lambda value: input_preview(modality, value)) if len(records.columns) == 1 else None,
    )
    header = {
        "data": records.source,
        "checkpoint": {
            "path": str(checkpoint) if not isinstance(checkpoint, Classifier) else "(in memory)",
            "model": classifier.model.registry_name,
            "modality": classifier.processor.modality,
            "processor": classifier.processor.name,
            "calibration": classifier.calibration,
        },
        "taxonomy": classifier.taxonomy.name,
    }
    report = build_report(
        scored, classifier.threshold_vector, header=header, slice_by=slice_by,
        bootstrap_resamples=bootstrap_resamples, errors_per_category=errors_per_category,
    )
    if segments is not None:
        report["segments"] = segments
    if output_dir is not None:
        write_report(scored, report, output_dir)
    return report


def segment_section(predictions: list[Prediction], records: Records, classifier: Classifier,
                    field: str = "segments", timelines_per_category: int = 8) -> dict[str, Any]:
    """Segment metrics against the data's ``segments`` column (when it has one) and, per category,
    the timelines of the videos worth looking at: false alarms, then the worst-localised true
    segments."""
    table = records.table
    predicted = [p.segments or [] for p in predictions]
    truth = [list(row or []) for row in table[field]] if field in table.column_names else None
    section: dict[str, Any] = {"field": field if truth is not None else None}
    if truth is not None:
        section["metrics"] = segment_metrics(predicted, truth, classifier.categories)
    section["timelines"] = {}
    for j, category in enumerate(classifier.categories):
        ranked = []
        for row, prediction in enumerate(predictions):
            mine = [s for s in predicted[row] if s["category"] == category]
            true = [s for s in (truth[row] if truth else []) if s["category"] == category]
            if prediction.timeline is None or not (mine or true):
                continue
            best = max((temporal_iou(t, p) for t in true for p in mine), default=0.0)
            ranked.append((best if true else -1.0, row, true, mine))
        ranked.sort(key=lambda entry: entry[0])
        section["timelines"][category] = [
            {"id": records.ids[row], "times": predictions[row].timeline[0].round(3).tolist(),
             "scores": predictions[row].timeline[1][:, j].round(4).tolist(), "truth": true, "predicted": mine}
            for _, row, true, mine in ranked[:timelines_per_category]
        ]
    return section


def summary_text(report: dict[str, Any]) -> str:
    """The headline numbers of a report as a terminal table."""
    return format_metrics({**report["overall"], "per_category": report["categories"]})
