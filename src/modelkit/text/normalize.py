"""Text normalisation: make equivalent spellings of a text identical before any feature.

Unicode clean-up (NFKC folds full-width to half-width), invisible and control characters
removed, lone surrogates replaced, case folding, a length cap, and the optional defences
against filter evasion of :mod:`modelkit.text.chinese`. Configured in the processor config and
saved with the checkpoint, so training, evaluation and inference normalise alike.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, Sequence

from . import chinese

# Zero-width and bidi formatting characters, C0/C1 controls (tab/newline become spaces first),
# the soft hyphen, BOM and lone UTF-16 surrogates (which cannot be encoded at all).
_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000e-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5"
    "\u180b-\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff\ud800-\udfff]"
)
_SURROGATES = re.compile("[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")


@dataclass
class NormalizerConfig:
    nfkc: bool = True
    casefold: bool = True
    strip_invisible: bool = True
    collapse_whitespace: bool = True
    # Text beyond this many characters is not read (a bound on the cost of a huge input; a
    # prediction says so in its evidence, "truncated"). Up to here every character is scored, in
    # windows, so padding cannot hide what it surrounds.
    max_chars: int = 1_000_000
    # Against filter evasion (modelkit.text.chinese), on by default: on COLD they cost no
    # accuracy (each within 0.0003 of none, scripts/benchmark_evasion.py) and undo disguises.
    traditional_to_simplified: bool = True
    fold_homoglyphs: bool = True
    strip_separators: bool = True
    max_repeat: int = 2  # cap runs of one character at this length (0: off)
    emoji: Literal["keep", "describe", "remove"] = "describe"

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise ValueError(f"normalizer.max_chars must be >= 1, got {self.max_chars}")
        if self.max_repeat < 0:
            raise ValueError(f"normalizer.max_repeat must be >= 0, got {self.max_repeat}")


class TextNormalizer:
    """Make equivalent spellings of a text identical before any feature is computed."""

    def __init__(self, config: NormalizerConfig | None = None) -> None:
        self.config = config or NormalizerConfig()

    def __call__(self, text: str) -> str:
        cfg = self.config
        # Cap first so a 1 MB post costs no more than a long one; NFKC may grow it, cap again.
        text = text[: cfg.max_chars]
        if cfg.strip_invisible:
            text = _INVISIBLE.sub("", text)
        else:
            text = _SURROGATES.sub("\ufffd", text)
        # Look-alikes are folded before NFKC, which maps some of them to letters that no longer
        # pass for Latin (the lunate sigma ϲ, a "c", becomes σ).
        if cfg.fold_homoglyphs:
            text = chinese.fold_homoglyphs(text)
        if cfg.nfkc:
            text = unicodedata.normalize("NFKC", text)
        if cfg.traditional_to_simplified:
            text = chinese.to_simplified(text)
        if cfg.casefold:
            text = text.casefold()
        # Separators go before emoji are described, so an emoji wedged into a word is dropped
        # rather than turned into words that split it.
        if cfg.strip_separators:
            text = chinese.strip_separators(text)
        if cfg.max_repeat:
            text = chinese.squash_repeats(text, cfg.max_repeat)
        if cfg.emoji == "describe":
            text = chinese.describe_emoji(text)
        elif cfg.emoji == "remove":
            text = chinese.remove_emoji(text)
        if cfg.collapse_whitespace:
            text = _WHITESPACE.sub(" ", text).strip()
        return text[: cfg.max_chars]

    def batch(self, texts: Sequence[str]) -> list[str]:
        return [self(t) for t in texts]
