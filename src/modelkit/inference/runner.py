"""Batched, device-placed scoring of raw inputs: processor -> batches -> model -> logits.

The device rule here is the one the trainer uses too: an accelerator (CUDA, MPS, ...) when
torch sees one, else the CPU.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Literal, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import ConfigError
from ..models.base import ModerationModel
from ..processing import Processor, check_inputs

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


class Runner:
    """Scores raw inputs with a model and its processor, in batches, on one device.

    Inputs are batched by size when the processor knows one (text length), so padded models
    waste little compute; results come back in input order. ``precision="auto"`` runs bf16
    autocast on CUDA and full precision elsewhere.
    """

    def __init__(self, model: ModerationModel, processor: Processor, device: str | torch.device | None = None,
                 precision: Precision = "auto") -> None:
        if precision not in ("auto", "fp32", *_AUTOCAST):
            raise ConfigError(f"precision {precision!r}: expected auto, fp32, bf16 or fp16")
        self.device = select_device(device)
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.precision = precision

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

    @torch.inference_mode()
    def logits(self, inputs: Sequence[Any], batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Raw logits ``[len(inputs), num_labels]``; a bad input raises TypeError naming its position."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if isinstance(inputs, (str, bytes)):
            raise TypeError(f"expected a list of inputs, got a single {type(inputs).__name__}; wrap it in a list")
        values = []
        for position, raw in enumerate(inputs):
            try:
                values.append(self.processor.value_of(raw))
            except TypeError as err:
                raise TypeError(f"input {position}: {err}") from None
        values = check_inputs(self.processor.modality, values)
        logits = np.zeros((len(values), self.model.num_labels), dtype=np.float32)
        order = self._order(values)
        with tqdm(total=len(values), unit="item", disable=not progress, desc="predict") as bar:
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                batch = self.processor([values[i] for i in index])
                batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                with self._autocast():
                    logits[index] = self.model(**batch).float().cpu().numpy()
                bar.update(len(index))
        return logits
