"""Batched, device-placed scoring of raw inputs: processor -> batches -> model -> logits.

The device rule here is the one the trainer uses too: an accelerator (CUDA, MPS, ...) when
torch sees one, else the CPU.
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext
from collections.abc import Mapping
import multiprocessing as mp
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm.auto import tqdm

from ..config import ConfigError
from ..models.base import ModerationModel
from ..processing import InputError, Processor, check_input
from ..models.onnx_graph import onnxruntime_available
from .onnx import exported_session

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
NON_FINITE = "the model gave a non-finite score (NaN or infinity) for this input; it is not scored"
OnError = Literal["raise", "record"]


@dataclass
class Parts:
    """The parts of one input a model scored (a video's frames), where each lies in the input (in
    the processor's unit: seconds of a video, see :meth:`~modelkit.processing.Processor.part_positions`)
    and their logits ``[parts, C]``."""

    positions: np.ndarray
    logits: np.ndarray


@dataclass
class RunResult:
    """Per-input logits (NaN rows where decoding failed), the failure messages, evidence, and for
    processors that place the parts of their inputs, each input's :class:`Parts`."""

    logits: np.ndarray
    errors: list[str | None]
    evidence: list[dict[str, Any] | None]
    parts: list[Parts | None]


def check_input_list(inputs: Any) -> None:
    """A TypeError saying what a list of inputs is, unless ``inputs`` is one (a single text or
    record is the mistake most often made)."""
    if isinstance(inputs, (str, bytes, Mapping)):
        raise TypeError(f"expected a list of inputs, got a single {type(inputs).__name__}; wrap it in a list")
    if not isinstance(inputs, Iterable):
        raise TypeError(f"expected a list of inputs, got {'None' if inputs is None else type(inputs).__name__}")


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _check_whole_number(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


class _Pieces(IterableDataset):
    """The dataset of a persistent loader: each worker takes the inputs dealt to it through its
    queue (``(position, raw value)``, ``None`` ending a chunk), cuts each into the processor's
    pieces as it decodes them, and packs the pieces into batches. An input of any size (an hour
    of video, a book) passes through a worker a batch at a time, so memory never holds more
    than a batch of it; the values travel to the workers, which outlive chunks and never hold
    the whole input."""

    def __init__(self, processor: Processor, workers: int, batch_size: int, max_batch_tokens: int | None) -> None:
        self.processor, self.batch_size, self.max_batch_tokens = processor, batch_size, max_batch_tokens
        # mp.Queue, not SimpleQueue: a chunk's requests are all put before any worker reads.
        self.queues = [mp.get_context("fork").Queue() for _ in range(workers)]
        for queue in self.queues:  # a stream abandoned half-way must not keep the process from exiting
            queue.cancel_join_thread()
        self.local: list[tuple[int, Any]] = []  # the requests of the chunk, without workers

    def deal(self, requests: list[tuple[int, Any]]) -> None:
        """Hand out a chunk's requests, in turn, so every worker gets inputs of every size."""
        if not self.queues:
            self.local = requests
            return
        for index, queue in enumerate(self.queues):
            for request in requests[index::len(self.queues)]:
                queue.put(request)
            queue.put(None)

    def _requests(self) -> Iterator[tuple[int, Any]]:
        info = get_worker_info()
        if info is None:
            yield from self.local
            return
        queue = self.queues[info.id]
        while (request := queue.get()) is not None:
            yield request

    def __iter__(self) -> Iterator[_Prepared]:
        processor = self.processor
        cap = processor.max_batch_units
        prepared, items, units, longest = _Prepared(), [], 0, 0
        for position, value in self._requests():
            try:
                for item, evidence in processor.pieces(value):
                    size, length = processor.piece_units(item), processor.length(item) or 0
                    full = items and (len(items) == self.batch_size or (cap is not None and units + size > cap) or
                                      (self.max_batch_tokens and (len(items) + 1) * max(longest, length, 1)
                                       > self.max_batch_tokens))
                    if full:
                        yield prepared.close(processor, items)
                        prepared, items, units, longest = _Prepared(), [], 0, 0
                    items.append(item)
                    prepared.owners.append(position)
                    prepared.evidence.append(evidence)
                    prepared.positions.append(processor.part_positions(item))
                    units, longest = units + size, max(longest, length)
                prepared.ended.append(position)
            except (InputError, TypeError) as err:
                prepared.failed.append((position, str(err)))
        if items or prepared.ended or prepared.failed:
            yield prepared.close(processor, items)


@dataclass
class _Prepared:
    """One batch of pieces as a worker leaves it: the model input, the input each piece is part of
    and what it shows, the inputs whose last piece came with it or before, and the inputs that
    could not be read (why)."""

    owners: list[int] = field(default_factory=list)
    evidence: list[dict[str, Any] | None] = field(default_factory=list)
    positions: list[np.ndarray | None] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    batch: dict[str, torch.Tensor] | None = None

    def close(self, processor: Processor, items: list[Any]) -> _Prepared:
        if items:
            self.batch = processor.collate(items)
        return self

    def pin_memory(self) -> _Prepared:
        """Called by the loader's pinning thread on CUDA, so host-to-device copies run async."""
        if self.batch is not None:
            self.batch = {name: tensor.pin_memory() for name, tensor in self.batch.items()}
        return self


@dataclass
class _Partial:
    """An input whose pieces span batches: its part logits, part positions and evidence so far."""

    logits: list[np.ndarray] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)
    evidence: list[dict[str, Any] | None] = field(default_factory=list)


def _onnx_inner_backend(inner: ModerationModel, batch: dict[str, torch.Tensor]) -> Callable | None:
    """An inner model that says it runs faster in ONNX Runtime, exported on its first batch and
    checked against PyTorch (None: it stays in PyTorch)."""
    if not inner.onnx_on_cpu:
        return None
    exported = exported_session(inner, batch)
    # A closure, not a module attribute: an attribute would add the graph to the model's weights.
    return None if exported is None else (lambda frames: exported(**frames))


class Runner:
    """Scores raw inputs with a model and its processor, in batches, on one device.

    The processor cuts each input into pieces (one for most; windows of frames for a video,
    spans of a long text), the model scores the parts of every piece (text windows, frames)
    and pools an input's parts into its logits once its last piece is in. Inputs are batched by
    size when the processor knows one (text length), so padded models waste little compute;
    results come back in input order. ``num_workers`` decode in DataLoader worker processes.
    ``precision="auto"`` runs bf16 autocast on CUDA and full precision elsewhere.
    ``backend="auto"`` runs models that say they are faster that way (convolutional image
    models) in ONNX Runtime on the CPU, everything else in PyTorch.
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
        # Inner models that run faster in ONNX Runtime (a video model's CNN frame model) run there on a CPU.
        inner_onnx = self.device.type == "cpu" and backend != "torch" and onnxruntime_available()
        self.model.use_inner_backend(_onnx_inner_backend if inner_onnx else None)
        self.processor = processor
        self.precision = precision
        self.backend = backend
        self._session: ModerationModel | None = None
        self._onnx_failed = False
        self._compiled: Any = None

    def compile(self) -> None:
        """Run the PyTorch model through ``torch.compile`` (the first batches wait for compilation)."""
        self._compiled = torch.compile(self.model.part_logits)

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

    def _part_logits(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's part logits for a batch of pieces (float32) and the piece of each part."""
        if self.uses_onnx:
            if self._session is None:
                self._session = exported_session(self.model, batch)
                if self._session is None:
                    if self.backend == "onnx":
                        raise ConfigError("backend onnx: this model does not export to ONNX (see the log)")
                    self._onnx_failed = True
            if self._session is not None:
                logits, rows = self._session.part_logits(**batch)
                return logits.float(), rows
        batch = self._to_device(batch)
        with self._autocast():
            logits, rows = (self._compiled or self.model.part_logits)(**batch)
        return logits.float(), rows

    def _pool(self, logits: torch.Tensor, rows: torch.Tensor) -> np.ndarray:
        with self._autocast():
            return self.model.pool_parts(logits.to(self.device), rows.to(self.device)).float().cpu().numpy()

    def _values(self, chunk: Sequence[Any], failed: dict[int, str], strict: bool) -> list[tuple[int, Any]]:
        """``(position, value)`` of each raw input whose value the processor can find, longest last
        when the processor can size them (similar sizes batch together). ``strict``: the first
        input that is not one of the modality's raises, naming its position."""
        values = []
        for position, raw in enumerate(chunk):
            try:
                value = self.processor.value_of(raw)
                problem = check_input(self.processor.modality, value) if strict else None
                if problem is not None:
                    raise TypeError(problem)
            except TypeError as err:
                if strict:
                    raise TypeError(f"input {position}: {err}") from None
                failed[position] = str(err)
            else:
                values.append((position, value))
        lengths = [self.processor.length(value) for _, value in values]
        if values and all(length is not None for length in lengths):
            values = [values[i] for i in np.argsort(lengths, kind="stable")]
        return values

    def stream(self, chunks: Iterable[Sequence[Any]], batch_size: int = 256, num_workers: int = 0,
               max_batch_tokens: int | None = None, on_error: OnError = "record",
               progress: Callable[[int], None] | None = None) -> Iterator[RunResult]:
        """Score each chunk of raw inputs; one :class:`RunResult` per chunk, in input order.

        One loader serves the whole stream: ``num_workers`` processes decode and collate batches
        (images, n-gram features) while the model runs, and live across chunks, so a chunk costs
        no worker start-up. A batch closes at ``batch_size`` pieces, at the processor's
        :attr:`~modelkit.processing.Processor.max_batch_units`, or when its size times its longest
        piece would pass ``max_batch_tokens``. ``progress`` is called with the number of inputs
        finished.
        """
        _check_whole_number("batch_size", batch_size, 1)
        _check_whole_number("num_workers", num_workers, 0)
        if on_error not in ("raise", "record"):
            raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
        if max_batch_tokens is None and self.device.type == "cpu":
            max_batch_tokens = self.processor.cpu_batch_tokens
        pieces = _Pieces(self.processor, num_workers, batch_size, max_batch_tokens)
        loader = DataLoader(pieces, batch_size=None, num_workers=num_workers, persistent_workers=num_workers > 0,
                            pin_memory=self.device.type == "cuda",
                            multiprocessing_context="fork" if num_workers else None)
        with torch.inference_mode():
            for chunk in chunks:
                failed: dict[int, str] = {}
                values = self._values(chunk, failed, strict=on_error == "raise")
                result = RunResult(np.full((len(chunk), self.model.num_labels), np.nan, dtype=np.float32),
                                   [failed.get(i) for i in range(len(chunk))], [None] * len(chunk),
                                   [None] * len(chunk))
                if progress is not None and failed:
                    progress(len(failed))
                if values:
                    pieces.deal(values)
                    partial: dict[int, _Partial] = {}
                    for prepared in loader:
                        self._score(prepared, result, partial, on_error)
                        if progress is not None:
                            progress(len(prepared.ended) + len(prepared.failed))
                yield result

    def _score(self, prepared: _Prepared, result: RunResult, partial: dict[int, _Partial], on_error: OnError) -> None:
        """Score a batch of pieces into ``result``: inputs that are whole in it are pooled at once,
        pieces of longer inputs wait in ``partial`` until their input's last piece comes."""
        if prepared.batch is not None:
            logits, rows = self._part_logits(prepared.batch)
            ended = set(prepared.ended)
            placed = any(positions is not None for positions in prepared.positions)
            if not placed and all(owner in ended and owner not in partial for owner in prepared.owners):
                # The common case: every input whole in this batch, pooled in one call. Pieces
                # come grouped by input; number the inputs in that order for the pooling.
                grouped: dict[int, list[dict[str, Any] | None]] = {}
                for owner, evidence in zip(prepared.owners, prepared.evidence):
                    grouped.setdefault(owner, []).append(evidence)
                inputs = list(grouped)
                numbers = {owner: number for number, owner in enumerate(inputs)}
                local = torch.tensor([numbers[owner] for owner in prepared.owners], dtype=torch.int64)
                result.logits[inputs] = self._pool(logits, local.to(rows.device)[rows])
                for owner, evidence in grouped.items():
                    result.evidence[owner] = self.processor.merge_evidence(evidence)
            else:
                counts = torch.bincount(rows.cpu(), minlength=len(prepared.owners)).tolist()
                for piece, part in enumerate(torch.split(logits.cpu(), counts)):
                    entry = partial.setdefault(prepared.owners[piece], _Partial())
                    entry.logits.append(part.numpy())
                    entry.evidence.append(prepared.evidence[piece])
                    if prepared.positions[piece] is not None:
                        entry.positions.append(prepared.positions[piece])
        for position in prepared.ended:
            entry = partial.pop(position, None)
            if entry is not None:
                self._finish(position, entry, result)
        for position, error in prepared.failed:
            partial.pop(position, None)
            if on_error == "raise":
                raise InputError(f"input {position}: {error}")
            result.errors[position] = error
        # An overflow in the model is no verdict: a NaN compares below every threshold and would pass.
        for position in set(prepared.ended) - {p for p, _ in prepared.failed}:
            if not np.isfinite(result.logits[position]).all():
                if on_error == "raise":
                    raise InputError(f"input {position}: {NON_FINITE}")
                result.errors[position] = NON_FINITE

    def _finish(self, position: int, entry: _Partial, result: RunResult) -> None:
        """Pool the parts of an input whose last piece has been scored."""
        parts = np.concatenate(entry.logits)
        result.logits[position] = self._pool(torch.from_numpy(parts), torch.zeros(len(parts), dtype=torch.int64))[0]
        result.evidence[position] = self.processor.merge_evidence(entry.evidence)
        if entry.positions:
            result.parts[position] = Parts(np.concatenate(entry.positions), parts)

    def run(self, inputs: Sequence[Any], batch_size: int = 256, num_workers: int = 0, progress: bool = False,
            on_error: OnError = "raise", max_batch_tokens: int | None = None) -> RunResult:
        """Score ``inputs``. A bad input raises (TypeError for a wrong type, InputError for one that
        cannot be decoded) naming its position, or with ``on_error="record"`` gets a NaN row and
        its message in :attr:`RunResult.errors`."""
        check_input_list(inputs)
        inputs = list(inputs)
        _check_whole_number("batch_size", batch_size, 1)
        _check_whole_number("num_workers", num_workers, 0)
        # Starting workers costs about 0.4 s: not worth it for a single batch.
        workers = num_workers if len(inputs) > batch_size else 0
        with tqdm(total=len(inputs), unit="item", disable=not progress, desc="predict") as bar:
            return next(self.stream([inputs], batch_size, workers, max_batch_tokens, on_error, bar.update))

    def logits(self, inputs: Sequence[Any], batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Raw logits ``[len(inputs), num_labels]``; a bad input raises, naming its position."""
        return self.run(inputs, batch_size=batch_size, progress=progress).logits
