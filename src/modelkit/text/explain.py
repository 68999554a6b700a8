"""Text evidence: which characters of a text drove a category's score.

Two explainers (see :mod:`modelkit.explain`), both giving a weight per character of the text as
given, then spans: runs of characters of positive weight, best (largest summed weight) first.

* ``ngram`` (:func:`explain_ngram`): exact. The ``ngram`` model's logit for a text is its logit
  for one window (the maximum over windows), and with a linear head that is a bias plus one term
  per hashed n-gram of the window (:func:`ngram_contributions`); each term is spread over the
  characters its n-gram reads. One featurisation and one forward pass of the batch, as scoring,
  then a product with the head's weights: evidence for every text of 2,000 COLD dev texts costs
  1.9 times their scoring, for the flagged ones 1.0 times (runs/text-cold, 2 cores).
* ``text`` (:func:`explain_occlusion`), for any text model (transformers): blank out stretches
  of the text (whole words of spaced scripts), score every blanked copy in one batch; a
  character weighs what hiding it costs the category's logit. A model that reads context pays a
  little for any stretch hidden, so spans keep only characters above a share of the heaviest.

The ``ngram`` model reads the normalised text (NFKC, case folding, separators and repeats
removed, emoji spelled out, ...), so its n-grams are mapped back onto the text as given through
an alignment of the two (:func:`alignment`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from . import chinese
from .models import NgramTextModel
from .normalize import NormalizerConfig
from .processors import NgramProcessor, char_windows

if TYPE_CHECKING:
    from ..classifier import Classifier

# Spans an evidence item lists, best first.
TOP_SPANS = 3
# Occlusion keeps characters above this share of the heaviest one: a transformer reads context,
# so hiding any stretch costs it a little, and runs of merely positive characters fill the text
# (the tiny BERT of the tests, 440 texts with a planted cue: the top span finds the cue in 20 %
# of them at 0, 88 % at 1/4, 91 % at 1/3, 82 % at 1/2).
OCCLUSION_LEVEL = 1 / 3
# Aligning normalised and given text: how far ahead a resumption is looked for, and how many
# characters must agree there.
_LOOKAHEAD = 64
_ANCHOR = 3
# Steps of the integrated gradients that decompose a head with a hidden layer.
IG_STEPS = 64


# --------------------------------------------------------------------------------------------
# Normalised text -> text as given
# --------------------------------------------------------------------------------------------
_ANY_SPACE = re.compile(r"\s")


@lru_cache(maxsize=65536)
def _folded(char: str, homoglyphs: bool, nfkc: bool, casefold: bool) -> str:
    """One character as :func:`_fold` makes it (one or more characters)."""
    if homoglyphs:
        char = chinese.fold_homoglyphs(char)
    if nfkc:
        char = unicodedata.normalize("NFKC", char)
    if casefold:
        char = char.casefold()
    return " " if char.isspace() else char


def _fold(text: str, config: NormalizerConfig) -> str:
    """What the normaliser makes of ``text`` when it removes and inserts nothing."""
    if config.fold_homoglyphs:
        text = chinese.fold_homoglyphs(text)
    if config.nfkc:
        text = unicodedata.normalize("NFKC", text)
    if config.traditional_to_simplified:
        text = chinese.to_simplified(text)
    if config.casefold:
        text = text.casefold()
    return _ANY_SPACE.sub(" ", text)


def _agreeing(a: str, i: int, b: str, j: int) -> int:
    """How many characters ``a[i:]`` and ``b[j:]`` share at their start."""
    agree, step = 0, 256
    while step:
        piece = a[i + agree : i + agree + step]
        if piece and piece == b[j + agree : j + agree + len(piece)]:
            agree += len(piece)
        else:
            step //= 2
    return agree


def _match(normalised: str, view: str) -> np.ndarray:
    """Per character of ``view``, the character of ``normalised`` matched to it (-1: none). Both
    are walked together, equal stretches matched; where they differ the walk resumes at the
    nearest place (fewest characters skipped on both sides, within :data:`_LOOKAHEAD`) where
    :data:`_ANCHOR` characters agree: the normaliser's edits are local. Linear in the length,
    where a longest-common-substring diff (difflib) takes seconds on a page."""
    owner = np.full(len(view), -1, dtype=np.int64)
    i = j = 0
    while i < len(normalised) and j < len(view):
        agree = _agreeing(normalised, i, view, j)
        if agree:
            owner[j : j + agree] = np.arange(i, i + agree)
            i, j = i + agree, j + agree
            continue
        best = None
        for ahead in range(min(_LOOKAHEAD, len(normalised) - i)):
            if best is not None and ahead >= sum(best):
                break
            anchor = normalised[i + ahead : i + ahead + _ANCHOR]
            found = view.find(anchor, j, j + _LOOKAHEAD + len(anchor))
            if found >= 0 and (best is None or ahead + found - j < sum(best)):
                best = (ahead, found - j)
        # Nowhere to resume nearby: a character rewritten, stepped over on both sides.
        ahead, behind = best or (1, 1)
        i, j = i + ahead, j + behind
    return owner


def alignment(original: str, normalised: str, config: NormalizerConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per character of ``normalised`` (the normaliser's output for ``original``), the characters
    ``[lo, hi)`` of ``original`` it comes from; both never decrease along the text.

    The normaliser keeps no offsets, so this matches its output against the text folded
    character by character the same way (homoglyphs, NFKC, case, simplified characters, any
    whitespace as a space): what it removed (separators, invisible characters) is left
    unmatched in the text, a squashed repeat joins the character it repeats, and what it inserted
    or rewrote beyond one character (emoji spelled out) shares the stretch of text between its
    matched neighbours."""
    original = original[: config.max_chars]
    if len(normalised) == len(original) and (normalised == original or normalised == _fold(original, config)):
        positions = np.arange(len(original))  # character for character (full-width, case)
        return positions, positions + 1
    pieces = [_folded(char, config.fold_homoglyphs, config.nfkc, config.casefold) for char in original]
    view = "".join(pieces)
    if config.traditional_to_simplified:
        simplified = chinese.to_simplified(view)
        view = simplified if len(simplified) == len(view) else view
    origin = np.repeat(np.arange(len(original)), [len(piece) for piece in pieces])
    owner = _match(normalised, view)
    # A character squashed as a repeat (傻傻傻逼 -> 傻傻逼) belongs to the one it repeats.
    for j in np.flatnonzero(owner < 0):
        if j > 0 and owner[j - 1] >= 0 and view[j] == view[j - 1]:
            owner[j] = owner[j - 1]
    for j in np.flatnonzero(owner < 0)[::-1]:
        if j + 1 < len(view) and owner[j + 1] >= 0 and view[j] == view[j + 1]:
            owner[j] = owner[j + 1]
    owned = owner >= 0
    lo = np.full(len(normalised), len(original), dtype=np.int64)
    hi = np.zeros(len(normalised), dtype=np.int64)
    np.minimum.at(lo, owner[owned], origin[owned])
    np.maximum.at(hi, owner[owned], origin[owned] + 1)
    matched = np.zeros(len(normalised), dtype=bool)
    matched[owner[owned]] = True
    if not matched.all():
        # An unmatched stretch shares the text between its matched neighbours evenly.
        index = np.arange(len(normalised))
        before = np.maximum.accumulate(np.where(matched, index, -1))
        after = np.minimum.accumulate(np.where(matched, index, len(normalised))[::-1])[::-1]
        start = np.where(before >= 0, hi[np.maximum(before, 0)], 0)
        stop = np.where(after < len(normalised), lo[np.minimum(after, len(normalised) - 1)], len(original))
        start, stop = np.minimum(start, stop), np.maximum(start, stop)
        count, rank = after - before - 1, index - before - 1
        share = stop - start
        lo = np.where(matched, lo, start + rank * share // np.maximum(count, 1))
        hi = np.where(matched, hi, start + -(-(rank + 1) * share // np.maximum(count, 1)))
    lo = np.maximum.accumulate(lo) if lo.size else lo
    return lo, np.maximum(np.maximum.accumulate(hi) if hi.size else hi, lo)


def _alignments(originals: Sequence[str], normalised: Sequence[str], config: NormalizerConfig
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`alignment` of every text, concatenated: ``lo``, ``hi`` and where each text's part
    starts. Each part has one place more, the end of the text as given (an empty span there)."""
    los, his = [], []
    for original, text in zip(originals, normalised):
        lo, hi = alignment(original, text, config)
        end = np.array([min(len(original), config.max_chars)])
        los += [lo, end]
        his += [hi, end]
    sizes = np.array([len(text) + 1 for text in normalised], dtype=np.int64)
    return np.concatenate(los), np.concatenate(his), np.cumsum(sizes) - sizes


# --------------------------------------------------------------------------------------------
# Characters -> spans
# --------------------------------------------------------------------------------------------
def _spread(lengths: np.ndarray, owner: np.ndarray, spans: np.ndarray, values: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per character of several texts of ``lengths`` characters, laid end to end with one empty
    place after each, the sum of ``values[k] / len(span k)`` over the spans of its text covering
    it (span k lies in text ``owner[k]``); and where each text starts."""
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    sizes = spans[:, 1] - spans[:, 0]
    keep = sizes > 0
    density = values[keep] / sizes[keep]
    at = starts[owner[keep]]
    total = int(starts[-1] + lengths[-1] + 1) if lengths.size else 0
    change = np.bincount(at + spans[keep, 0], density, minlength=total + 1)
    change -= np.bincount(at + spans[keep, 1], density, minlength=total + 1)
    return np.cumsum(change)[:total], starts


def _top_spans(weights: np.ndarray, starts: np.ndarray, level: float = 1e-6,
               most: int = TOP_SPANS) -> list[list[tuple[int, int, float]]]:
    """Per text (laid out as :func:`_spread` does), its runs of characters weighing more than
    ``level`` times its heaviest, ``(start, end, summed weight)``, the ``most`` best first."""
    if starts.size == 0:
        return []
    # The default level only drops the crumbs (1e-17) that sums of floats leave on characters
    # that nothing reads.
    peak = np.maximum.reduceat(weights, starts)
    text_of = np.repeat(np.arange(starts.size), np.diff(np.append(starts, weights.size)))
    positive = (weights > level * peak[text_of]) & (peak[text_of] > 0)
    positive[np.append(starts[1:], weights.size) - 1] = False  # the empty place after each text
    edges = np.diff(np.concatenate([[False], positive, [False]]).astype(np.int8))
    begin, end = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    running = np.concatenate([[0.0], np.cumsum(weights)])
    sums = running[end] - running[begin]
    owner = text_of[begin]
    order = np.lexsort((-sums, owner))
    rank = np.arange(order.size) - np.searchsorted(owner[order], owner[order])
    kept = order[rank < most]
    found: list[list[tuple[int, int, float]]] = [[] for _ in starts]
    for text, a, b, weight in zip(owner[kept].tolist(), (begin[kept] - starts[owner[kept]]).tolist(),
                                  (end[kept] - starts[owner[kept]]).tolist(), sums[kept].tolist()):
        found[text].append((a, b, weight))
    return found


def _word(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _tidy(text: str, start: int, end: int) -> tuple[int, int]:
    """A span a reader takes in: no spaces or punctuation at its ends, and in spaced scripts no
    fragment of a word at either end (character n-grams reach across word edges) unless the span
    is inside one word."""
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    if start > 0 and start < end and _word(text[start - 1]) and _word(text[start]):
        space = text.find(" ", start, end)
        if space != -1:
            start = space + 1
    if end < len(text) and start < end and _word(text[end - 1]) and _word(text[end]):
        space = text.rfind(" ", start, end)
        if space != -1:
            end = space
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return start, end


def _item(category: str, text: str, spans: list[tuple[int, int, float]], method: str) -> dict[str, Any]:
    """An evidence item: the best span, and up to :data:`TOP_SPANS` spans best first. With no span
    of positive weight the item says so: an empty place of weight 0."""
    tidied = []
    for a, b, weight in spans:
        start, end = _tidy(text, a, b)
        tidied.append((start, end, weight) if start < end else (a, b, weight))
    spans = tidied
    start, end, weight = spans[0] if spans else (0, 0, 0.0)
    return {"category": category, "weight": round(weight, 4), "start": start, "end": end, "text": text[start:end],
            "spans": [{"start": a, "end": b, "weight": round(w, 4)} for a, b, w in spans], "method": method}


def _columns(classifier: Classifier, categories: Sequence[Sequence[str]], who: str) -> list[list[int]]:
    known = {c: i for i, c in enumerate(classifier.categories)}
    for names in categories:
        for name in names:
            if name not in known:
                raise ValueError(f"{who}: unknown category {name!r} (the model scores {sorted(known)})")
    return [[known[name] for name in names] for names in categories]


# --------------------------------------------------------------------------------------------
# ngram: exact contributions
# --------------------------------------------------------------------------------------------
@dataclass
class NgramAttribution:
    """A category's logit for one text as ``bias + sum(contribution)`` over the hashed n-grams of
    the window that gave it (the text's logit is the maximum over its windows).

    ``features``: ``(start, end, contribution)`` per n-gram, ``start:end`` the characters of the
    text as given that it reads (empty for an n-gram of the text's start or end marker alone).
    With a linear head (``hidden_dim: 0``, the default) the sum is exact, ``bias`` is the head's
    bias. A head with a hidden layer is not a sum over n-grams: then the contributions are
    integrated gradients along the pooled vector from zero (:data:`IG_STEPS` steps), and
    ``bias`` is the rest, the logit at zero plus the integration error: an approximation."""

    logit: float
    bias: float
    features: list[tuple[int, int, float]]


@dataclass
class _Attributions:
    """:class:`NgramAttribution` of many (text, category) pairs, flat: pair k is text
    ``text[k]``'s category ``column[k]``; feature f belongs to pair ``pair[f]``."""

    text: np.ndarray
    column: np.ndarray
    logit: np.ndarray
    bias: np.ndarray
    pair: np.ndarray
    spans: np.ndarray  # [features, 2], in the text as given
    contributions: np.ndarray


def _linear_head(model: NgramTextModel) -> torch.nn.Linear | None:
    linear = [layer for layer in model.head.layers if isinstance(layer, torch.nn.Linear)]
    return linear[0] if len(linear) == 1 else None


def _average_gradients(head: torch.nn.Module, pooled: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Integrated gradients' mean gradient of each row's column along the line from 0 to ``pooled``
    (midpoint rule)."""
    alphas = (torch.arange(IG_STEPS, device=pooled.device, dtype=pooled.dtype) + 0.5) / IG_STEPS
    with torch.enable_grad():
        path = (alphas[:, None, None] * pooled[None]).requires_grad_(True)
        picked = head(path).gather(2, columns.expand(IG_STEPS, -1).unsqueeze(2)).sum()
        (gradient,) = torch.autograd.grad(picked, path)
    return gradient.mean(0)


def _ngram_attributions(classifier: Classifier, inputs: Sequence[Any],
                        columns: Sequence[Sequence[int]]) -> _Attributions:
    """Each input's logit for each of its category columns, decomposed over the n-grams of its best
    window. All inputs' windows are featurised and scored in one batch, as scoring does."""
    model, processor = classifier.model, classifier.processor
    if not isinstance(model, NgramTextModel) or not isinstance(processor, NgramProcessor):
        raise ValueError(f"ngram explanations need an ngram model with its text_ngram processor, "
                         f"not {type(model).__name__} with {type(processor).__name__}")
    processor = processor.in_mode(False)
    originals, normalised, pieces, piece_of = [], [], [], []
    for number, raw in enumerate(inputs):
        text = processor.decode(raw)
        # Scoring cuts a long text into pieces (windows are counted from each piece's start).
        items = [text] if len(text) <= processor.piece_chars else [item for item, _ in processor.pieces(raw)]
        originals.append(processor.value_of(raw))
        normalised.append(str(text))
        pieces += items
        piece_of += [number] * len(items)
    windows, rows = char_windows(pieces, processor.config.window_chars, processor.config.clause_windows)
    owner = np.asarray(piece_of, dtype=np.int64)[rows]
    ids, offsets, spans = processor.featurizer.with_spans(windows)
    device = model.embedding.weight.device
    with torch.no_grad():
        logits, _ = model.eval().part_logits(torch.from_numpy(ids).to(device), torch.from_numpy(offsets).to(device),
                                             torch.from_numpy(rows).to(device))
    logits = logits.float().cpu().numpy()

    # Per pair, the window of the input's largest logit for the category.
    text = np.repeat(np.arange(len(inputs)), [len(wanted) for wanted in columns])
    column = np.asarray([c for wanted in columns for c in wanted], dtype=np.int64)
    bounds = np.searchsorted(owner, np.arange(len(inputs) + 1))
    chosen = bounds[text]
    for k in np.flatnonzero(bounds[text + 1] - bounds[text] > 1):
        chosen[k] += int(np.argmax(logits[bounds[text[k]]:bounds[text[k] + 1], column[k]]))
    # Where the chosen window lies in its normalised text: windows are slices of it, and one
    # that occurs twice reads alike at both places.
    at = np.asarray([0 if len(windows[w]) == len(normalised[t]) else max(normalised[t].find(windows[w]), 0)
                     for t, w in zip(text.tolist(), chosen.tolist())], dtype=np.int64)

    ends = np.append(offsets[1:], ids.size)
    counts = ends[chosen] - offsets[chosen]
    pair = np.repeat(np.arange(chosen.size), counts)
    features = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts) + offsets[chosen][pair]
    norm = counts.astype(np.float64) if model.config.pooling == "mean" else np.sqrt(counts)
    scale = (1.0 / norm)[pair]
    linear = _linear_head(model)
    contributions = np.empty(pair.size)
    with torch.no_grad():
        if linear is not None:
            # Per category, its pairs' n-grams' embedding rows times the head's weights; for many
            # n-grams, projecting the whole table first is cheaper than gathering their rows
            # (about 10x per row: 2,000 short texts on a table of 2^20 x 64 take 27 ms, not 95).
            table = model.embedding.weight
            rows = torch.from_numpy(ids[features]).to(device)
            wanted = torch.from_numpy(column[pair]).to(device)
            if table.shape[0] <= 8 * rows.numel():
                # Project the whole table on every category at once (one matrix product), then pick.
                values = (table @ linear.weight.T)[rows, wanted]
            else:
                values = (table[rows] * linear.weight[wanted]).sum(1)
            contributions[:] = values.double().cpu().numpy() * scale
        else:
            vectors = model.embedding.weight[torch.from_numpy(ids[features]).to(device)]
            vectors = vectors * torch.from_numpy(scale).to(device=device, dtype=vectors.dtype)[:, None]
            pair_t = torch.from_numpy(pair).to(device)
            pooled = torch.zeros(chosen.size, vectors.shape[1], device=device).index_add_(0, pair_t, vectors)
            gradients = _average_gradients(model.head, pooled, torch.from_numpy(column).to(device))
            contributions[:] = (vectors * gradients[pair_t]).sum(1).double().cpu().numpy()
    logit = logits[chosen, column].astype(np.float64)
    if linear is not None:
        bias = linear.bias.detach().double().cpu().numpy()[column]
    else:
        bias = logit - np.bincount(pair, contributions, minlength=chosen.size)

    # Spans in the window -> in the normalised text -> in the text as given.
    lo, hi, first = _alignments(originals, normalised, processor.config.normalizer)
    local = spans[features] + at[pair, None]
    base = first[text[pair]]
    start = lo[base + local[:, 0]]
    end = np.where(local[:, 1] > local[:, 0], hi[base + np.maximum(local[:, 1] - 1, 0)], start)
    return _Attributions(text, column, logit, bias, pair, np.stack([start, np.maximum(end, start)], axis=1),
                         contributions)


def ngram_contributions(classifier: Classifier, text: str, category: str) -> NgramAttribution:
    """``category``'s logit for ``text`` (``classifier.predict_logits([text])[0, j]``) as a bias plus
    one contribution per hashed n-gram of the window that gave it (see :class:`NgramAttribution`)."""
    found = _ngram_attributions(classifier, [text], _columns(classifier, [[category]], "ngram_contributions"))
    features = [(int(a), int(b), float(c)) for (a, b), c in zip(found.spans.tolist(), found.contributions)]
    return NgramAttribution(float(found.logit[0]), float(found.bias[0]), features)


def explain_ngram(classifier: Classifier, inputs: Sequence[Any],
                  categories: Sequence[Sequence[str]]) -> list[list[dict[str, Any]]]:
    """The ``ngram`` model's explainer: each n-gram's contribution spread evenly over the
    characters it reads, then the runs of positive characters; ``weight``: the logit the best
    span carries."""
    columns = _columns(classifier, categories, "explain_ngram")
    if not any(columns):
        return [[] for _ in inputs]
    found = _ngram_attributions(classifier, inputs, columns)
    texts = [classifier.processor.value_of(raw) for raw in inputs]
    lengths = np.asarray([len(texts[t]) for t in found.text.tolist()], dtype=np.int64)
    spans = _top_spans(*_spread(lengths, found.pair, found.spans, found.contributions))
    names = [name for wanted in categories for name in wanted]
    evidence: list[list[dict[str, Any]]] = [[] for _ in inputs]
    for t, name, best in zip(found.text.tolist(), names, spans):
        evidence[t].append(_item(name, texts[t], best, "ngram"))
    return evidence


# --------------------------------------------------------------------------------------------
# text: occlusion, for any text model
# --------------------------------------------------------------------------------------------
# A word of a spaced script (letters and digits below the CJK blocks) and the spaces after it.
_SPACED_WORD = re.compile("([^\\W_\u2e80-\U0010ffff]+)\\s*")
# Stretches of characters, and of words, hidden at once: a phrase whose words stand in for each
# other drops the score only when hidden together.
_SCALES = (1, 2)
_WORDS = (1, 2, 3)


def _stretches(text: str, size: int, stride: int, most: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the stretches to hide: runs of 1 to 3 words of a spaced script (with
    the spaces after them; part of a word is a string the model never saw, and hiding it says
    more about that than about the word), and ``size`` and ``2 * size`` characters every
    ``stride`` and ``2 * stride`` that cut no such word. A text longer than ``most`` strides is
    hidden in at most ``most`` stretches of two strides, words or not."""
    if len(text) > most * stride:
        stride = math.ceil(len(text) / most)
        return [(start, min(start + 2 * stride, len(text))) for start in range(0, len(text), stride)]
    matches = list(_SPACED_WORD.finditer(text))
    word_of = np.full(len(text) + 1, -1)
    for number, match in enumerate(matches):
        word_of[match.start(1) : match.end(1)] = number
    stretches = {(matches[k].start(), matches[k + n - 1].end()) for n in _WORDS for k in range(len(matches) - n + 1)}
    for scale in _SCALES:
        width, step = size * scale, stride * scale
        starts = np.arange(0, max(len(text) - width, 0) + 1, step)
        if starts[-1] + width < len(text):
            starts = np.append(starts, len(text) - width)
        ends = np.minimum(starts + width, len(text))
        cut = (starts > 0) & (word_of[starts] >= 0) & (word_of[np.maximum(starts - 1, 0)] == word_of[starts])
        cut |= (word_of[ends] >= 0) & (word_of[ends - 1] == word_of[ends])
        stretches.update((int(a), int(b)) for a, b, c in zip(starts, ends, cut) if not c and b > a)
    return sorted(stretches)


def _hidden(raw: Any, modality: str, text: str, start: int, end: int) -> Any:
    """The input with ``text[start:end]`` blanked out by spaces (the normaliser drops them between
    Chinese characters; between Latin words they keep the words apart)."""
    text = text[:start] + " " * (end - start) + text[end:]
    return {**raw, modality: text} if isinstance(raw, Mapping) else text


def explain_occlusion(classifier: Classifier, inputs: Sequence[Any], categories: Sequence[Sequence[str]], *,
                      size: int = 4, stride: int = 2, most: int = 256, level: float = OCCLUSION_LEVEL,
                      batch_size: int = 64) -> list[list[dict[str, Any]]]:
    """The ``text`` modality's explainer, for any text model: the stretches of :func:`_stretches`
    are blanked out, the copies of all inputs scored in one batched call; a character weighs the
    mean, over the stretches covering it, of the category's logit drop per hidden character.
    Spans are runs of characters above ``level`` times the heaviest, and each is hidden alone
    (one more batched call): its ``weight`` is the logit hiding it costs.

    A text of n characters, w of them words of a spaced script, costs about 1.5 n / ``stride``
    + 3 w scorings of itself; past ``most`` strides it is hidden in ``most`` wider stretches and
    its evidence is coarser."""
    if not 1 <= stride <= size:
        raise ValueError(f"explain_occlusion: need 1 <= stride <= size, got size {size}, stride {stride}")
    columns = _columns(classifier, categories, "explain_occlusion")
    if not any(columns):
        return [[] for _ in inputs]
    modality = classifier.processor.modality
    texts = [classifier.processor.value_of(raw) for raw in inputs]
    stretches = [_stretches(text, size, stride, most) for text in texts]
    copies = [_hidden(raw, modality, text, a, b) for raw, text, places in zip(inputs, texts, stretches)
              for a, b in places]
    logits = classifier.predict_logits(list(inputs) + copies, batch_size=batch_size)
    base, hidden = logits[: len(inputs)], logits[len(inputs):]

    # One row per (input, category) pair, the stretches' drops spread over the characters.
    text = np.repeat(np.arange(len(inputs)), [len(wanted) for wanted in columns])
    column = np.asarray([c for wanted in columns for c in wanted], dtype=np.int64)
    counts = np.asarray([len(places) for places in stretches], dtype=np.int64)
    first = np.cumsum(counts) - counts
    pair = np.repeat(np.arange(text.size), counts[text])
    rows = np.arange(pair.size) - np.repeat(np.cumsum(counts[text]) - counts[text], counts[text]) + first[text][pair]
    places = np.asarray([place for places in stretches for place in places], dtype=np.int64).reshape(-1, 2)[rows]
    drops = (base[text[pair], column[pair]] - hidden[rows, column[pair]]).astype(np.float64)
    lengths = np.asarray([len(texts[t]) for t in text.tolist()], dtype=np.int64)
    drop, starts = _spread(lengths, pair, places, drops)
    covered, _ = _spread(lengths, pair, places, (places[:, 1] - places[:, 0]).astype(np.float64))
    candidates = _top_spans(drop / np.maximum(covered, 1.0), starts, level)

    # Each span's weight: what hiding it alone costs the category.
    checks = [_hidden(inputs[t], modality, texts[t], a, b) for t, spans in zip(text.tolist(), candidates)
              for a, b, _ in spans]
    checked = classifier.predict_logits(checks, batch_size=batch_size) if checks else np.zeros((0, base.shape[1]))
    names = [name for wanted in categories for name in wanted]
    evidence: list[list[dict[str, Any]]] = [[] for _ in inputs]
    at = 0
    for t, c, name, spans in zip(text.tolist(), column.tolist(), names, candidates):
        weighed = [(a, b, float(base[t, c] - checked[at + k, c])) for k, (a, b, _) in enumerate(spans)]
        at += len(spans)
        evidence[t].append(_item(name, texts[t], sorted(weighed, key=lambda span: -span[2]), "occlusion"))
    return evidence
