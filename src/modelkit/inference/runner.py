"""Batched, device-placed scoring of raw inputs: processor -> batches -> model -> logits.

The device rule here is the one the trainer uses too: an accelerator (CUDA, MPS, ...) when
torch sees one, else the CPU.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import ConfigError
from ..models.base import ModerationModel
from ..processing import InputError, Processor, check_inputs
from .onnx import OnnxSession, exported_session, onnxruntime_available

Precision = Literal["auto", "fp32", "bf16", "fp16"]
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def accelerator_available() -> bool:
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def select_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"``: the accelerator torch sees, else the CPU. Otherwise the named
    device (``cpu``, ``cuda``, ``cuda:1``, ``mps``), refused with a clear error when it does not
    exist here."""
    if device is None or str(device) == "auto":
        if accelerator_available() and hasattr(torch, "accelerator"):
            return torch.device(torch.accelerator.current_accelerator())
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {device!r}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if chosen.type == "cpu":
        return chosen
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {device!r}: no CUDA device is available on this machine (use cpu or auto)")
        if chosen.index is not None and chosen.index >= count:
            raise ConfigError(f"device {device!r}: only {count} CUDA device(s) here (cuda:0 .. cuda:{count - 1})")
        return chosen
    if chosen.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"device {device!r}: MPS is not available on this machine (use cpu or auto)")
    return chosen


Backend = Literal["auto", "torch", "onnx"]
OnError = Literal["raise", "record"]


@dataclass
class Timeline:
    """The parts of one input a model scored (video frames): their times and logits ``[parts, C]``."""

    times: np.ndarray
    logits: np.ndarray


@dataclass
class RunResult:
    """Per-input logits (NaN rows where decoding failed), the failure messages, evidence, and for
    models that score parts of inputs, each input's :class:`Timeline`."""

    logits: np.ndarray
    errors: list[str | None]
    evidence: list[dict[str, Any] | None]
    timelines: list[Timeline | None]


class _Decoded(Dataset):
    """Decodes inputs in DataLoader workers; a bad one becomes its error message, not a crash."""

    def __init__(self, values: list[Any], processor: Processor) -> None:
        self.values, self.processor = values, processor

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: int) -> tuple[int, Any, str | None]:
        try:
            return index, self.processor.decode(self.values[index]), None
        except (InputError, TypeError) as err:
            return index, None, str(err)


class Runner:
    """Scores raw inputs with a model and its processor, in batches, on one device.

    Inputs are batched by size when the processor knows one (text length), so padded models
    waste little compute; results come back in input order. ``num_workers`` decode in
    DataLoader worker processes (images). ``precision="auto"`` runs bf16 autocast on CUDA and
    full precision elsewhere. ``backend="auto"`` runs models that say they are faster that way
    (convolutional image models) in ONNX Runtime on the CPU, everything else in PyTorch.
    """

    def __init__(self, model: ModerationModel, processor: Processor, device: str | torch.device | None = None,
                 precision: Precision = "auto", backend: Backend = "auto") -> None:
        if precision not in ("auto", "fp32", *_AUTOCAST):
            raise ConfigError(f"precision {precision!r}: expected auto, fp32, bf16 or fp16")
        if backend not in ("auto", "torch", "onnx"):
            raise ConfigError(f"backend {backend!r}: expected auto, torch or onnx")
        self.device = select_device(device)
        if backend == "onnx" and (self.device.type != "cpu" or not onnxruntime_available()):
            raise ConfigError("backend onnx: needs the CPU device and onnxruntime (pip install 'modelkit[onnx]')")
        self.model = model.to(self.device).eval()
        self.model.allow_onnx_parts(self.device.type == "cpu" and backend != "torch" and onnxruntime_available())
        self.processor = processor
        self.precision = precision
        self.backend = backend
        self._session: OnnxSession | None = None
        self._onnx_failed = False

    @property
    def uses_onnx(self) -> bool:
        if self.backend == "auto":
            return (self.device.type == "cpu" and self.model.onnx_on_cpu and not self._onnx_failed
                    and onnxruntime_available())
        return self.backend == "onnx" and not self._onnx_failed

    def _autocast(self):
        precision = self.precision
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        if precision == "fp32":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=_AUTOCAST[precision])

    def _order(self, inputs: list[Any]) -> np.ndarray:
        lengths = [self.processor.length(x) for x in inputs]
        if any(length is None for length in lengths):
            return np.arange(len(inputs))
        return np.argsort(lengths, kind="stable")

    def _forward_parts(self, batch: dict[str, torch.Tensor]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Input logits, and each input's part logits."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with self._autocast():
            logits, part_logits, rows = self.model(**batch, with_parts=True)
        counts = torch.bincount(rows, minlength=len(logits)).tolist()
        parts = [part.float().cpu().numpy() for part in torch.split(part_logits, counts)]
        return logits.float().cpu().numpy(), parts

    def _forward(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        if self.uses_onnx:
            if self._session is None:
                self._session = exported_session(self.model, batch)
                if self._session is None:
                    if self.backend == "onnx":
                        raise ConfigError("backend onnx: this model does not export to ONNX (see the log)")
                    self._onnx_failed = True
            if self._session is not None:
                return self._session(batch)
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with self._autocast():
            return self.model(**batch).float().cpu().numpy()

    @torch.inference_mode()
    def run(self, inputs: Sequence[Any], batch_size: int = 256, num_workers: int = 0, progress: bool = False,
            on_error: OnError = "raise") -> RunResult:
        """Score ``inputs``. A bad input raises (TypeError for a wrong type, InputError for one that
        cannot be decoded) naming its position, or with ``on_error="record"`` gets a NaN row and
        its message in :attr:`RunResult.errors`."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if on_error not in ("raise", "record"):
            raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
        if isinstance(inputs, (str, bytes)):
            raise TypeError(f"expected a list of inputs, got a single {type(inputs).__name__}; wrap it in a list")
        values = []
        for position, raw in enumerate(inputs):
            try:
                values.append(self.processor.value_of(raw))
            except TypeError as err:
                raise TypeError(f"input {position}: {err}") from None
        if on_error == "raise":
            values = check_inputs(self.processor.modality, values)
        result = RunResult(np.full((len(values), self.model.num_labels), np.nan, dtype=np.float32),
                           [None] * len(values), [None] * len(values), [None] * len(values))
        parts_scored = self.model.scores_parts
        order = self._order(values)
        batch_size = self.processor.batch_size(batch_size)
        batches = [order[start : start + batch_size].tolist() for start in range(0, len(order), batch_size)]
        # Starting workers costs about 0.4 s: not worth it for a single batch.
        workers = num_workers if len(batches) > 1 else 0
        loader = DataLoader(_Decoded(values, self.processor), batch_sampler=batches, num_workers=workers,
                            collate_fn=list)
        with tqdm(total=len(values), unit="item", disable=not progress, desc="predict") as bar:
            for decoded in loader:
                index, items = [], []
                for position, item, error in decoded:
                    if error is None:
                        index.append(position)
                        items.append(item)
                        result.evidence[position] = self.processor.evidence(item)
                    elif on_error == "raise":
                        raise InputError(f"input {position}: {error}")
                    else:
                        result.errors[position] = error
                if items and parts_scored:
                    result.logits[index], parts = self._forward_parts(self.processor.collate(items))
                    for position, item, part_logits in zip(index, items, parts):
                        result.timelines[position] = Timeline(self.processor.timeline(item), part_logits)
                elif items:
                    result.logits[index] = self._forward(self.processor.collate(items))
                bar.update(len(decoded))
        return result

    def logits(self, inputs: Sequence[Any], batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Raw logits ``[len(inputs), num_labels]``; a bad input raises, naming its position."""
        return self.run(inputs, batch_size=batch_size, progress=progress).logits
