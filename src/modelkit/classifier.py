"""The inference object users hold: ``modelkit.load(path)`` -> :class:`Classifier`.

A classifier is a processor (raw input -> batch), a model (batch -> logits) and a policy
(logits -> calibrated scores -> decisions), run by a :class:`~modelkit.inference.Runner` that
owns batching, the device and autocast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import from_dict
from .data.records import DataConfig
from .inference.runner import Backend, OnError, Precision, Runner, check_input_list, chunked
from .models.base import ModerationModel
from .outputs import Outputs, Prediction, postprocess
from .policy import Policy
from .processing import Processor
from .taxonomy import Taxonomy


class Classifier:
    """A trained model with its processor, taxonomy, thresholds and temperatures.

    >>> clf = modelkit.load("runs/text-cold")
    >>> clf.predict(["你这个人真恶心", "今天天气不错"])[0].labels
    ['abuse']
    """

    def __init__(
        self,
        model: ModerationModel,
        processor: Processor,
        policy: Policy,
        device: str | torch.device | None = None,
        metrics: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        calibration: dict[str, Any] | None = None,
        precision: Precision = "auto",
        backend: Backend = "auto",
    ) -> None:
        if model.num_labels != len(policy.taxonomy):
            raise ValueError(f"model scores {model.num_labels} categories, the policy has {len(policy.taxonomy)}")
        self.model = model.eval()
        self.processor = processor.eval()
        self.policy = policy
        self.metrics = metrics or {}
        self.extra = extra or {}
        self.calibration = calibration or {}
        self.runner = Runner(self.model, self.processor, device, precision, backend)
        # The checkpoint directory this classifier was loaded from (None when built in memory).
        self.source_dir: Path | None = None

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device | None = None,
             precision: Precision = "auto", backend: Backend = "auto") -> Classifier:
        ckpt = load_checkpoint(directory)
        classifier = cls(ckpt.model, ckpt.processor, ckpt.policy, device, ckpt.metrics, ckpt.extra, ckpt.calibration,
                         precision, backend)
        classifier.source_dir = Path(directory)
        return classifier

    def to_checkpoint(self) -> Checkpoint:
        return Checkpoint(self.model, self.processor, self.policy, self.metrics, self.extra, self.calibration)

    def save(self, directory: str | Path) -> Path:
        """Write the checkpoint into ``directory``, keeping the folder's other files (see
        :func:`~modelkit.checkpoint.save_checkpoint`)."""
        return save_checkpoint(directory, self.to_checkpoint())

    def fingerprint(self) -> str:
        """The checkpoint's config.json digest (it lists the SHA-256 of every other file), or for a
        classifier built in memory, a digest of its configs and weights."""
        if self.source_dir is not None:
            return hashlib.sha256((self.source_dir / "config.json").read_bytes()).hexdigest()
        digest = hashlib.sha256()
        digest.update(json.dumps([self.model.checkpoint_config(), self.processor.to_config(), self.policy.thresholds,
                                  self.policy.temperature_vector.tolist()], sort_keys=True, default=str).encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
        return digest.hexdigest()

    @property
    def device(self) -> torch.device:
        return self.runner.device

    @property
    def taxonomy(self) -> Taxonomy:
        return self.policy.taxonomy

    @property
    def categories(self) -> list[str]:
        return self.taxonomy.ids

    @property
    def thresholds(self) -> dict[str, float]:
        return self.policy.thresholds

    @property
    def threshold_vector(self) -> np.ndarray:
        return self.policy.threshold_vector

    def predict_logits(self, inputs: Sequence[Any], batch_size: int = 256, progress: bool = False,
                       num_workers: int = 0) -> np.ndarray:
        """Raw logits before calibration, shape ``[len(inputs), n_categories]``."""
        return self.runner.run(inputs, batch_size=batch_size, num_workers=num_workers, progress=progress).logits

    def outputs(self, inputs: Sequence[Any], batch_size: int = 256, progress: bool = False, num_workers: int = 0,
                on_error: OnError = "raise") -> Outputs:
        """Everything the model says about ``inputs``, by column (:class:`~modelkit.outputs.Outputs`):
        what :meth:`predict` and ``evaluate`` are made from."""
        result = self.runner.run(inputs, batch_size=batch_size, num_workers=num_workers, progress=progress,
                                 on_error=on_error)
        return postprocess(result, self.policy, self.processor)

    def stream_outputs(self, chunks: Iterable[Sequence[Any]], batch_size: int = 256, num_workers: int = 0,
                       max_batch_tokens: int | None = None,
                       progress: Callable[[int], None] | None = None) -> Iterator[Outputs]:
        """:meth:`outputs` of each chunk of inputs, in order, an unreadable input becoming an error
        row; one set of decoding workers serves every chunk (the batch engine's loop)."""
        for result in self.runner.stream(chunks, batch_size, num_workers, max_batch_tokens, progress=progress):
            yield postprocess(result, self.policy, self.processor)

    def predict_proba(self, inputs: Sequence[Any], batch_size: int = 256, progress: bool = False,
                      num_workers: int = 0) -> np.ndarray:
        """Calibrated sigmoid scores, shape ``[len(inputs), n_categories]``, columns in taxonomy order."""
        return self.policy.scores(self.predict_logits(inputs, batch_size, progress, num_workers))

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Boolean label matrix: score >= the category's threshold."""
        return self.policy.decide(scores)

    def predict(self, inputs: Sequence[Any], batch_size: int = 256, progress: bool = False, num_workers: int = 0,
                on_error: OnError = "raise") -> list[Prediction]:
        """One :class:`Prediction` per input. ``num_workers`` decode inputs in worker processes
        (images); ``on_error="record"`` turns an input that cannot be read into a Prediction with
        ``error`` set instead of raising."""
        return self.outputs(inputs, batch_size, progress, num_workers, on_error).predictions()

    def predict_stream(self, inputs: Iterable[Any], batch_size: int = 256, num_workers: int = 0,
                       chunk_size: int = 4096, max_batch_tokens: int | None = None) -> Iterator[Prediction]:
        """Predictions for an iterable of any length, lazily and in order, in bounded memory:
        inputs are read ``chunk_size`` at a time. An input that cannot be read yields a
        Prediction with ``error`` set. For files and resumable runs see
        :func:`modelkit.predict_files`."""
        check_input_list(inputs)
        for outputs in self.stream_outputs(chunked(inputs, chunk_size), batch_size, num_workers, max_batch_tokens):
            yield from outputs.predictions()

    def data_config(self, **overrides: Any) -> DataConfig:
        """The field names and label mapping the checkpoint was trained with, plus ``overrides``
        (None values are ignored): how ``evaluate``, ``calibrate`` and the batch engine read data."""
        stored = dict(self.extra.get("data") or {})
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if {"input_field", "inputs"} & set(overrides):  # a new input field replaces the stored ones
            stored.pop("inputs", None)
            stored.pop("input_field", None)
        stored.update(overrides)
        if "inputs" not in stored and "input_field" not in stored:  # a checkpoint built without a recipe
            stored["inputs"] = {self.processor.modality: self.processor.modality}
        known = {f.name for f in dataclasses.fields(DataConfig)}
        return from_dict(DataConfig, {k: v for k, v in stored.items() if k in known}, where="data")

    def __repr__(self) -> str:
        return (f"Classifier({self.model.registry_name}, processor={self.processor.name}, "
                f"categories={self.categories}, device={self.device})")


def load(directory: str | Path, device: str | torch.device | None = None, precision: Precision = "auto",
         backend: Backend = "auto") -> Classifier:
    """Load a checkpoint directory as a :class:`Classifier` (safetensors + JSON, no pickle).

    ``backend="auto"`` runs image CNNs in ONNX Runtime on a CPU (several times faster) and
    everything else in PyTorch; ``"torch"`` or ``"onnx"`` force one."""
    return Classifier.load(directory, device, precision, backend)
