"""Processors: raw inputs -> model batches, configured, saved and loaded apart from models.

A processor reads one *modality* ("text" today; "image" and "video" later): a record's field
of that modality, or the bare value. It works in two stages so that the slow part can run in
DataLoader workers:

* :meth:`Processor.decode` turns one raw value into an item (validate, read, normalise; in
  train mode also augment). It runs per row, in worker processes when ``num_workers > 0``.
* :meth:`Processor.collate` turns a list of items into the tensors ``model(**batch)`` takes.

Training, evaluation and inference all go through the same object, and a checkpoint stores it
as ``processor_config.json`` (+ asset files such as a tokenizer), so preprocessing cannot drift
between entry points. A modality package registers itself with :func:`register_modality` and
its processors with :func:`register_processor`; the core knows neither text nor images.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence, TypeVar

import numpy as np
import torch

from .config import ConfigError, from_dict, to_dict
from .errors import InputError  # noqa: F401  (raised by processors, imported from here)
from .plugins import Registry

PROCESSOR_CONFIG = "processor_config.json"


@dataclass(frozen=True)
class Modality:
    """How the core treats one kind of input without knowing what it is.

    ``check(value)`` says what is wrong with a value (None: valid) without reading it.
    ``files``: string values are paths of files, relative to the table that lists them (a
    manifest), so records resolve them and refuse those that escape the table's folder.
    ``preview(value)`` gives what a report shows for an input: ``{"text": ...}`` and/or
    ``{"thumbnail": "data:image/...;base64,..."}``. ``hub_task`` and ``languages`` go into a
    checkpoint's model card (the Hugging Face Hub's ``pipeline_tag`` and ``language``).
    """

    name: str
    check: Callable[[Any], str | None]
    files: bool = False
    preview: Callable[[Any], dict[str, str]] | None = None
    hub_task: str | None = None
    languages: tuple[str, ...] = ()



_MODALITIES: Registry[Modality] = Registry("modality", "data.inputs")
_PROCESSORS: Registry[type[Processor]] = Registry("processor", "processor.name")
P = TypeVar("P", bound="type[Processor]")


def register_modality(name: str, check: Callable[[Any], str | None], files: bool = False,
                      preview: Callable[[Any], dict[str, str]] | None = None, hub_task: str | None = None,
                      languages: Sequence[str] = ()) -> None:
    """Declare a modality (a kind of record field, such as ``text``): see :class:`Modality`."""
    _MODALITIES.add(name, Modality(name, check, files, preview, hub_task, tuple(languages)))


def get_modality(name: str) -> Modality:
    return _MODALITIES.get(name)


def list_modalities() -> list[str]:
    return _MODALITIES.names()


def check_input(modality: str, value: Any) -> str | None:
    """``None`` when ``value`` is a valid input of ``modality``, else a short reason.

    The one place that decides what a valid input is: records, the CLI, the bootstrap and the
    processors all ask here.
    """
    return _MODALITIES.get(modality).check(value)


def input_preview(modality: str, value: Any) -> dict[str, str]:
    """What a report shows for one input (the value itself as text, unless the modality says)."""
    preview = _MODALITIES.get(modality).preview
    return preview(value) if preview is not None else {"text": str(value)}


def register_processor(name: str) -> Callable[[P], P]:
    """Class decorator: makes a processor available to recipes as ``processor: {name: ...}``."""
    return _PROCESSORS.decorator(name, "name")


def get_processor_class(name: str) -> type[Processor]:
    return _PROCESSORS.get(name)


def list_processors() -> list[str]:
    """The names of the registered processors (the installed modalities' included), sorted."""
    return _PROCESSORS.names()


def create_processor(name: str, **config: Any) -> Processor:
    """A fresh processor of the registered ``name`` from its config keys."""
    cls = get_processor_class(name)
    return cls(from_dict(cls.config_class, config, where="processor"))


class Processor:
    """Base class of registered processors.

    Subclasses set ``config_class`` (a dataclass) and ``modality`` (the input they read) and
    implement :meth:`decode_value` and :meth:`collate`. Processors with files (a tokenizer)
    override :meth:`save_assets` and :meth:`from_saved`; those whose inputs have a size worth
    batching by (text length) override :meth:`length`; those that augment in train mode set
    ``augments``.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        self.config = config
        self.training = False

    # -- mode -----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Processor:
        """Train mode applies augmentation (where configured); returns ``self`` like torch."""
        self.training = mode
        return self

    def eval(self) -> Processor:  # safe: the mode switch (as in torch), not Python's eval
        return self.train(False)

    def in_mode(self, training: bool) -> Processor:
        """A shallow copy in train or eval mode (sharing tokenizers and tables), this one unchanged."""
        view = copy.copy(self)
        view.training = training
        return view

    @property
    def augments(self) -> bool:
        """True when train mode changes inputs (augmentation is configured)."""
        return False

    # -- the two stages -------------------------------------------------------------------
    def value_of(self, raw: Any) -> Any:
        """The value of this processor's modality: a record's field, or the bare value (which may be
        a mapping itself, such as a ``datasets`` Image value ``{"bytes", "path"}``)."""
        if isinstance(raw, Mapping):
            if self.modality in raw:
                return raw[self.modality]
            problem = check_input(self.modality, raw)
            if problem is not None:
                raise TypeError(f"record has no {self.modality!r} input (fields: {', '.join(map(str, raw))}) "
                                f"and is not one itself ({problem})")
        return raw

    def decode(self, raw: Any, labels: np.ndarray | None = None, rng: random.Random | None = None) -> Any:
        """One raw input -> one item for :meth:`collate` (runs in DataLoader workers).

        ``labels`` (the row's multi-hot labels) and ``rng`` serve augmentation in train mode.
        """
        value = self.value_of(raw)
        problem = check_input(self.modality, value)
        if problem is not None:
            raise TypeError(problem)
        return self.decode_value(value, labels, rng)

    def decode_value(self, value: Any, labels: np.ndarray | None, rng: random.Random | None) -> Any:
        raise NotImplementedError

    def collate(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __call__(self, raws: Sequence[Any]) -> dict[str, torch.Tensor]:
        return self.collate([self.decode(raw) for raw in raws])

    def pieces(self, raw: Any) -> Iterator[tuple[Any, dict[str, Any] | None]]:
        """The items one input is scored in, each with what it shows a reviewer, made as they are
        needed. One for most inputs; a processor whose inputs can be long (a video, a book) cuts
        them into pieces, so that inference holds a batch of an input at a time, never all of
        it: the model pools the parts of every piece (:meth:`~modelkit.models.base.ModerationModel.pool_parts`)."""
        item = self.decode(raw)
        yield item, self.evidence(item)

    def merge_evidence(self, pieces: list[dict[str, Any] | None]) -> dict[str, Any] | None:
        """One input's evidence from its pieces' (see :meth:`pieces`)."""
        return pieces[0] if len(pieces) == 1 else next((evidence for evidence in pieces if evidence), None)

    def piece_units(self, item: Any) -> int:
        """How much of a batch one piece fills, in :attr:`max_batch_units` (a video piece: its frames)."""
        return 1

    @property
    def max_batch_units(self) -> int | None:
        """The most units (frames, characters) one inference batch may hold; None: no bound but the
        batch size."""
        return None

    def evidence(self, item: Any) -> dict[str, Any] | None:
        """What a decoded item shows a reviewer beside its scores (text read from a picture), or None."""
        return None

    # -- the output side --------------------------------------------------------------------
    # Names of the fields :meth:`postprocess` adds to a prediction (a video's ``segments``): each is
    # a key of ``Prediction.to_dict()`` and a JSON column of a batch run's shards.
    output_fields: ClassVar[tuple[str, ...]] = ()

    def part_positions(self, item: Any) -> np.ndarray | None:
        """Where in the input each part the model scores of a decoded item lies (a video's frames,
        in seconds), or None: the input is scored whole. Inputs with positions keep their part
        scores (``Prediction.parts``) for :meth:`postprocess`."""
        return None

    def postprocess(self, positions: np.ndarray, part_scores: np.ndarray, thresholds: np.ndarray,
                    categories: list[str]) -> dict[str, Any]:
        """The :attr:`output_fields` of one input from its parts' positions and calibrated scores
        ``[parts, categories]`` (a video's violating segments). Called once per scored input with
        parts, by the one output path (:func:`modelkit.outputs.postprocess`)."""
        return {}

    def part_annotations(self, records: Any, field: str | None) -> list[Any] | None:
        """Each training row's annotation of its parts (a video's timed labels) from column
        ``field`` of ``records``, validated; None: this processor learns from whole-input labels only."""
        return None

    def part_targets(self, item: Any, labels: np.ndarray, annotation: Any, categories: Sequence[str]) -> np.ndarray:
        """Labels ``[parts, categories]`` of a decoded item's parts from its row's labels and
        :meth:`part_annotations` entry (NaN where unknown: left to the input-level label)."""
        raise NotImplementedError(f"processor {self.name!r} does not label parts")

    @property
    def max_batch_inputs(self) -> int | None:
        """The most inputs one batch may hold (a video's frames add up: 256 videos of 64 frames
        would be 16,384 pictures in one batch); None: any batch size."""
        return None

    def batch_size(self, requested: int) -> int:
        """``requested`` capped at :attr:`max_batch_inputs`."""
        cap = self.max_batch_inputs
        return requested if cap is None else max(1, min(requested, cap))

    def example_inputs(self) -> list[Any]:
        """A few raw inputs of different sizes, to trace a model for export (ONNX)."""
        raise NotImplementedError(f"processor {self.name!r} has no example inputs to export a model with")

    @property
    def cpu_batch_tokens(self) -> int | None:
        """On a CPU, the padded size (inputs x the longest :meth:`length`) at which a batch of
        length-sorted inputs runs fastest; None: ``batch_size`` alone decides."""
        return None

    def length(self, raw: Any) -> int | None:
        """Cost of one raw input for batching inputs of similar size together; None: no notion."""
        return None

    def transfer_copy(self, raw: Any, rng: random.Random) -> Any:
        """A perturbed copy of a raw input, for a distillation transfer set: the teacher scores it,
        so it needs no label, but it should stay an input the teacher can read. None: this
        processor makes no such copies."""
        return None

    # -- persistence ----------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """What ``processor_config.json`` holds: enough to rebuild this processor offline."""
        return {"name": self.name, **to_dict(self.config)}

    def save_assets(self, directory: Path) -> list[str]:
        """Write files other than the config; return their names relative to ``directory``."""
        return []

    @classmethod
    def from_saved(cls, config: dict[str, Any], directory: Path) -> Processor:
        """Rebuild from a stored config; asset paths in it are inside ``directory``."""
        return cls(from_dict(cls.config_class, config, where=PROCESSOR_CONFIG))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, modality={self.modality!r}, training={self.training})"


class CompositeProcessor(Processor):
    """A processor made of other processors, its *parts* (as transformers' ``ProcessorMixin``): an
    OCR processor holds a text processor, a video processor a frame processor, an ensemble one
    processor per member.

    A subclass names its parts in ``part_names`` (each also the field of its config dataclass that
    holds that part's stored config, and the folder its files are saved in) and gets from the base:
    building the parts from the config, train/eval mode for all of them, ``augments``, the stored
    config with the parts' current configs, saving each part's files in its folder and loading
    them back. A subclass whose parts are not fixed fields (an ensemble's list) overrides
    :meth:`part_configs` and :meth:`to_config`; :meth:`check_parts` says what parts it accepts.
    """

    part_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any, parts: Mapping[str, Processor] | None = None) -> None:
        super().__init__(config)
        if parts is None:
            parts = {}
            for part, stored in self.part_configs(config).items():
                stored = dict(stored)
                parts[part] = create_processor(str(stored.pop("name", "")), **stored)
        self.parts: dict[str, Processor] = dict(parts)
        self.check_parts()

    @classmethod
    def part_configs(cls, config: Any) -> dict[str, dict[str, Any]]:
        """Each part's stored config (``name`` + fields), by part name, from this processor's config."""
        return {part: getattr(config, part) for part in cls.part_names}

    def check_parts(self) -> None:
        """Raise ConfigError when a part cannot serve here (reads another modality)."""

    def train(self, mode: bool = True) -> CompositeProcessor:
        for part in self.parts.values():
            part.train(mode)
        return super().train(mode)  # type: ignore[return-value]

    def in_mode(self, training: bool) -> CompositeProcessor:
        view = super().in_mode(training)
        view.parts = {name: part.in_mode(training) for name, part in self.parts.items()}  # type: ignore[attr-defined]
        return view  # type: ignore[return-value]

    @property
    def augments(self) -> bool:
        return any(part.augments for part in self.parts.values())

    def to_config(self) -> dict[str, Any]:
        return {**super().to_config(), **{name: part.to_config() for name, part in self.parts.items()}}

    def save_assets(self, directory: Path) -> list[str]:
        # Each part's files (a tokenizer) live in the part's own folder so their names cannot clash.
        saved = []
        for name, part in self.parts.items():
            folder = directory / name
            folder.mkdir(parents=True, exist_ok=True)
            saved += [f"{name}/{file}" for file in part.save_assets(folder)]
        return saved

    @classmethod
    def from_saved(cls, config: dict[str, Any], directory: Path) -> CompositeProcessor:
        parsed = from_dict(cls.config_class, config, where=PROCESSOR_CONFIG)
        parts = {name: processor_from_config(stored, directory / name)
                 for name, stored in cls.part_configs(parsed).items()}
        return cls(parsed, parts)


def processor_from_config(config: dict[str, Any], directory: Path) -> Processor:
    """Rebuild a saved processor from its stored config (``name`` + fields)."""
    if not isinstance(config, dict):
        raise ConfigError(f"{PROCESSOR_CONFIG}: expected a mapping, got {type(config).__name__}")
    config = dict(config)
    cls = get_processor_class(str(config.pop("name", "")))
    return cls.from_saved(config, directory)
