"""Evasion: what pads, lengthens or disguises a violation must not hide it (items 15, 16 and 18).

OCR of turned and long pictures (item 17) is in test_ocr.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import modelkit
from modelkit.text.synthetic import CUES, FILLERS

from conftest import REPO


def _padding(fillers: list[str], size: int, rng: random.Random, joiner: str = "，") -> str:
    text = ""
    while len(text) < size:
        text += rng.choice(fillers) + joiner
    return text


def _placed(violation: str, padding: str, where: str) -> str:
    """``violation`` as a sentence of its own after, before or in the middle of ``padding``."""
    half = len(padding) // 2
    return {"after": padding + "。" + violation, "before": violation + "。" + padding,
            "middle": padding[:half] + "。" + violation + "。" + padding[half:]}[where]


def _worst_ratio(classifier, violations: list[str], padding: str, category: str) -> dict[str, float]:
    column = classifier.categories.index(category)
    alone = classifier.predict_proba(violations)[:, column]
    return {where: float(np.min(classifier.predict_proba([_placed(v, padding, where) for v in violations])[:, column]
                                / alone))
            for where in ("after", "before", "middle")}


def test_padding_cannot_dilute_a_violation_of_the_demo_model(ngram_checkpoint):
    """The demo recipe's model: each abuse cue scores, padded by 4,300 benign characters on either
    side or both, at least 0.9 of what it scores alone."""
    classifier = modelkit.load(ngram_checkpoint)
    rng = random.Random(0)
    violations = CUES["abuse"]["zh"] + CUES["abuse"]["en"] + CUES["violence"]["zh"]
    padding = _padding(FILLERS["zh"] + FILLERS["en"], 4300, rng)
    for category, cues in (("abuse", CUES["abuse"]["zh"] + CUES["abuse"]["en"]), ("violence", CUES["violence"]["zh"])):
        ratios = _worst_ratio(classifier, cues, padding, category)
        assert min(ratios.values()) >= 0.9, (category, ratios)
    assert len(violations) == 12


def _cold_violations(classifier, shared_data: Path) -> tuple[list[str], str]:
    rows = [json.loads(line) for line in open(shared_data / "cold" / "dev.jsonl", encoding="utf-8")]
    offensive = [r["text"] for r in rows if r["label"] == 1]
    scores = classifier.predict_proba(offensive)[:, 0]
    # Short insults the model flags alone: a sentence someone drops into a long benign post.
    short = [t for t, s in zip(offensive, scores) if s >= classifier.thresholds["abuse"] and len(t) <= 40][:100]
    benign = [r["text"] for r in rows if r["label"] == 0]
    benign = [t for t, s in zip(benign, classifier.predict_proba(benign)[:, 0]) if s < 0.2]
    return short, _padding(benign, 4300, random.Random(1), joiner="。")


def test_padding_cannot_dilute_a_violation_of_the_cold_recipe(cold_checkpoint, shared_data):
    classifier = modelkit.load(cold_checkpoint)
    violations, padding = _cold_violations(classifier, shared_data)
    assert len(violations) == 100
    ratios = _worst_ratio(classifier, violations, padding, "abuse")
    assert min(ratios.values()) >= 0.9, ratios


def test_a_very_long_text_is_read_to_its_end(cold_checkpoint, shared_data):
    """An insult in the middle of 960,000 benign characters scores as it does alone."""
    classifier = modelkit.load(cold_checkpoint)
    violations, padding = _cold_violations(classifier, shared_data)
    filler = (padding * (960_000 // len(padding) + 1))[:960_000]
    texts = [_placed(v, filler, "middle") for v in violations[:1]]
    alone = classifier.predict_proba(violations[:1])[:, 0]
    predictions = classifier.predict(texts)
    scores = np.array([p.scores["abuse"] for p in predictions])
    assert (scores >= 0.9 * alone).all(), (scores, alone)
    assert all(not (p.evidence or {}).get("truncated") for p in predictions)


def test_text_past_the_limit_is_marked_truncated_never_passed_silently(tmp_path):
    from conftest import tiny_text_classifier

    classifier = tiny_text_classifier()
    classifier.processor.normalizer.config.max_chars = 1000
    predictions = classifier.predict(["短", "长" * 5000])
    assert predictions[0].evidence is None
    assert predictions[1].evidence == {"truncated": True, "read_chars": 1000, "total_chars": 5000}
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "long", "text": "长" * 5000}) + "\n")
    modelkit.predict_files(classifier, source, tmp_path / "out", progress=False)
    (row,) = modelkit.read_predictions(tmp_path / "out")
    assert row["evidence"]["truncated"] is True


def test_long_inputs_are_scored_in_pieces_equal_to_whole(ngram_checkpoint):
    """Inference cuts a long text into overlapping pieces; the max over their windows is the max
    over the whole text's windows (every window lies whole in some piece)."""
    classifier = modelkit.load(ngram_checkpoint)
    processor = classifier.processor
    rng = random.Random(3)
    text = _padding(FILLERS["zh"] + FILLERS["en"], 200_000, rng) + "你这个傻逼" + _padding(FILLERS["zh"], 50_000, rng)
    pieces = [piece for piece, _ in processor.pieces(text)]
    assert len(pieces) >= 4 and "你这个傻逼" in "".join(pieces)
    whole = classifier.model(**processor([text])).detach().numpy()
    np.testing.assert_allclose(classifier.predict_logits([text]), whole, rtol=1e-5, atol=1e-5)


# -- item 18: the defences are every text recipe's default ---------------------------------------------
DEFENCES = {"traditional_to_simplified": True, "fold_homoglyphs": True, "strip_separators": True}


def _text_recipes() -> list[Path]:
    return sorted(p for p in (REPO / "configs" / "text").glob("*.yaml"))


@pytest.mark.parametrize("recipe", _text_recipes(), ids=lambda p: p.stem)
def test_every_text_recipe_defends_against_evasion(recipe):
    config = modelkit.load_run_config(recipe)
    if config.ensemble is not None:
        members = [modelkit.load_run_config(member.recipe) for member in config.ensemble.members]
    else:
        members = [config]
    for member in members:
        name, processor = member.processor_kwargs()
        normalizer = modelkit.create_processor(name, **processor).config.normalizer
        assert all(getattr(normalizer, key) == value for key, value in DEFENCES.items()), (recipe.name, normalizer)
        assert normalizer.max_repeat >= 1 and normalizer.emoji != "keep"
        built = modelkit.create_processor(name, **processor).config
        assert built.augment.probability > 0, recipe.name  # training-time attacks
        if name == "text_ngram":
            assert built.features.pinyin, recipe.name


def test_the_demo_recipe_defends_against_evasion():
    from modelkit.demo import text_recipe

    config = modelkit.load_run_config(text_recipe({"train": Path("train.jsonl"), "dev": Path("dev.jsonl")},
                                                  Path("unused")))
    name, processor = config.processor_kwargs()
    built = modelkit.create_processor(name, **processor).config
    assert all(getattr(built.normalizer, key) == value for key, value in DEFENCES.items())
    assert built.features.pinyin and built.augment.probability > 0
