"""Filter-evasion attacks on text: for the evasion benchmark and for training-time augmentation.

Each attack rewrites a text the way users disguise banned words (see issue examples: 傻逼 ->
傻 逼 / 傻*逼 / 煞笔 / 傻逼 in traditional / "sha bi" / "sb"). ``apply_attack(text, name, rng)``
is deterministic given the ``random.Random``; ``all`` chains every attack. A text processor's
``augment:`` block rewrites a share of the training texts (train mode only) with randomly
chosen attacks, so that the model also learns the disguised spellings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache

from . import chinese

SEPARATORS = [" ", "*", ".", "-", "_", "~", "|", "/", "❤", "☆", "♂", "😊", "👍"]
EMOJI = ["😊", "😂", "🔥", "💦", "🍆", "❤️", "🌹", "👉", "🙏", "✨"]
# Latin letters and their look-alikes in other scripts (Cyrillic, Greek) and full width.
LOOKALIKES = {
    "a": "аα", "c": "сϲ", "e": "еε", "i": "іι", "o": "оο", "p": "рρ", "s": "ѕ", "x": "хχ", "y": "уγ",
    "b": "Ь", "h": "һ", "k": "κ", "n": "η", "t": "τ", "v": "ν", "j": "ј",
}


def _is_cjk(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


def _separator(text: str, rng: random.Random) -> str:
    out = []
    for i, char in enumerate(text):
        out.append(char)
        if i + 1 < len(text) and _is_cjk(char) and _is_cjk(text[i + 1]) and rng.random() < 0.5:
            out.append(rng.choice(SEPARATORS))
    return "".join(out)


def _homophone(text: str, rng: random.Random) -> str:
    table = chinese.homophones()

    def swap(char: str) -> str:
        options = [c for c in table.get(chinese.syllable(char), []) if c != char] if _is_cjk(char) else []
        return rng.choice(options) if options and rng.random() < 0.3 else char

    return "".join(map(swap, text))


def _spans(text: str, rng: random.Random, spell) -> str:
    """Replace random 2-4 character Chinese spans (about a third of them) by ``spell(syllables)``."""
    out, i = [], 0
    while i < len(text):
        length = rng.randint(2, 4)
        span = text[i : i + length]
        if len(span) >= 2 and all(_is_cjk(c) and chinese.syllable(c) for c in span) and rng.random() < 0.35:
            out.append(spell([chinese.syllable(c) for c in span], rng))
            i += len(span)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _pinyin(text: str, rng: random.Random) -> str:
    return _spans(text, rng, lambda syllables, r: r.choice([" ", ""]).join(syllables))


def _initials(text: str, rng: random.Random) -> str:
    return _spans(text, rng, lambda syllables, r: "".join(s[0] for s in syllables))


def _traditional(text: str, rng: random.Random) -> str:
    return _s2t().convert(text)


@lru_cache(maxsize=1)
def _s2t():
    import opencc

    return opencc.OpenCC("s2t")


def _homoglyph(text: str, rng: random.Random) -> str:
    def swap(char: str) -> str:
        lower = char.lower()
        if lower in LOOKALIKES and rng.random() < 0.5:
            return rng.choice(LOOKALIKES[lower])
        if char.isascii() and char.isalnum() and rng.random() < 0.5:
            return chr(ord(char) + 0xFEE0)  # full width
        return char

    return "".join(map(swap, text))


def _repeat(text: str, rng: random.Random) -> str:
    return "".join(c * rng.randint(2, 4) if _is_cjk(c) and rng.random() < 0.2 else c for c in text)


def _emoji(text: str, rng: random.Random) -> str:
    out = []
    for char in text:
        out.append(char)
        if _is_cjk(char) and rng.random() < 0.25:
            out.append(rng.choice(EMOJI))
    return "".join(out)


ATTACKS = {
    "separator": _separator,
    "homophone": _homophone,
    "traditional": _traditional,
    "pinyin": _pinyin,
    "initials": _initials,
    "homoglyph": _homoglyph,
    "repeat": _repeat,
    "emoji": _emoji,
}
# "all" in this order: sound-alike and Latin spellings first, then script, then decorations.
ALL_ORDER = ["homophone", "initials", "pinyin", "traditional", "repeat", "homoglyph", "separator", "emoji"]


def apply_attack(text: str, name: str, rng: random.Random) -> str:
    if name == "all":
        for step in ALL_ORDER:
            text = ATTACKS[step](text, rng)
        return text
    try:
        return ATTACKS[name](text, rng)
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join([*ATTACKS, 'all'])}") from None


@dataclass
class AugmentConfig:
    """``processor.augment`` of a text recipe: rewrite a share of training texts with evasion attacks.

    With ``train.consistency > 0`` every training text is also seen as written, and the
    rewritten copy's scores are pulled towards the original's.
    """

    probability: float = 0.0
    attacks: list[str] = field(default_factory=lambda: [*ATTACKS, "all"])
    # Share of benign rows (no category) rewritten; None: ``probability``, and ``probability: 0``
    # still turns augmentation off. Lower, disguise itself becomes evidence: users disguise
    # what they expect a filter to catch, so a disguised post is more often harmful than a
    # plain one. The evasion benchmark's benign-flagged row shows what that costs.
    benign_probability: float | None = None

    def __post_init__(self) -> None:
        for name in ("probability", "benign_probability"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {value}")
        unknown = [a for a in self.attacks if a not in ATTACKS and a != "all"]
        if unknown:
            raise ValueError(f"augment.attacks: unknown attack {unknown[0]!r}; known: {', '.join([*ATTACKS, 'all'])}")
        if self.probability and not self.attacks:
            raise ValueError("augment.attacks is empty")


def rewrite(text: str, config: AugmentConfig, rng: random.Random, benign: bool = False) -> str:
    """``text`` rewritten by one random attack of ``config``, with probability ``config.probability``
    (``config.benign_probability`` for a row labelled with no category), else unchanged."""
    probability = config.probability
    if benign and config.benign_probability is not None:
        probability = config.benign_probability
    if rng.random() >= probability:
        return text
    return apply_attack(text, rng.choice(config.attacks), rng)
