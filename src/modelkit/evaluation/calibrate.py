"""``modelkit calibrate``: fit decision thresholds (and temperatures) on a dev set.

The fitted values go into the checkpoint's ``config.json`` together with the dev figures that
justified them, so every later ``predict``/``evaluate`` uses them and a reviewer can see why.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import write_checkpoint_folder
from ..classifier import Classifier
from ..data.records import read_records
from ..policy import scores_from_logits
from .metrics import category_prf
from .thresholds import Objective, fit_temperature, fit_thresholds


def calibrate(
    checkpoint: str | Path,
    data: Any,
    objective: Objective | str = "f1",
    per_category: bool = False,
    temperature: bool = False,
    output: str | Path | None = None,
    batch_size: int = 256,
    progress: bool = False,
    overwrite: bool = False,
    **data_overrides: Any,
) -> dict[str, Any]:
    """Fit thresholds for ``objective`` on labelled dev ``data`` and save them into the checkpoint.

    ``per_category``: one threshold per category (else one shared threshold fitted on all
    categories pooled). ``temperature``: also fit a temperature per category, minimising the
    log-loss of ``sigmoid(logit / T)``. A category whose objective cannot be met on this data
    keeps its current threshold and is listed under ``unreachable``. The checkpoint is
    rewritten in place unless ``output`` names another directory (new or empty, unless
    ``overwrite``); either is written whole or not at all. Returns the calibration record.
    """
    objective = Objective.parse(objective) if isinstance(objective, str) else objective
    classifier = Classifier.load(checkpoint)
    records = read_records(data, classifier.data_config(**data_overrides), classifier.taxonomy)
    truth = records.labels >= 0.5
    logits = classifier.predict_logits(records.inputs, batch_size=batch_size, progress=progress)
    categories = classifier.categories

    temperatures = dict(classifier.policy.temperatures)
    if temperature:
        temperatures = {c: fit_temperature(truth[:, j], logits[:, j]) for j, c in enumerate(categories)}
    scores = scores_from_logits(logits, np.array([temperatures[c] for c in categories], dtype=np.float32))

    # NaN marks a category whose objective this data cannot meet: it keeps its threshold.
    fitted = fit_thresholds(truth, scores, objective, per_category=per_category, default=np.nan)
    unreachable = [c for c, t in zip(categories, fitted) if np.isnan(t)]
    threshold_vector = np.where(np.isnan(fitted), classifier.threshold_vector, fitted)
    precision, recall, f1, support = category_prf(truth, scores >= threshold_vector[None, :])
    dev = {
        category: {
            "threshold": float(threshold_vector[j]),
            "support": int(support[j]),
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "f1": float(f1[j]),
        }
        for j, category in enumerate(categories)
    }
    record = {
        "objective": str(objective),
        "per_category": per_category,
        "fitted_on": {"data": records.source, "rows": len(records), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "dev": dev,
        "unreachable": unreachable,
    }
    classifier.policy = classifier.policy.with_values(
        thresholds={c: float(t) for c, t in zip(categories, threshold_vector)}, temperatures=temperatures)
    classifier.calibration = record
    write_checkpoint_folder(output, classifier.to_checkpoint(), source=checkpoint, overwrite=overwrite)
    return {**record, "temperature": {c: t for c, t in temperatures.items() if t != 1.0}}
