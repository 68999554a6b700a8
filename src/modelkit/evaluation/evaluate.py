"""``modelkit.evaluate``: score a labelled file with a checkpoint and compute metrics."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..checkpoint import write_json
from ..classifier import Classifier
from ..data.records import DataConfig, read_records
from .metrics import compute_metrics


def data_config_for(classifier: Classifier, **overrides: Any) -> DataConfig:
    """The field names and label mapping the checkpoint was trained with, plus overrides."""
    stored = dict(classifier.extra.get("data") or {})
    stored.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(DataConfig)}
    return DataConfig(**{k: v for k, v in stored.items() if k in known})


def evaluate(
    checkpoint: str | Path | Classifier,
    data: Any,
    output: str | Path | None = None,
    batch_size: int = 256,
    progress: bool = False,
    **data_overrides: Any,
) -> dict[str, Any]:
    """Metrics of ``checkpoint`` on labelled ``data`` (a file or ``datasets.Dataset``).

    Field names and label mapping default to those the checkpoint was trained with;
    ``input_field=...``, ``label_field=...`` etc. override them. With ``output`` the metrics
    are also written there as JSON.
    """
    classifier = checkpoint if isinstance(checkpoint, Classifier) else Classifier.load(checkpoint)
    records = read_records(data, data_config_for(classifier, **data_overrides), classifier.taxonomy)
    scores = classifier.predict_proba(records.inputs, batch_size=batch_size, progress=progress)
    metrics = compute_metrics(records.labels, scores, classifier.threshold_vector, classifier.categories)
    metrics = {"data": records.source, "checkpoint": str(checkpoint), **metrics}
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(output), metrics)
    return metrics
