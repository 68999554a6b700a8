"""Evasion normaliser, pinyin features and the evasion attacks used for augmentation."""

import random

import numpy as np
import pytest

from modelkit.text.augment import ATTACKS, AugmentConfig, apply_attack, rewrite
from modelkit.text.chinese import latin_units, spoken_runs
from modelkit.text.features import HashingNgramFeaturizer, NgramFeatureConfig, _pinyin_initials
from modelkit.text.normalize import NormalizerConfig, TextNormalizer

EVASION = NormalizerConfig(traditional_to_simplified=True, fold_homoglyphs=True, strip_separators=True,
                           max_repeat=1, emoji="describe")


@pytest.mark.parametrize(
    "disguised, plain",
    [
        ("傻 逼", "傻逼"), ("傻*逼", "傻逼"), ("傻❤️逼", "傻逼"), ("傻.-逼", "傻逼"), ("傻逼傻傻傻逼", "傻逼傻逼"),
        ("你是 s b 吗", "你是sb吗"), ("像🙏hzbh看", "像hzbh看"), ("s.b", "sb"), ("傻逼 說話", "傻逼说话"), ("ＳＢ", "sb"), ("ѕеx", "sex"), ("ϲao", "cao"),
        ("约吗🍆", "约吗 eggplant"), ("你好，我是小明。", "你好,我是小明。"), ("hi world", "hi world"),
    ],
)
def test_evasion_normaliser_folds_disguises(disguised, plain):
    assert TextNormalizer(EVASION)(disguised) == plain


@pytest.mark.parametrize(
    "word, units",
    [("shabi", ("sha", "bi")), ("sb", ("s", "b")), ("shab", ("sha", "b")), ("xian", ("xian",)),
     ("zhege", ("zhe", "ge")), ("nmsl", ("n", "m", "s", "l"))],
)
def test_latin_runs_read_as_pinyin_where_they_can(word, units):
    assert latin_units(word) == units


def test_spoken_runs_break_at_punctuation_only():
    assert spoken_runs("哈哈。我也是sha bi,ok!") == [["ha"], ["wo", "ye", "shi", "sha", "bi"], ["o", "k"]]
    assert spoken_runs("") == [] and spoken_runs("123 !") == []


@pytest.mark.parametrize("text", ["no emoji at all", "傻🍆逼", "1\ufe0f\u20e3 keycap", "#\ufe0f\u20e3", "©2024 ®",
                                  "👨\u200d👩\u200d👧 family", "🇨🇳 flag", "👍🏽 skin tone", "中文，标点！"])
def test_emoji_shortcut_changes_nothing(text):
    """Texts with no emoji character skip the emoji package; the others go through it as before."""
    import emoji

    from modelkit.text.chinese import describe_emoji, remove_emoji

    named = emoji.replace_emoji(text, replace=lambda chars, data: " " + data["en"].strip(":").replace("_", " ") + " ")
    assert describe_emoji(text) == named
    assert remove_emoji(text) == emoji.replace_emoji(text, replace=" ")


def test_evasion_steps_are_on_by_default_and_off_for_checkpoints_written_before():
    assert TextNormalizer(NormalizerConfig())("傻 逼 說話 ѕех 🍆") == "傻逼说话sex eggplant"
    assert TextNormalizer(NormalizerConfig(emoji="remove"))("约吗🍆") == "约吗"
    # A stored processor config that does not name them was written when they were off.
    from pathlib import Path

    from modelkit.processing import processor_from_config

    old = processor_from_config({"name": "text_ngram", "normalizer": {}, "features": {}}, Path("."))
    assert old.normalizer("傻 逼 說話 ѕех 🍆") == "傻 逼 說話 ѕех 🍆"
    assert (old.config.features.words, old.config.features.pinyin, old.config.clause_windows) == ("alnum", False, 0)
    with pytest.raises(ValueError, match="max_repeat"):
        NormalizerConfig(max_repeat=-1)


def _features(text, **config):
    ids, _ = HashingNgramFeaturizer(NgramFeatureConfig(**{"words": "jieba", "pinyin": False, **config}))([text])
    return set(ids.tolist())


def test_pinyin_features_meet_latin_spellings():
    chinese = _features("你这个傻逼", pinyin=True)
    markers = _features("", pinyin=True)  # text start/end features every text has
    for latin in ("shabi", "sb", "sha bi"):
        assert _features(latin, pinyin=True) - markers & chinese, latin
        assert not (_features(latin) - markers) & _features("你这个傻逼"), latin
    # An abbreviation or a pinyin spelling inside a sentence keeps the sentence's initials windows.
    original = _pinyin_initials(spoken_runs("你傻逼不分男女"))
    assert {"sb", "sbbf", "nsb"} <= set(original)
    for spelling in ("你sbbf男女", "你shabi不分男女", "你sha bi不分男女", "你煞笔不分男女", "你傻傻逼不分男女"):
        assert _pinyin_initials(spoken_runs(spelling)) == original, spelling
    # A homophone shares the pinyin features too.
    assert len(_features("你这个煞笔", pinyin=True) & chinese) > len(_features("你这个煞笔") & _features("你这个傻逼"))
    # Without a segmenter the pinyin channels still read the text aloud.
    assert _features("煞笔", pinyin=True, words="alnum") & _features("傻逼", pinyin=True, words="alnum") - markers


@pytest.mark.parametrize("attack", [*ATTACKS, "all"])
def test_attacks_are_deterministic_and_change_text(attack):
    text = "你这个傻逼真是垃圾中的垃圾 sex"
    once = apply_attack(text, attack, random.Random(3))
    assert once == apply_attack(text, attack, random.Random(3))
    assert once != text


@pytest.mark.parametrize("attack", ["separator", "traditional", "emoji", "homoglyph", "repeat"])
def test_normaliser_undoes_surface_attacks(attack):
    normalise = TextNormalizer(EVASION)
    for seed, text in enumerate(["你这个傻逼真是垃圾中的垃圾", "fuck you sex video 免费看"]):
        assert normalise(apply_attack(text, attack, random.Random(seed))) == normalise(text)


def test_augment_config_and_augmenter():
    with pytest.raises(ValueError, match="unknown attack 'leet'"):
        AugmentConfig(probability=0.5, attacks=["leet"])
    with pytest.raises(ValueError, match="probability"):
        AugmentConfig(probability=1.5)
    with pytest.raises(ValueError, match="unknown attack"):
        apply_attack("x", "leet", random.Random(0))
    text = "你这个傻逼真是垃圾"
    assert rewrite(text, AugmentConfig(probability=0.0), random.Random(0)) == text
    changed = [rewrite(text, AugmentConfig(probability=1.0, attacks=["separator"]), random.Random(s)) for s in range(5)]
    assert all(c != text for c in changed) and len(set(changed)) > 1
    # Benign rows follow their own rate: here they are never rewritten, harmful ones always.
    harmful_only = AugmentConfig(probability=1.0, benign_probability=0.0, attacks=["separator"])
    rng = random.Random(0)
    assert [rewrite(text, harmful_only, rng, benign=True) for _ in range(5)] == [text] * 5
    assert all(rewrite(text, harmful_only, rng) != text for _ in range(5))
    with pytest.raises(ValueError, match="augment.benign_probability must be in"):
        AugmentConfig(probability=0.5, benign_probability=-0.1)


def test_length_grouped_batches_cover_every_row_once():
    from modelkit.training.loaders import LengthGroupedBatches as _LengthGroupedBatches

    lengths = np.random.default_rng(0).integers(1, 200, 1000)
    sampler = _LengthGroupedBatches(lengths, batch_size=16, seed=0, window=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 63
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches if len(b) == 16])
    assert spread < 0.25 * np.ptp(lengths)  # rows of a batch have similar lengths
    assert list(sampler) != batches  # a new order every epoch
    evaluation = list(_LengthGroupedBatches(lengths, batch_size=16, seed=0, shuffle=False))
    flat = [i for b in evaluation for i in b]
    assert sorted(flat) == list(range(1000)) and list(lengths[flat]) == sorted(lengths, reverse=True)
