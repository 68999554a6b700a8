"""Batched, device-placed scoring of raw inputs: processor -> batches -> model -> logits.

The device rule here is the one the trainer uses too: an accelerator (CUDA, MPS, ...) when
torch sees one, else the CPU.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import ConfigError
from ..models.base import ModerationModel
from ..processing import InputError, Processor, check_inputs
from .onnx import exported_session, onnxruntime_available

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


class _Requests:
    """The batch sampler of a persistent loader: the batches of the chunk being scored, each a
    list of ``(position, raw value)`` pairs. The values themselves travel to the workers, so the
    workers outlive chunks and never hold the input."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, Any]]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _Passthrough(Dataset):
    def __getitem__(self, request: tuple[int, Any]) -> tuple[int, Any]:
        return request


@dataclass
class _Prepared:
    """One batch as a worker leaves it: the model input of the inputs that decoded, and why the
    others did not."""

    positions: list[int]
    evidence: list[dict[str, Any] | None]
    times: list[np.ndarray | None]
    failed: list[tuple[int, str]]
    batch: dict[str, torch.Tensor] | None

    def pin_memory(self) -> _Prepared:
        """Called by the loader's pinning thread on CUDA, so host-to-device copies run async."""
        if self.batch is not None:
            self.batch = {name: tensor.pin_memory() for name, tensor in self.batch.items()}
        return self


def _prepare(processor: Processor, requests: list[tuple[int, Any]]) -> _Prepared:
    """Decode and collate one batch (in a DataLoader worker); a bad input becomes its message."""
    prepared = _Prepared([], [], [], [], None)
    items = []
    for position, value in requests:
        try:
            item = processor.decode(value)
        except (InputError, TypeError) as err:
            prepared.failed.append((position, str(err)))
            continue
        prepared.positions.append(position)
        prepared.evidence.append(processor.evidence(item))
        prepared.times.append(processor.timeline(item))
        items.append(item)
    if items:
        prepared.batch = processor.collate(items)
    return prepared


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
        self._session: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None
        self._onnx_failed = False
        self._compiled: Any = None

    def compile(self) -> None:
        """Run the PyTorch model through ``torch.compile`` (the first batches wait for compilation)."""
        self._compiled = torch.compile(self.model)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Batches come pinned from the loader on CUDA, so the copies overlap the previous batch.
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

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

    def plan_batches(self, values: Sequence[Any], batch_size: int, max_batch_tokens: int | None = None
                     ) -> list[list[int]]:
        """Positions of ``values`` grouped into batches. Inputs the processor can size (texts) are
        sorted by length, so padded models waste little compute, and a batch closes when it
        would pass ``max_batch_tokens`` padded units (its size times its longest input)."""
        batch_size = self.processor.batch_size(batch_size)
        lengths = [self.processor.length(value) for value in values]
        if not values or any(length is None for length in lengths):
            return [list(range(start, min(start + batch_size, len(values))))
                    for start in range(0, len(values), batch_size)]
        batches: list[list[int]] = []
        current: list[int] = []
        for position in np.argsort(lengths, kind="stable").tolist():
            padded = (len(current) + 1) * max(lengths[position], 1)
            if current and (len(current) == batch_size or (max_batch_tokens and padded > max_batch_tokens)):
                batches.append(current)
                current = []
            current.append(position)
        if current:
            batches.append(current)
        return batches

    def _forward_parts(self, batch: dict[str, torch.Tensor]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Input logits, and each input's part logits."""
        batch = self._to_device(batch)
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
                return self._session(batch).numpy()
        batch = self._to_device(batch)
        with self._autocast():
            return (self._compiled or self.model)(**batch).float().cpu().numpy()

    def _values(self, chunk: Sequence[Any], failed: dict[int, str], strict: bool) -> list[tuple[int, Any]]:
        """``(position, value)`` of each raw input whose value the processor can find."""
        values = []
        for position, raw in enumerate(chunk):
            try:
                values.append((position, self.processor.value_of(raw)))
            except TypeError as err:
                if strict:
                    raise TypeError(f"input {position}: {err}") from None
                failed[position] = str(err)
        return values

    def stream(self, chunks: Iterable[Sequence[Any]], batch_size: int = 256, num_workers: int = 0,
               max_batch_tokens: int | None = None, on_error: OnError = "record",
               progress: Callable[[int], None] | None = None) -> Iterator[RunResult]:
        """Score each chunk of raw inputs; one :class:`RunResult` per chunk, in input order.

        One loader serves the whole stream: ``num_workers`` processes decode and collate batches
        (images, n-gram features) while the model runs, and live across chunks, so a chunk costs
        no worker start-up. ``progress`` is called with the number of inputs of each batch done.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if on_error not in ("raise", "record"):
            raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
        if max_batch_tokens is None and self.device.type == "cpu":
            max_batch_tokens = self.processor.cpu_batch_tokens
        requests = _Requests()
        loader = DataLoader(_Passthrough(), batch_sampler=requests, num_workers=num_workers,
                            collate_fn=partial(_prepare, self.processor), persistent_workers=num_workers > 0,
                            pin_memory=self.device.type == "cuda")
        with torch.inference_mode():
            for chunk in chunks:
                failed: dict[int, str] = {}
                values = self._values(chunk, failed, strict=on_error == "raise")
                if on_error == "raise":
                    check_inputs(self.processor.modality, [value for _, value in values])
                plan = self.plan_batches([value for _, value in values], batch_size, max_batch_tokens)
                requests.batches = [[values[i] for i in batch] for batch in plan]
                result = RunResult(np.full((len(chunk), self.model.num_labels), np.nan, dtype=np.float32),
                                   [failed.get(i) for i in range(len(chunk))], [None] * len(chunk),
                                   [None] * len(chunk))
                if progress is not None and failed:
                    progress(len(failed))
                for prepared in loader if requests.batches else ():
                    self._score(prepared, result, on_error)
                    if progress is not None:
                        progress(len(prepared.positions) + len(prepared.failed))
                yield result

    def _score(self, prepared: _Prepared, result: RunResult, on_error: OnError) -> None:
        for position, error in prepared.failed:
            if on_error == "raise":
                raise InputError(f"input {position}: {error}")
            result.errors[position] = error
        if prepared.batch is None:
            return
        index = prepared.positions
        for position, evidence in zip(index, prepared.evidence):
            result.evidence[position] = evidence
        if self.model.scores_parts:
            result.logits[index], parts = self._forward_parts(prepared.batch)
            for position, times, part_logits in zip(index, prepared.times, parts):
                result.timelines[position] = Timeline(times, part_logits)
        else:
            result.logits[index] = self._forward(prepared.batch)

    def run(self, inputs: Sequence[Any], batch_size: int = 256, num_workers: int = 0, progress: bool = False,
            on_error: OnError = "raise", max_batch_tokens: int | None = None) -> RunResult:
        """Score ``inputs``. A bad input raises (TypeError for a wrong type, InputError for one that
        cannot be decoded) naming its position, or with ``on_error="record"`` gets a NaN row and
        its message in :attr:`RunResult.errors`."""
        if isinstance(inputs, (str, bytes)):
            raise TypeError(f"expected a list of inputs, got a single {type(inputs).__name__}; wrap it in a list")
        inputs = list(inputs)
        # Starting workers costs about 0.4 s: not worth it for a single batch.
        workers = num_workers if len(inputs) > self.processor.batch_size(batch_size) else 0
        with tqdm(total=len(inputs), unit="item", disable=not progress, desc="predict") as bar:
            return next(self.stream([inputs], batch_size, workers, max_batch_tokens, on_error, bar.update))

    def logits(self, inputs: Sequence[Any], batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Raw logits ``[len(inputs), num_labels]``; a bad input raises, naming its position."""
        return self.run(inputs, batch_size=batch_size, progress=progress).logits
