"""The inference object users hold: ``modelkit.load(path)`` -> :class:`Classifier`."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .models.base import ModerationModel
from .taxonomy import Taxonomy


@dataclass
class Prediction:
    """Scores for one input. ``labels`` are the categories whose score reached its threshold."""

    scores: dict[str, float]
    labels: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return {"scores": self.scores, "labels": self.labels}


def scores_from_logits(logits: np.ndarray, temperature: np.ndarray | float = 1.0) -> np.ndarray:
    """sigmoid(logits / T), the same float32 sigmoid as in training."""
    return torch.sigmoid(torch.from_numpy(np.asarray(logits / temperature, dtype=np.float32))).numpy()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Classifier:
    """A trained model with its taxonomy, preprocessing and decision thresholds.

    >>> clf = modelkit.load("runs/text-cold")
    >>> clf.predict(["你这个人真恶心", "今天天气不错"])[0].labels
    ['abuse']
    """

    def __init__(
        self,
        model: ModerationModel,
        taxonomy: Taxonomy,
        thresholds: dict[str, float] | None = None,
        device: str | torch.device | None = None,
        metrics: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        calibration: dict[str, Any] | None = None,
    ) -> None:
        self.model = model.eval()
        self.taxonomy = taxonomy
        self.thresholds = {c: 0.5 for c in taxonomy.ids}
        self.thresholds.update(thresholds or {})
        self.metrics = metrics or {}
        self.extra = extra or {}
        self.calibration = calibration or {}
        self.device = torch.device(device) if device is not None else default_device()
        self.model.to(self.device)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device | None = None) -> Classifier:
        ckpt = load_checkpoint(directory)
        return cls(ckpt.model, ckpt.taxonomy, ckpt.thresholds, device, ckpt.metrics, ckpt.extra, ckpt.calibration)

    def save(self, directory: str | Path) -> Path:
        checkpoint = Checkpoint(self.model, self.taxonomy, self.thresholds, self.metrics, self.extra, self.calibration)
        return save_checkpoint(directory, checkpoint)

    @property
    def categories(self) -> list[str]:
        return self.taxonomy.ids

    @property
    def threshold_vector(self) -> np.ndarray:
        return np.array([self.thresholds[c] for c in self.taxonomy.ids], dtype=np.float32)

    @property
    def temperature_vector(self) -> np.ndarray:
        """Per-category temperatures from ``modelkit calibrate`` (1.0: scores as trained)."""
        fitted = self.calibration.get("temperature") or {}
        return np.array([fitted.get(c, 1.0) for c in self.taxonomy.ids], dtype=np.float32)

    def _batches(self, inputs: list[Any], batch_size: int) -> Iterator[tuple[np.ndarray, list[Any]]]:
        # Sorting by length groups similar sizes so padded models waste little compute.
        order = np.argsort([len(x) if isinstance(x, str) else 0 for x in inputs], kind="stable")
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            yield index, [inputs[i] for i in index]

    @torch.inference_mode()
    def predict_logits(self, inputs: Sequence[Any], batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Raw logits before calibration, shape ``[len(inputs), n_categories]``."""
        inputs = self.model.preprocessor.check(inputs)
        logits = np.zeros((len(inputs), len(self.taxonomy)), dtype=np.float32)
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext()
        )
        bar = tqdm(total=len(inputs), unit="item", disable=not progress, desc="predict")
        for index, chunk in self._batches(inputs, batch_size):
            batch = {k: v.to(self.device, non_blocking=True) for k, v in self.model.preprocessor(chunk).items()}
            with autocast:
                logits[index] = self.model(**batch).float().cpu().numpy()
            bar.update(len(chunk))
        bar.close()
        return logits

    def predict_proba(self, inputs: Sequence[Any], batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Calibrated sigmoid scores, shape ``[len(inputs), n_categories]``, columns in taxonomy order."""
        logits = self.predict_logits(inputs, batch_size=batch_size, progress=progress)
        return scores_from_logits(logits, self.temperature_vector)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Boolean label matrix: score >= the category's threshold."""
        return scores >= self.threshold_vector

    def predict(self, inputs: Sequence[Any], batch_size: int = 256, progress: bool = False) -> list[Prediction]:
        scores = self.predict_proba(inputs, batch_size=batch_size, progress=progress)
        hits = self.decide(scores)
        ids = self.taxonomy.ids
        return [
            Prediction(
                scores={c: float(s) for c, s in zip(ids, row)},
                labels=[c for c, hit in zip(ids, row_hits) if hit],
            )
            for row, row_hits in zip(scores, hits)
        ]

    def __repr__(self) -> str:
        return f"Classifier({self.model.registry_name}, categories={self.taxonomy.ids}, device={self.device})"


def load(directory: str | Path, device: str | torch.device | None = None) -> Classifier:
    """Load a checkpoint directory as a :class:`Classifier` (safetensors + JSON, no pickle)."""
    return Classifier.load(directory, device)
