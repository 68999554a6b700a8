"""``modelkit.evaluate``: score a labelled file with a checkpoint and build its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..classifier import Classifier
from ..data.records import read_records
from ..processing import input_preview
from .metrics import format_metrics
from .report import EvaluationError, ScoredData, build_report, write_report
from .sections import report_sections


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
    config = classifier.data_config(**data_overrides)
    records = read_records(data, config, classifier.taxonomy)
    missing = [f for f in slice_by if f not in records.table.column_names]
    if missing:
        raise EvaluationError(
            f"{records.source}: cannot slice by {missing[0]!r}; columns: {', '.join(records.table.column_names)}"
        )
    outputs = classifier.outputs(records.inputs, batch_size=batch_size, progress=progress, num_workers=num_workers)
    scores = outputs.scores
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
    for section in report_sections():
        built = section.build(outputs, records)
        if built is not None:
            report[section.name] = built
    if output_dir is not None:
        write_report(scored, report, output_dir)
    return report


def summary_text(report: dict[str, Any]) -> str:
    """The headline numbers of a report as a terminal table."""
    return format_metrics({**report["overall"], "per_category": report["categories"]})
