"""The one output path: a runner's result -> calibrated scores, labels and the modality's fields.

:func:`postprocess` runs once per chunk of inputs, whoever asked for them: ``Classifier.predict``
and ``predict_stream`` turn its :class:`Outputs` into :class:`Prediction` objects, the batch engine
writes its columns into shards, and ``evaluate`` reads its scores and hands it to the report
sections. What a modality adds to an input's output (a video's segments) comes from its
processor (:meth:`~modelkit.processing.Processor.postprocess`), so a new output field is added in
one place and every consumer gets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    from .inference.runner import RunResult
    from .policy import Policy
    from .processing import Processor


@dataclass
class Prediction:
    """Scores for one input. ``labels`` are the categories whose score reached its threshold;
    ``evidence`` is what the model saw beside the scores (the text it read in a picture), and
    ``error`` says why an input could not be scored (then there are no scores).

    ``fields`` holds what the input's modality adds (a video's ``segments``), also readable as
    attributes (``prediction.segments``); ``parts`` the positions of the parts the model scored
    and their calibrated scores ``[parts, categories]`` (a video's frame times and frame scores).
    """

    scores: dict[str, float]
    labels: list[str] = field(default_factory=list)
    evidence: dict[str, Any] | None = None
    error: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    parts: tuple[np.ndarray, np.ndarray] | None = None

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not attributes: the modality's output fields.
        fields = self.__dict__.get("fields") or {}
        if name in fields:
            return fields[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or output field {name!r}")

    @property
    def flagged(self) -> bool:
        return bool(self.labels)

    def to_dict(self) -> dict[str, Any]:
        """The prediction as a JSON row (what ``predictions.jsonl`` and jsonl shards hold)."""
        if self.error is not None:
            return {"error": self.error}
        record: dict[str, Any] = {"scores": self.scores, "labels": self.labels}
        record.update((name, value) for name, value in self.fields.items() if value is not None)
        if self.evidence is not None:
            record["evidence"] = self.evidence
        return record


@dataclass
class Outputs:
    """The postprocessed outputs of a chunk of inputs, by column: calibrated scores ``[rows, C]``
    (NaN where a row has an error), labels (None where it has), evidence, errors, the modality's
    output fields (name -> one value or None per row) and each row's parts (see :class:`Prediction`)."""

    categories: list[str]
    scores: np.ndarray
    labels: list[list[str] | None]
    evidence: list[dict[str, Any] | None]
    errors: list[str | None]
    fields: dict[str, list[Any]]
    parts: list[tuple[np.ndarray, np.ndarray] | None]
    # The policy the scores were calibrated and thresholded by (its taxonomy: severity, action).
    policy: Policy | None = None

    def __len__(self) -> int:
        return len(self.errors)

    def predictions(self) -> list[Prediction]:
        predictions = []
        for row, error in enumerate(self.errors):
            if error is not None:  # the modality's fields are there, None, as for an input with no parts
                predictions.append(Prediction(scores={}, error=error, fields=dict.fromkeys(self.fields)))
                continue
            predictions.append(Prediction(
                scores=dict(zip(self.categories, self.scores[row].tolist())), labels=list(self.labels[row] or []),
                evidence=self.evidence[row], fields={name: values[row] for name, values in self.fields.items()},
                parts=self.parts[row]))
        return predictions

    def records(self, ids: Sequence[Any]) -> Iterator[dict[str, Any]]:
        """Rows as :meth:`Prediction.to_dict` writes them, with ``id`` first."""
        for row_id, prediction in zip(ids, self.predictions()):
            yield {"id": row_id, **prediction.to_dict()}

    def placed(self, rows: int, where: Sequence[int], problems: Sequence[str | None]) -> Outputs:
        """These outputs at rows ``where`` of ``rows`` rows; the others are errors, ``problems[row]``
        (a batch run's rows that had no input to score)."""
        scores = np.full((rows, len(self.categories)), np.nan, dtype=np.float32)
        scores[list(where)] = self.scores
        labels: list[list[str] | None] = [None] * rows
        evidence: list[dict[str, Any] | None] = [None] * rows
        errors = list(problems)
        fields: dict[str, list[Any]] = {name: [None] * rows for name in self.fields}
        parts: list[tuple[np.ndarray, np.ndarray] | None] = [None] * rows
        for position, row in enumerate(where):
            labels[row], evidence[row], errors[row] = self.labels[position], self.evidence[position], self.errors[position]
            parts[row] = self.parts[position]
            for name, values in self.fields.items():
                fields[name][row] = values[position]
        return Outputs(self.categories, scores, labels, evidence, errors, fields, parts, self.policy)


def postprocess(result: RunResult, policy: Policy, processor: Processor) -> Outputs:
    """A runner's result -> :class:`Outputs`: logits calibrated by ``policy`` and thresholded, and
    for inputs whose parts were placed, the part scores and the processor's output fields."""
    scores = policy.scores(result.logits).astype(np.float32, copy=False)
    categories = policy.taxonomy.ids
    hits = policy.decide(np.nan_to_num(scores, nan=-1.0))
    errors = list(result.errors)
    labels = [None if error is not None else [categories[j] for j in np.flatnonzero(row)]
              for error, row in zip(errors, hits)]
    fields: dict[str, list[Any]] = {name: [None] * len(errors) for name in processor.output_fields}
    parts: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(errors)
    for row, placed in enumerate(result.parts):
        if placed is None or errors[row] is not None:
            continue
        part_scores = policy.scores(placed.logits)
        parts[row] = (placed.positions, part_scores)
        added = processor.postprocess(placed.positions, part_scores, policy.threshold_vector, categories)
        for name, value in added.items():
            if name not in fields:
                raise KeyError(f"processor {processor.name!r} returned output field {name!r}, which its "
                               f"output_fields {processor.output_fields!r} do not declare")
            fields[name][row] = value
    return Outputs(categories, scores, labels, list(result.evidence), errors, fields, parts, policy)
