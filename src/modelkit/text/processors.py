"""Text processors: normalise (and, in train mode, augment) each text, then batch it for a model.

* ``text_ngram`` (for the ``ngram`` model): hashed character and word n-grams per window.
* ``text_tokenizer`` (for ``transformer``): a ``transformers`` fast tokenizer, per window.

Both score long texts in overlapping windows (``window_rows`` in the batch says which text a
window came from; the model keeps the maximum over a text's windows), so an abusive sentence
cannot be hidden by benign padding before or after it.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..config import ConfigError, from_dict
from ..processing import PROCESSOR_CONFIG, Processor, register_processor
from .augment import AugmentConfig, rewrite
from .features import HashingNgramFeaturizer, NgramFeatureConfig
from .normalize import NormalizerConfig, TextNormalizer
from .pretrained import resolve_backbone

TOKENIZER_FOLDER = "tokenizer"


def check_text(value: Any) -> str | None:
    """What makes a valid text input: a ``str`` (empty is fine)."""
    return None if isinstance(value, str) else f"expected str, got {type(value).__name__}"


class _Truncated(str):
    """A normalised text cut at the normaliser's limit, which knows how long its input was."""

    total_chars: int


def _benign(labels: np.ndarray | None) -> bool:
    """A training row labelled with no category (soft labels from distillation too)."""
    return labels is not None and not np.any(labels >= 0.5)


class _Piece(str):
    """A piece of a long text, which knows at which ends it was cut from its neighbours: what
    crosses a cut lies whole in the neighbouring piece and is scored there."""

    cut_before: bool
    cut_after: bool


def _piece(text: str, cut_before: bool, cut_after: bool) -> _Piece:
    piece = _Piece(text)
    piece.cut_before, piece.cut_after = cut_before, cut_after
    return piece


def _filled(stored: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with what it leaves unsaid read as ``before`` says (nested mappings merged)."""
    filled = dict(stored)
    for key, value in before.items():
        if isinstance(value, dict) and isinstance(stored.get(key, {}), dict):
            filled[key] = _filled(stored.get(key) or {}, value)
        else:
            filled.setdefault(key, value)
    return filled


# Defaults that changed since checkpoints were first written (the evasion defences became the
# default; the character limit went up). A stored config that does not name one of these was
# written when its default was the value here, so it is read with that value: an old checkpoint
# scores as it always did.
_DEFAULTS_BEFORE = {"normalizer": {"traditional_to_simplified": False, "fold_homoglyphs": False,
                                   "strip_separators": False, "max_repeat": 0, "emoji": "keep", "max_chars": 20_000}}


class _TextProcessor(Processor):
    """Normalisation and training-time augmentation shared by the text processors."""

    modality = "text"
    defaults_before: dict[str, Any] = _DEFAULTS_BEFORE

    @classmethod
    def from_saved(cls, config: dict[str, Any], directory: Path) -> Processor:
        return super().from_saved(_filled(config, cls.defaults_before), directory)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.normalizer = TextNormalizer(config.normalizer)
        self._rng = random.Random(0)

    @property
    def augments(self) -> bool:
        return self.config.augment.probability > 0

    def decode_value(self, text: str, labels: np.ndarray | None, rng: random.Random | None) -> str:
        if self.training and self.augments:
            text = rewrite(text, self.config.augment, rng or self._rng, benign=_benign(labels))
        normalised = self.normalizer(text)
        if len(text) > self.config.normalizer.max_chars:
            normalised = _Truncated(normalised)
            normalised.total_chars = len(text)
        return normalised

    def evidence(self, item: str) -> dict[str, Any] | None:
        # Past the normaliser's limit a text is not read: said in the evidence, never a silent pass.
        if isinstance(item, _Truncated):
            return {"truncated": True, "read_chars": self.config.normalizer.max_chars, "total_chars": item.total_chars}
        return None

    def length(self, raw: Any) -> int | None:
        value = self.value_of(raw)
        return len(value) if isinstance(value, str) else 0

    # Inference cuts a normalised text longer than ``piece_chars`` into pieces that share
    # ``piece_overlap`` characters (more than a window spans), so that every window of the text
    # lies whole in a piece and a book costs the memory of a page.
    piece_chars = 65_536
    piece_overlap = 1_024
    # Pieces start at multiples of this, so that windows counted from a piece's start are the
    # windows counted from the text's start.
    piece_alignment = 1

    def pieces(self, raw: Any) -> Iterator[tuple[str, dict[str, Any] | None]]:
        text = self.decode(raw)
        evidence = self.evidence(text)
        if len(text) <= self.piece_chars:
            yield text, evidence
            return
        step = (self.piece_chars - self.piece_overlap) // self.piece_alignment * self.piece_alignment
        for start in range(0, len(text) - self.piece_overlap, step):
            end = start + self.piece_chars
            yield _piece(text[start:end], start > 0, end < len(text)), evidence if start == 0 else None

    def piece_units(self, item: str) -> int:
        return max(len(item), 1)

    @property
    def max_batch_units(self) -> int:
        # Characters per inference batch: never binding for posts (256 of them average a few
        # hundred characters), it keeps the pieces of a long text to a few per batch.
        return 4 * self.piece_chars

    def transfer_copy(self, raw: Any, rng: random.Random) -> Any:
        """Half the time a random span of 50-100 % of the text, then each character dropped with
        probability 0.1: the span sampling and masking of Tang et al. (2019), "Distilling
        task-specific knowledge from BERT into simple neural networks", without a mask token
        (the n-gram model has none). The copy is never empty."""
        text = self.value_of(raw)
        if len(text) > 2 and rng.random() < 0.5:
            size = rng.randint(max(2, (len(text) + 1) // 2), len(text))
            start = rng.randint(0, len(text) - size)
            text = text[start:start + size]
        kept = "".join(ch for ch in text if rng.random() >= 0.1)
        copy = kept or text
        return {**raw, self.modality: copy} if isinstance(raw, dict) else copy

    def example_inputs(self) -> list[str]:
        # One text long enough to be cut into windows, so the traced graph sees several per text.
        return ["你好, hello", "这是一个很长的帖子, with English words too. " * 40, "傻逼"]


# --------------------------------------------------------------------------------------------
# text_ngram
# --------------------------------------------------------------------------------------------
@dataclass
class NgramProcessorConfig:
    normalizer: NormalizerConfig = field(default_factory=NormalizerConfig)
    features: NgramFeatureConfig = field(default_factory=NgramFeatureConfig)
    # A (normalised) text longer than the first size is scored in windows of every size, each
    # overlapping the next by half, and the model keeps the maximum: the small windows find a
    # short violation in a long text, the large ones keep context. []: one bag per text.
    window_chars: list[int] = field(default_factory=lambda: [256, 128, 64])
    # Such a text is also scored in runs of 1 to this many consecutive clauses and in its whole
    # sentences (split at sentence and clause punctuation and line breaks): a violation written
    # as a sentence of its own scores exactly as it does alone, whatever surrounds it. 0: off.
    clause_windows: int = 3
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        sizes = self.window_chars
        if any(size < 2 for size in sizes) or sizes != sorted(set(sizes), reverse=True):
            raise ValueError(f"window_chars must be decreasing sizes >= 2 (or [] for none), got {sizes}")
        if self.clause_windows < 0:
            raise ValueError(f"clause_windows must be >= 0 (0: off), got {self.clause_windows}")


# Clause and sentence punctuation, Chinese and Latin, and line breaks.
_CLAUSE_BREAK = re.compile(r"[。！？!?；;，,、…：:\n]+|\.(?:\s+|$)")


_SENTENCE_END = frozenset("。！？!?…\n.")


def clause_spans(text: str, limit: int, most: int) -> list[str]:
    """Runs of 1 to ``most`` consecutive clauses of ``text``, and its whole sentences, no longer
    than ``limit`` characters. A run keeps the punctuation inside it and the first mark that ends
    it, so a sentence written on its own in a long text ("...。丑女还指望骗男人？。...") is a run
    exactly as it would be written alone. The first and last clause of a piece cut from a longer
    text may be fragments: runs with them are left out."""
    starts: list[int] = []
    ends: list[int] = []
    closes_sentence: list[bool] = []
    position = 0
    for match in _CLAUSE_BREAK.finditer(text):
        if match.start() > position:
            starts.append(position)
            ends.append(match.start() + 1)
            closes_sentence.append(not _SENTENCE_END.isdisjoint(match.group()))
        position = match.end()
    if position < len(text):
        starts.append(position)
        ends.append(len(text))
        closes_sentence.append(True)
    first_whole = 1 if getattr(text, "cut_before", False) else 0
    end_whole = len(starts) - (1 if getattr(text, "cut_after", False) else 0)
    spans = set()
    for first in range(first_whole, end_whole):
        for last in range(first, min(first + most, end_whole)):
            if ends[last] - starts[first] > limit:
                break
            spans.add((first, last))
    # Sentences of more than ``most`` clauses: from a clause after a sentence end to the next end.
    first = first_whole
    for last in range(first_whole, end_whole):
        if closes_sentence[last]:
            if first > 0 and not closes_sentence[first - 1]:
                pass  # a sentence cut at the piece's start: the previous piece holds it
            elif ends[last] - starts[first] <= limit:
                spans.add((first, last))
            first = last + 1
    runs = (text[starts[a]:ends[b]].strip() for a, b in sorted(spans))
    return [run for run in runs if run]


def char_windows(texts: Sequence[str], sizes: Sequence[int], clauses: int = 0) -> tuple[list[str], np.ndarray]:
    """Every text as is when it fits the first size, else its windows of every size (stride
    half a window) and its runs of up to ``clauses`` clauses; with the index of the text each
    window came from. In a piece cut from a longer text, windows that run into the cut are left
    out (the next piece holds them whole)."""
    windows: list[str] = []
    rows: list[int] = []
    for row, text in enumerate(texts):
        if not sizes or len(text) <= sizes[0]:
            pieces = [text]
        else:
            # Past its last start a window would be partial: at the end of a text that is the
            # text's tail, at a cut it is the next piece's business.
            cut = getattr(text, "cut_after", False)
            pieces = [text[start : start + size] for size in sizes
                      for start in range(0, len(text) - size + (1 if cut else size // 2), size // 2)]
            if clauses:
                pieces += clause_spans(text, sizes[0], clauses)
        windows += pieces
        rows += [row] * len(pieces)
    return windows, np.asarray(rows, dtype=np.int64)


@register_processor("text_ngram")
class NgramProcessor(_TextProcessor):
    """Normalised text -> hashed n-gram ids per window (``EmbeddingBag`` input)."""

    config_class = NgramProcessorConfig
    defaults_before = {**_DEFAULTS_BEFORE, "clause_windows": 0,
                       "features": {"words": "alnum", "pinyin": False, "pinyin_units": "letters"}}

    def __init__(self, config: NgramProcessorConfig) -> None:
        super().__init__(config)
        self.featurizer = HashingNgramFeaturizer(config.features)
        self.piece_alignment = math.lcm(*(size // 2 for size in config.window_chars)) if config.window_chars else 1

    @property
    def num_buckets(self) -> int:
        return self.config.features.num_buckets

    def collate(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        windows, rows = char_windows(texts, self.config.window_chars, self.config.clause_windows)
        ids, offsets = self.featurizer(windows)
        return {"input_ids": torch.from_numpy(ids), "offsets": torch.from_numpy(offsets),
                "window_rows": torch.from_numpy(rows)}


# --------------------------------------------------------------------------------------------
# text_tokenizer
# --------------------------------------------------------------------------------------------
@dataclass
class TokenizerProcessorConfig:
    # Hub id or local directory of a transformers tokenizer (a recipe defaults it to the model's
    # backbone); inside a checkpoint, the checkpoint's own tokenizer/ folder.
    tokenizer: str | None = None
    normalizer: NormalizerConfig = field(default_factory=lambda: NormalizerConfig(casefold=False))
    # Tokens per window, special tokens included; longer texts are cut into windows that share
    # ``stride`` tokens with the previous one (default: a quarter of max_length).
    max_length: int = 128
    stride: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.tokenizer is None:
            raise ValueError("tokenizer (hub id or local directory) is required")
        if self.max_length < 8:
            raise ValueError(f"max_length must be >= 8, got {self.max_length}")
        if self.stride is None:
            self.stride = self.max_length // 4
        if not 0 <= self.stride < self.max_length // 2:
            raise ValueError(f"stride must be in [0, max_length / 2), got {self.stride}")


@register_processor("text_tokenizer")
class TokenizerProcessor(_TextProcessor):
    """Normalised text -> token ids and attention mask per window of ``max_length`` tokens."""

    config_class = TokenizerProcessorConfig

    def __init__(self, config: TokenizerProcessorConfig, local_files_only: bool = False) -> None:
        from transformers import AutoTokenizer

        super().__init__(config)
        source = resolve_backbone(config.tokenizer)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        except (OSError, ValueError) as err:
            raise ConfigError(f"processor.tokenizer: cannot load a tokenizer from {config.tokenizer!r} ({err})") from None
        if not self.tokenizer.is_fast:
            raise ConfigError(f"processor.tokenizer: {config.tokenizer!r} has no fast tokenizer (tokenizer.json), "
                              "which windows over long texts need")

    # A piece's windows run through the encoder in one batch: a few dozen windows at most.
    piece_chars = 4_096

    @property
    def cpu_batch_tokens(self) -> int:
        # Attention grows with the square of the padded length; on a CPU, batches of about 16
        # full windows stay in cache (MiniLM, 2 cores: 113 texts/s at 2,048, 81 at 8,192).
        return 16 * self.config.max_length

    def collate(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.config.max_length, stride=self.config.stride,
            return_overflowing_tokens=True, return_tensors="pt",
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                "window_rows": encoded["overflow_to_sample_mapping"].to(torch.int64)}

    def to_config(self) -> dict[str, Any]:
        # A saved processor reads its tokenizer from the checkpoint, never from the hub.
        return {**super().to_config(), "tokenizer": TOKENIZER_FOLDER}

    def save_assets(self, directory: Path) -> list[str]:
        saved = self.tokenizer.save_pretrained(str(directory / TOKENIZER_FOLDER))
        return sorted(str(Path(p).relative_to(directory)) for p in saved if Path(p).is_file())

    @classmethod
    def from_saved(cls, config: dict[str, Any], directory: Path) -> TokenizerProcessor:
        config = _filled(config, cls.defaults_before)
        folder = (directory / str(config.get("tokenizer") or TOKENIZER_FOLDER)).resolve()
        if directory.resolve() not in folder.parents:
            raise ConfigError(f"{PROCESSOR_CONFIG}: tokenizer must be a folder inside the checkpoint, "
                              f"got {config.get('tokenizer')!r}")
        config["tokenizer"] = str(folder)
        return cls(from_dict(TokenizerProcessorConfig, config, where=PROCESSOR_CONFIG), local_files_only=True)
