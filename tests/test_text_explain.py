import numpy as np
import pytest
import torch

import modelkit
from modelkit.explain import explain
from modelkit.text.explain import alignment, explain_occlusion, ngram_contributions
from modelkit.text.features import HashingNgramFeaturizer, NgramFeatureConfig
from modelkit.text.normalize import NormalizerConfig, TextNormalizer
from modelkit.text.synthetic import CUES, FILLERS

# Texts the normaliser rewrites: full-width letters, emoji, repeats, separators, traditional
# characters, invisible characters, tabs and newlines.
REWRITTEN = ["ＹＯＵ　ＳＴＵＰＩＤ idiot 😡😡 哈哈哈哈哈 傻*逼!!!", "你這個傻\u200b逼，\t滾你媽的\n\n!!", "𝐬𝐛 ѕhabi 你sbbf男女 🍆🍆🍆"]
SHORT = ["你这个傻逼", "今天天气不错，你这个傻逼，转发一下", "nice weather today, you stupid idiot", "", "a"]
# Several thousand characters: scored in windows of 256, 128 and 64 characters and in clauses.
LONG = "今天天气不错，转发一下。" * 150 + "你这个傻逼。" + "see you in the comments, " * 120 + "評論區見！" * 40


def planted(count: int, seed: int) -> list[tuple[str, str, int, int]]:
    """``(text, category, start, end)``: fillers and one cue of the category at a random place."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in range(count):
        category = list(CUES)[n % len(CUES)]
        language = ("zh", "en")[n // len(CUES) % 2]
        joiner = "，" if language == "zh" else ", "
        cue = CUES[category][language][int(rng.integers(len(CUES[category][language])))]
        fillers = [FILLERS[language][k] for k in rng.choice(len(FILLERS[language]), 3, replace=False)]
        at = int(rng.integers(len(fillers) + 1))
        before = joiner.join(fillers[:at]) + (joiner if at else "")
        after = (joiner if at < len(fillers) else "") + joiner.join(fillers[at:])
        rows.append((before + cue + after, category, len(before), len(before) + len(cue)))
    return rows


def overlap(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Intersection over union of two character spans."""
    inside = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inside / max(max(a[1], b[1]) - min(a[0], b[0]), 1)


def assert_places(texts, evidence, categories):
    for text, items, names in zip(texts, evidence, categories):
        assert [item["category"] for item in items] == names
        for item in items:
            assert 0 <= item["start"] <= item["end"] <= len(text) and item["text"] == text[item["start"]:item["end"]]
            assert len(item["spans"]) <= 3 and (not item["spans"] or item["spans"][0]["start"] == item["start"])
            weights = [span["weight"] for span in item["spans"]]
            assert weights == sorted(weights, reverse=True) and item["weight"] == (weights[0] if weights else 0.0)
            assert all(0 <= span["start"] < span["end"] <= len(text) for span in item["spans"])


def test_ngram_contributions_add_up_to_the_logit(ngram_checkpoint):
    clf = modelkit.load(ngram_checkpoint, device="cpu")
    texts = SHORT + REWRITTEN + [LONG]
    logits = clf.predict_logits(texts)
    worst = 0.0
    for text, row in zip(texts, logits):
        for category in ("abuse", clf.categories[int(np.argmax(row))]):
            found = ngram_contributions(clf, text, category)
            assert abs(found.logit - row[clf.categories.index(category)]) <= 1e-4
            total = found.bias + sum(contribution for _, _, contribution in found.features)
            worst = max(worst, abs(total - found.logit))
            assert all(0 <= start <= end <= len(text) for start, end, _ in found.features)
    print(f"ngram contributions: largest |bias + sum - logit| {worst:.2e}")
    assert worst <= 1e-4
    # The long text's logit is its abusive sentence's window: the n-grams that carry it lie there.
    found = ngram_contributions(clf, LONG, "abuse")
    heaviest = max(found.features, key=lambda feature: feature[2])
    assert LONG.index("你这个傻逼") <= heaviest[0] < heaviest[1] <= LONG.index("你这个傻逼") + 6


def test_a_hidden_layer_is_decomposed_by_integrated_gradients():
    taxonomy = modelkit.Taxonomy.load().subset(["abuse", "violence"])
    processor = modelkit.create_processor("text_ngram", features={"num_buckets": 1 << 10})
    torch.manual_seed(0)
    model = modelkit.create_model("ngram", taxonomy, processor=processor, embed_dim=8, hidden_dim=16)
    model.embedding.weight.data.normal_(0.0, 1.0)
    clf = modelkit.Classifier(model, processor, modelkit.Policy(taxonomy))
    text = "nice weather today, you stupid idiot"
    found = ngram_contributions(clf, text, "abuse")
    assert abs(found.logit - clf.predict_logits([text])[0, 0]) <= 1e-4
    # What the n-grams do not carry is the logit at zero, up to the integration error.
    with torch.no_grad():
        at_zero = float(model.head(torch.zeros(1, 8))[0, 0])
    assert abs(found.bias - at_zero) <= 1e-2 * max(1.0, abs(found.logit - at_zero))


def test_evidence_spans_are_places_in_the_text_as_given(ngram_checkpoint):
    clf = modelkit.load(ngram_checkpoint, device="cpu")
    texts = SHORT + REWRITTEN + [LONG, {"text": "滚你妈的，周末去公园", "id": 7}]
    categories = [["abuse", "violence"]] * len(texts)
    evidence = explain(clf, texts, categories)  # through the registry: the ngram explainer
    assert all(item["method"] == "ngram" for items in evidence for item in items)
    assert_places([t if isinstance(t, str) else t["text"] for t in texts], evidence, categories)
    by_text = dict(zip([str(t) for t in texts], evidence))
    # Normalised away and back: the cue is found in the text as written.
    assert "傻" in by_text[REWRITTEN[1]][0]["text"] or "滾" in by_text[REWRITTEN[1]][0]["text"]
    assert "你这个傻逼" in by_text[LONG][0]["text"]
    assert explain(clf, ["你这个傻逼"], [[]]) == [[]]
    with pytest.raises(ValueError, match="unknown category"):
        explain(clf, ["你这个傻逼"], [["no_such_category"]])


def test_normalised_text_aligns_with_the_text_as_given():
    config = NormalizerConfig()
    for original in REWRITTEN + SHORT + [LONG, "  Hello\tWORLD\n ", "ＳＢ　傻\u200b逼\u200d!!"]:
        normalised = TextNormalizer(config)(original)
        lo, hi = alignment(original, normalised, config)
        assert lo.shape == hi.shape == (len(normalised),)
        assert np.all(np.diff(lo) >= 0) and np.all(np.diff(hi) >= 0) and np.all(lo <= hi)
        assert lo.size == 0 or (lo.min() >= 0 and hi.max() <= len(original))
    original = "  ＨＥＬＬＯ\tWORLD 😡 you 傻傻傻逼"
    normalised = TextNormalizer(config)(original)  # "hello world enraged face you傻傻逼"
    lo, hi = alignment(original, normalised, config)
    assert original[lo[normalised.index("world")]:hi[normalised.index("world") + 4]] == "WORLD"
    assert original[lo[normalised.index("face")]:hi[normalised.index("face")]] == "😡"
    assert original[lo[normalised.index("傻")]:hi[-1]] == "傻傻傻逼"


def test_with_spans_gives_the_ids_of_calling():
    texts = SHORT + REWRITTEN + ["傻傻逼 sha bi sb 你sbbf男女", "你shabi不分男女", "ab\x01cd 你\x02好", "a啊a啊 zhuang"]
    texts = [TextNormalizer()(t) for t in texts] + ["ab\x01cd 你\x02好"]
    for config in (NgramFeatureConfig(), NgramFeatureConfig(pinyin_units="letters"),
                   NgramFeatureConfig(words="alnum", pinyin=False), NgramFeatureConfig(words="alnum")):
        featurizer = HashingNgramFeaturizer(config)
        ids, offsets = featurizer(texts)
        same_ids, same_offsets, spans = featurizer.with_spans(texts)
        assert np.array_equal(ids, same_ids) and np.array_equal(offsets, same_offsets)
        ends = np.append(offsets[1:], ids.size)
        for text, start, end in zip(texts, offsets, ends):
            assert np.all((0 <= spans[start:end, 0]) & (spans[start:end, 0] <= spans[start:end, 1])
                          & (spans[start:end, 1] <= len(text)))
    # Pinyin features read the characters spoken: "sha" and "bi" of 你shabi..., 傻傻 for one "sha".
    _, _, spans = HashingNgramFeaturizer(NgramFeatureConfig(char_ngram_max=1)).with_spans(["你shabi不分男女"])
    read = {"你shabi不分男女"[a:b] for a, b in spans}
    assert {"sha", "bi", "shabi", "你sha", "bi不分"} <= read


def test_ngram_top_span_finds_the_planted_cue(ngram_checkpoint):
    clf = modelkit.load(ngram_checkpoint, device="cpu")
    rows = planted(220, seed=1)
    evidence = explain(clf, [text for text, *_ in rows], [[category] for _, category, *_ in rows])
    assert_places([text for text, *_ in rows], evidence, [[category] for _, category, *_ in rows])
    found = np.mean([overlap((items[0]["start"], items[0]["end"]), (start, end)) >= 0.5
                     for (_, _, start, end), items in zip(rows, evidence)])
    print(f"ngram: top span overlaps the planted cue (IoU >= 0.5) in {found:.1%} of {len(rows)} texts")
    assert found >= 0.9


@pytest.mark.xdist_group("bert")
def test_transformer_occlusion_finds_the_planted_cue(bert_checkpoint):
    clf = modelkit.load(bert_checkpoint, device="cpu")
    rows = planted(132, seed=2)
    texts, categories = [text for text, *_ in rows], [[category] for _, category, *_ in rows]
    evidence = explain(clf, texts, categories)  # through the registry: the text modality's occlusion
    assert all(item["method"] == "occlusion" for items in evidence for item in items)
    assert_places(texts, evidence, categories)
    found = np.mean([overlap((items[0]["start"], items[0]["end"]), (start, end)) >= 0.5
                     for (_, _, start, end), items in zip(rows, evidence)])
    print(f"transformer occlusion: top span overlaps the planted cue (IoU >= 0.5) in {found:.1%} of {len(rows)} texts")
    assert found >= 0.8
    # Records and long texts too; a text longer than the stretches allow is hidden coarser.
    long_text = "nice weather today. " * 60 + "you stupid idiot. " + "评论区见。" * 20
    (items,) = explain_occlusion(clf, [{"text": long_text}], [["abuse"]], most=64)
    assert_places([long_text], [items], [["abuse"]])


def test_spoken_places_read_as_spoken_runs():
    """The featurizer reads syllables (and where they come from) with its own walk of the text:
    it must give exactly chinese.spoken_runs' units, or the pinyin features would change."""
    from modelkit.text.chinese import spoken_runs
    from modelkit.text.features import _spoken_places
    from modelkit.text.synthetic import BORDERLINE, CUES, FILLERS

    texts = [phrase for table in (CUES, BORDERLINE, FILLERS) for value in table.values()
             for phrase in (value if isinstance(value, list) else [p for ps in value.values() for p in ps])]
    texts += ["哈哈。我也是sha bi,ok!", "傻傻傻逼", "你sbbf男女", "ni zhe ge sha bi", "", "123 !", "煞笔shabi傻逼 SB"]
    for text in texts:
        assert [[unit for unit, _, _ in run] for run in _spoken_places(text)] == spoken_runs(text), text
