"""Hashed n-gram features: the input of the ``ngram`` model.

Character n-grams (good for Chinese, no segmenter needed) and word n-grams (for space-separated
scripts, or jieba-segmented Chinese), optionally the text spelled in pinyin, hashed into a
fixed number of buckets with a stable, vectorised polynomial hash. A whole batch is featurised
at once in numpy; no vocabulary file is needed.

:meth:`HashingNgramFeaturizer.with_spans` also says which characters of its text each feature
reads, for the ``ngram`` explainer (:mod:`modelkit.text.explain`). Every channel is hashed from
a string derived from the text (the text itself, its words joined by separators, its syllables,
...); beside it go, per position, the characters ``[lo, hi)`` of the text it stands for, and a
feature reads from the ``lo`` of its first position to the ``hi`` of its last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Sequence

import numpy as np

from . import chinese

# A unit of a string derived from a text (a word, a syllable) and the characters of the text it
# stands for: ``(unit, start, end)``.
_Unit = tuple[str, int, int]


@dataclass
class NgramFeatureConfig:
    char_ngram_min: int = 1
    char_ngram_max: int = 4
    word_ngram_max: int = 2
    # Where words come from: runs of letters/digits (space-separated scripts only), or a
    # dictionary segmenter that also splits Chinese into words (jieba, C++ build).
    words: Literal["alnum", "jieba"] = "jieba"
    # Pinyin channels: n-grams of the text spelled in pinyin, and initials of Chinese character
    # runs as words, so that "sha bi", "shabi", "sb" and the homophone 煞笔 meet 傻逼 in feature
    # space. On by default, against users who evade filters (needs words: jieba).
    pinyin: bool = True
    # How the text spelled in pinyin becomes features: "syllables", n-grams of 1 or 2 syllables
    # and initials of 2 or 3; "letters", character n-grams of 3 to 5 letters of the spelling and
    # initials of 2 to 4 syllables, five times as many features, which outnumber the characters'
    # in a mean: COLD dev accuracy 0.893 against 0.903 with syllables and 0.905 without pinyin.
    pinyin_units: Literal["syllables", "letters"] = "syllables"
    num_buckets: int = 1 << 20

    def __post_init__(self) -> None:
        if not 1 <= self.char_ngram_min <= self.char_ngram_max <= 8:
            raise ValueError("need 1 <= char_ngram_min <= char_ngram_max <= 8")
        if not 0 <= self.word_ngram_max <= 3:
            raise ValueError("word_ngram_max must be 0 (off), 1, 2 or 3")
        if self.num_buckets < 16:
            raise ValueError("num_buckets must be >= 16")


_U64 = np.uint64
_BASE = 1_000_003  # odd, so it has an inverse modulo 2**64
_BASE_INV = pow(_BASE, -1, 1 << 64)
_MIX = 0x9E3779B97F4A7C15
_TEXT_START, _TEXT_END = "\x02", "\x03"
# Letters and digits of alphabetic scripts form words; CJK and later blocks (>= U+2E80) are
# covered by character n-grams since they are written without spaces.
_WORD_CHAR = np.array([chr(c).isalnum() for c in range(0x2E80)] + [False], dtype=bool)


_SEPARATOR = "\x01"
PINYIN_NGRAM_MIN, PINYIN_NGRAM_MAX = 3, 5
PINYIN_SYLLABLES_MAX = 2
# The longest window of syllables whose initials are a feature, by pinyin_units.
INITIALS_LONGEST = {"syllables": 3, "letters": 4}
# A word of its own between two runs of syllables, so that no n-gram spans the break.
_RUN_BREAK = "\x04"


def _encode(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate texts between start/end markers as code points; per position: text, text end."""
    padded = [_TEXT_START + t + _TEXT_END for t in texts]
    lengths = np.fromiter((len(t) for t in padded), dtype=np.int64, count=len(padded))
    codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(_U64)
    return codes, np.repeat(np.arange(len(padded)), lengths), np.repeat(np.cumsum(lengths), lengths)


@lru_cache(maxsize=1)
def _jieba_cut():
    try:
        import jieba_fast_dat as jieba
    except ImportError as err:
        raise ImportError("features.words: jieba needs the package jieba-fast-dat (pip install jieba-fast-dat)") from err
    jieba.setLogLevel(60)
    jieba.initialize()
    return jieba.lcut


# Texts up to this long keep their segmentation and their spoken runs in bounded caches: a post's
# text is read when it is scored and again when its score is explained (the ngram explainer,
# which needs where each syllable comes from), and popular texts repeat.
_CACHED_CHARS = 512


@lru_cache(maxsize=1 << 15)
def _cached_cut(text: str) -> tuple[str, ...]:
    return tuple(_jieba_cut()(text))


def _segment(text: str) -> Sequence[str]:
    return _cached_cut(text) if len(text) <= _CACHED_CHARS else _jieba_cut()(text)


def _mix(hashes: np.ndarray, salt: int) -> np.ndarray:
    """Finalise raw polynomial hashes so that nearby values spread over all buckets."""
    h = hashes ^ _U64(salt * 0x100000001B3 & 0xFFFFFFFFFFFFFFFF)
    h = h * _U64(_MIX)
    h ^= h >> _U64(31)
    h = h * _U64(0xBF58476D1CE4E5B9)
    h ^= h >> _U64(29)
    return h


def _initial_windows(size: int, longest: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the windows of 2..``longest`` syllables of a run of ``size``, in order."""
    return [(start, start + n) for n in range(2, min(longest, size) + 1) for start in range(size - n + 1)]


def _pinyin_initials(runs: list[list[str]], longest: int = INITIALS_LONGEST["letters"]) -> list[str]:
    """Initials of every window of 2..``longest`` syllables of each spoken run: 傻逼 -> sb,
    操你妈 -> cnm. Windows, not segmented words, since a segmenter splits exactly the slang
    that is abbreviated (傻逼 -> 傻 / 逼). A letter that is no syllable is its own initial, so
    that a run abbreviated in the middle of a sentence (你sbbf男女 for 你傻逼不分男女), or spelled
    in pinyin (你shabi不分男女), has the windows of the original."""
    windows = []
    for run in runs:
        initials = [unit[0] for unit in run]
        windows += ["".join(initials[start:stop]) for start, stop in _initial_windows(len(initials), longest)]
    return windows


# --------------------------------------------------------------------------------------------
# Where each feature reads its text (HashingNgramFeaturizer.with_spans)
# --------------------------------------------------------------------------------------------
_LATIN_WORD = re.compile("[a-z]+")
# Characters that separate words in a segmented string (codes up to 3, see _segmented_ngrams),
# and the runs between them.
_SEPARATING = re.compile("[\x00-\x03]")
_WORD_PIECE = re.compile("[^\x00-\x03]+")


def _spoken_places(text: str) -> list[list[_Unit]]:
    """``chinese.spoken_runs(text)``, each unit with the characters it is read from: a Chinese
    character for its syllable, the letters of a Latin word for each piece of it; a syllable
    dropped as a repeat (傻傻逼) widens the one kept. It walks the text as spoken_runs does, and
    tests hold the two to the same units (so with_spans gives the ids of calling)."""
    found: list[list[_Unit]] = []
    run: list[_Unit] = []
    syllable, latin_units = chinese.syllable, chinese.latin_units
    for match in chinese._SOUND_TOKEN.finditer(text):
        latin, han = match.groups()
        if han:
            sound = syllable(han)
            units = [(sound, match.start(), match.end())] if sound else []
        elif latin:
            units = []
            for word in _LATIN_WORD.finditer(latin):
                at = match.start() + word.start()
                for piece in latin_units(word.group()):
                    units.append((piece, at, at + len(piece)))
                    at += len(piece)
        else:
            units = []
        if not units:  # punctuation, digits, a character with no reading: the run breaks
            if run:
                found.append(run)
                run = []
            continue
        for unit in units:
            if run and run[-1][0] == unit[0] and len(unit[0]) > 1:
                run[-1] = (unit[0], run[-1][1], unit[2])
            else:
                run.append(unit)
    if run:
        found.append(run)
    return found


@lru_cache(maxsize=1 << 15)
def _cached_places(text: str) -> tuple[tuple[_Unit, ...], ...]:
    return tuple(tuple(run) for run in _spoken_places(text))


def _places(text: str) -> Sequence[Sequence[_Unit]]:
    return _cached_places(text) if len(text) <= _CACHED_CHARS else _spoken_places(text)


def _word_reads(texts: Sequence[str], cuts: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """``lo``, ``hi`` of each word of the segmented strings, in order: jieba's cut returns every
    character of the text in order, so a word's place is the length of what came before it. A
    word holding a character that separates words in the segmented string (below U+0004, which
    normalised text never has) reads as the pieces between them."""
    lo: list[int] = []
    hi: list[int] = []
    for text, words in zip(texts, cuts):
        at = 0
        split = _SEPARATING.search(text) is not None
        for word in words:
            if split and not word.isspace():
                for piece in _WORD_PIECE.finditer(word):
                    lo.append(at + piece.start())
                    hi.append(at + piece.end())
            elif not word.isspace():
                lo.append(at)
                hi.append(at + len(word))
            at += len(word)
    return np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)


def _syllable_reads(places: Sequence[list[list[_Unit]]]) -> tuple[np.ndarray, np.ndarray]:
    """``lo``, ``hi`` of each word of the syllable strings: a syllable reads its place; a run
    break, always between two runs of one text, reads from the next syllable's start to the
    previous one's end (nothing, alone)."""
    lo: list[int] = []
    hi: list[int] = []
    for runs in places:
        for r, run in enumerate(runs):
            if r:
                lo.append(-1)
                hi.append(-1)
            lo += [start for _, start, _ in run]
            hi += [end for _, _, end in run]
    lo_of, hi_of = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    breaks = np.flatnonzero(lo_of < 0)
    lo_of[breaks], hi_of[breaks] = lo_of[breaks + 1], hi_of[breaks - 1]
    return lo_of, hi_of


@lru_cache(maxsize=None)
def _window_bounds(size: int, longest: int) -> tuple[np.ndarray, np.ndarray]:
    windows = _initial_windows(size, longest)
    return (np.array([start for start, _ in windows], dtype=np.int64),
            np.array([stop - 1 for _, stop in windows], dtype=np.int64))


def _initial_reads(places: Sequence[list[list[_Unit]]], longest: int) -> tuple[np.ndarray, np.ndarray]:
    """``lo``, ``hi`` of each word of the initials strings (:func:`_pinyin_initials`): a window of
    syllables reads from its first one's start to its last one's end."""
    runs = [run for runs in places for run in runs]
    starts = np.array([start for run in runs for _, start, _ in run], dtype=np.int64)
    ends = np.array([end for run in runs for _, _, end in run], dtype=np.int64)
    first = np.cumsum([0] + [len(run) for run in runs[:-1]], dtype=np.int64)
    bounds = [_window_bounds(len(run), longest) for run in runs]
    sizes = [len(a) for a, _ in bounds]
    if not sum(sizes):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    base = np.repeat(first, sizes)
    return (starts[base + np.concatenate([a for a, _ in bounds])],
            ends[base + np.concatenate([b for _, b in bounds])])


def _text_reads(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``lo``, ``hi`` per position of ``_encode(texts)``: character k reads ``[k, k + 1)``; the start
    marker reads ``[0, 0)``, the end marker ``[len, len)``."""
    lengths = np.fromiter((len(t) + 2 for t in texts), dtype=np.int64, count=len(texts))
    text_of = np.repeat(np.arange(len(texts)), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(int(lengths.sum())) - starts - 1
    size = lengths[text_of] - 2
    return np.clip(position, 0, size), np.clip(position + 1, 0, size)


def _letter_reads(places: Sequence[list[list[_Unit]]], lengths: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``lo``, ``hi`` per position of ``_encode`` of the letters strings (runs of syllables spelled
    out, joined by spaces): a letter reads its syllable's place. A space or marker, which stands for
    none, takes the next syllable's ``lo`` (the text's length at its end) and the previous one's
    ``hi`` (0 at its start): an n-gram then reads from its first position's ``lo`` to its last
    one's ``hi``, and one of spaces or markers alone reads nothing."""
    # The code array in segments: per text its start marker, per syllable the space before it
    # (none within a run) and its letters, then its end marker.
    gaps = [1 if r and not k else 0 for runs in places for r, run in enumerate(runs) for k in range(len(run))]
    units = [unit for runs in places for run in runs for unit in run]
    sizes = np.empty(2 * len(units), dtype=np.int64)
    sizes[0::2] = gaps
    sizes[1::2] = [len(unit) for unit, _, _ in units]
    lo = np.full(2 * len(units), -1, dtype=np.int64)
    hi = lo.copy()
    lo[1::2] = [start for _, start, _ in units]
    hi[1::2] = [end for _, _, end in units]
    counts = np.fromiter((sum(map(len, runs)) for runs in places), dtype=np.int64, count=len(places))
    before = 2 * (np.cumsum(counts) - counts)
    markers = np.stack([before, before + 2 * counts], axis=1).ravel()
    sizes, lo, hi = np.insert(sizes, markers, 1), np.insert(lo, markers, -1), np.insert(hi, markers, -1)
    lo_of, hi_of = np.repeat(lo, sizes), np.repeat(hi, sizes)
    text_of = np.repeat(np.repeat(np.arange(len(places)), 2 * counts + 2), sizes)
    # Fill within each text only: every text's values are lifted above the previous texts' ones.
    lift = text_of * (int(max(lengths, default=0)) + 2)
    length = np.asarray(lengths, dtype=np.int64)[text_of]
    known = lo_of >= 0
    following = np.minimum.accumulate((np.where(known, lo_of, length) + lift)[::-1])[::-1] - lift
    preceding = np.maximum.accumulate(np.where(known, hi_of, 0) + lift) - lift
    return np.where(known, lo_of, following), np.where(known, hi_of, preceding)


def _spans(reads: tuple[np.ndarray, np.ndarray], first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """``[n, 2]`` spans of features from code position ``first`` to ``last`` (empty where they read none)."""
    start = reads[0][first]
    return np.stack([start, np.maximum(reads[1][last], start)], axis=1)


def _char_ngrams(codes: np.ndarray, doc_of: np.ndarray, doc_end: np.ndarray, n_min: int, n_max: int, salt: int,
                 reads: tuple[np.ndarray, np.ndarray] | None = None):
    """Hashes of every character n-gram, n_min <= n <= n_max, with the text each belongs to, and
    given ``reads``, the span each reads."""
    docs, hashes, spans = [], [], []
    rolling = codes.copy()
    for n in range(1, n_max + 1):
        # rolling[i] = hash of codes[i : i + n]; positions whose n-gram runs past the text end
        # are masked out below rather than sliced, which keeps the arrays aligned.
        if n > 1:
            rolling = rolling[:-1] * _U64(_BASE) + codes[n - 1 :]
        if n < n_min:
            continue
        valid = np.arange(rolling.size) + n <= doc_end[: rolling.size]
        docs.append(doc_of[: rolling.size][valid])
        hashes.append(_mix(rolling[valid], salt=salt + n))
        if reads is not None:
            first = np.flatnonzero(valid)
            spans.append(_spans(reads, first, first + n - 1))
    return docs, hashes, spans


class HashingNgramFeaturizer:
    """Turn normalised texts into bags of hashed n-gram ids (``EmbeddingBag`` input).

    Stateless and deterministic: the same text gives the same ids in every process and
    Python version (no reliance on ``hash()``), so no vocabulary file is needed.
    """

    def __init__(self, config: NgramFeatureConfig | None = None) -> None:
        self.config = config or NgramFeatureConfig()

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ids, offsets)``: flat int64 bucket ids and the start of each text's bag."""
        ids, offsets, _ = self._featurise(texts, spans=False)
        return ids, offsets

    def with_spans(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, offsets, spans)``: the ids and offsets of calling it, and the ``[start, end)``
        characters of its own text that each feature reads (``spans[k]`` for ``ids[k]``, int64
        ``[n, 2]``): what the ``ngram`` explainer shows. A pinyin feature reads the characters
        its syllables are read from; one of the start or end marker, a separator or a run
        break alone reads none (an empty span)."""
        return self._featurise(texts, spans=True)

    def _featurise(self, texts: Sequence[str], spans: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        cfg = self.config
        codes, doc_of, doc_end = _encode(texts)
        lengths = [len(t) for t in texts]
        text_reads = _text_reads(texts) if spans else None
        feature_docs, feature_hashes, feature_spans = _char_ngrams(
            codes, doc_of, doc_end, cfg.char_ngram_min, cfg.char_ngram_max, 0, text_reads)
        if cfg.pinyin:
            # The text as spoken, spelled in pinyin: 你这个傻逼, 你zhege傻逼, 你这个煞笔 and
            # "ni zhe ge sha bi" all read ni zhe ge sha bi, so their pinyin n-grams coincide.
            places = [_places(t) for t in texts]
            spoken = [[[unit for unit, _, _ in run] for run in runs] for runs in places]
            if cfg.pinyin_units == "letters":
                letters = [" ".join("".join(run) for run in runs) for runs in spoken]
                reads = _letter_reads(places, lengths) if spans else None
                docs, hashes, read = _char_ngrams(*_encode(letters), PINYIN_NGRAM_MIN, PINYIN_NGRAM_MAX, 50, reads)
            else:  # syllables as words, n-grams within a run (a break in the speech breaks them)
                syllables = [f"{_SEPARATOR}{_RUN_BREAK}{_SEPARATOR}".join(_SEPARATOR.join(run) for run in runs)
                             for runs in spoken]
                reads = _syllable_reads(places) if spans else None
                docs, hashes, read = self._segmented_ngrams(syllables, PINYIN_SYLLABLES_MAX, 200, reads)
            feature_docs += docs
            feature_hashes += hashes
            feature_spans += read

        if cfg.word_ngram_max and cfg.words == "alnum":
            is_word = _WORD_CHAR[np.minimum(codes, _WORD_CHAR.size - 1).astype(np.int64)]
            docs, hashes, read = self._word_ngrams(codes, doc_of, is_word, cfg.word_ngram_max, reads=text_reads)
        elif cfg.word_ngram_max:
            # Segmented tokens joined by a separator that normalised text never contains.
            cuts = [_segment(t) for t in texts]
            words = [[w for w in ws if not w.isspace()] for ws in cuts]
            reads = _word_reads(texts, cuts) if spans else None
            docs, hashes, read = self._segmented_ngrams([_SEPARATOR.join(ws) for ws in words], cfg.word_ngram_max,
                                                        word_reads=reads)
        else:
            docs, hashes, read = [], [], []
        if cfg.pinyin:
            # Abbreviations by initials ("sb" for 傻逼) as words.
            longest = INITIALS_LONGEST[cfg.pinyin_units]
            initials = [_SEPARATOR.join(_pinyin_initials(runs, longest)) for runs in spoken]
            reads = _initial_reads(places, longest) if spans else None
            more_docs, more_hashes, more_read = self._segmented_ngrams(initials, 1, word_reads=reads)
            docs, hashes, read = docs + more_docs, hashes + more_hashes, read + more_read
        feature_docs.extend(docs)
        feature_hashes.extend(hashes)
        feature_spans.extend(read)

        docs = np.concatenate(feature_docs)
        order = np.argsort(docs, kind="stable")
        ids = (np.concatenate(feature_hashes)[order] % _U64(cfg.num_buckets)).astype(np.int64)
        counts = np.bincount(docs, minlength=len(texts))
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return ids, offsets, np.concatenate(feature_spans)[order] if spans else None

    def _segmented_ngrams(self, segmented: list[str], max_n: int, salt: int = 100,
                          word_reads: tuple[np.ndarray, np.ndarray] | None = None):
        codes, doc_of, _ = _encode(segmented)
        return self._word_ngrams(codes, doc_of, codes > _U64(3), max_n, salt, word_reads=word_reads)

    def _word_ngrams(self, codes: np.ndarray, doc_of: np.ndarray, is_word: np.ndarray, max_n: int, salt: int = 100,
                     reads: tuple[np.ndarray, np.ndarray] | None = None,
                     word_reads: tuple[np.ndarray, np.ndarray] | None = None):
        """Hashes of word n-grams, with the text each belongs to, and given ``reads`` (per position
        of ``codes``) or ``word_reads`` (``lo``, ``hi`` per word, in order), the span each reads."""
        edges = np.diff(np.concatenate([[False], is_word, [False]]).astype(np.int8))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        if starts.size == 0:
            return [], [], []
        # Content-only hash of codes[a:b] from prefix sums: sum_j c_j * B^(a-j) = B^a * (G_b - G_a).
        inv_powers = np.cumprod(np.full(codes.size, _BASE_INV, dtype=_U64))
        inv_powers = np.concatenate([[_U64(1)], inv_powers[:-1]])
        powers = np.cumprod(np.full(codes.size, _BASE, dtype=_U64))
        powers = np.concatenate([[_U64(1)], powers[:-1]])
        prefix = np.concatenate([[_U64(0)], np.cumsum(codes * inv_powers, dtype=_U64)])
        words = powers[starts] * (prefix[ends] - prefix[starts])
        word_docs = doc_of[starts]
        docs, hashes = [word_docs], [_mix(words, salt=salt + 1)]
        if reads is not None:
            word_reads = reads[0][starts], reads[1][ends - 1]
        spans = [] if word_reads is None else [_spans(word_reads, np.arange(starts.size), np.arange(starts.size))]
        combined = words
        for n in range(2, max_n + 1):
            same_doc = word_docs[n - 1 :] == word_docs[: word_docs.size - n + 1]
            combined = combined[:-1] * _U64(_MIX) + words[n - 1 :]
            docs.append(word_docs[n - 1 :][same_doc])
            hashes.append(_mix(combined[same_doc], salt=salt + n))
            if word_reads is not None:
                first = np.flatnonzero(same_doc)
                spans.append(_spans(word_reads, first, first + n - 1))
        return docs, hashes, spans
