"""Long texts are scored in windows: benign padding before or after cannot hide a violation."""

import json
import random

import numpy as np

import modelkit
from modelkit.config import to_dict
from modelkit.processing import create_processor

ABUSE = "你这个傻逼，滚你妈的"
FILLERS = ["今天天气不错", "刚下班回家", "大家觉得怎么样", "周末去公园", "nice weather today", "going to the park"]
PADDING = "，".join(FILLERS * 70)  # about 4,480 characters of benign text


def test_padding_cannot_hide_abuse_from_the_transformer(bert_checkpoint):
    clf = modelkit.load(bert_checkpoint, device="cpu")
    assert len(PADDING) > 4200
    texts = [ABUSE, PADDING + "。" + ABUSE, ABUSE + "。" + PADDING, PADDING + ABUSE + PADDING, PADDING]
    predictions = clf.predict(texts)
    assert [("abuse" in p.labels) for p in predictions] == [True, True, True, True, False], \
        [round(p.scores["abuse"], 3) for p in predictions]


def test_padding_cannot_hide_abuse_from_the_ngram_model(cold_checkpoint, shared_data):
    """COLD's offensive dev rows hidden in 4,200 characters of other rows the model finds benign."""
    clf = modelkit.load(cold_checkpoint, device="cpu")
    rows = [json.loads(line) for line in open(shared_data / "cold" / "dev.jsonl", encoding="utf-8")]
    offensive = [r["text"] for r in rows if r["label"] == 1][:100]
    benign = [r["text"] for r in rows if r["label"] == 0]
    benign = [t for t, s in zip(benign, clf.predict_proba(benign)[:, 0]) if s < 0.2]
    rng = random.Random(0)

    def padding(size=4200):
        text = ""
        while len(text) < size:
            text += rng.choice(benign)
        return text

    def recall(classifier, texts):
        return float(np.mean(classifier.decide(classifier.predict_proba(texts))[:, 0]))

    clean = recall(clf, offensive)
    padded = {"before": [padding() + t for t in offensive], "after": [t + padding() for t in offensive],
              "both": [padding(2100) + t + padding(2100) for t in offensive]}
    ratios = {name: recall(clf, texts) / clean for name, texts in padded.items()}
    assert min(ratios.values()) >= 0.7, ratios  # about 0.92 / 0.77 / 0.86 (scripts/benchmark_long_text.py)

    # The old behaviour (one bag over the first 4,000 characters) finds almost none of them.
    config = to_dict(clf.processor.config)
    config.update(window_chars=[])
    config["normalizer"]["max_chars"] = 4000
    unwindowed = modelkit.Classifier(clf.model, create_processor("text_ngram", **config), clf.policy)
    assert max(recall(unwindowed, texts) for texts in padded.values()) < 0.05


def test_windows_cover_every_character():
    from modelkit.text.processors import char_windows

    text = "".join(chr(0x4E00 + i) for i in range(1000))
    windows, rows = char_windows(["short", text, ""], [256, 128, 64])
    assert windows[0] == "short" and windows[-1] == "" and rows.tolist() == [0] + [1] * (len(windows) - 2) + [2]
    long_windows = windows[1:-1]
    assert {len(w) for w in long_windows} <= set(range(1, 257))
    for size in (256, 128, 64):  # every scale reaches the end of the text
        assert any(w.endswith(text[-1]) and len(w) <= size and len(w) > size // 2 for w in long_windows)
    # Any span of up to 32 characters lies whole inside a 64-character window.
    for start in range(0, 1000 - 32, 7):
        assert any(text[start:start + 32] in w for w in long_windows if len(w) <= 64)


def test_clause_runs_score_every_text_and_train_on_benign_rows_only():
    """At inference any text, short or long, is scored in its clause runs too (a long text is
    flagged when a part of it would be); in training only rows labelled with no category are,
    so the model learns that a benign text's clauses are benign without learning that any clause
    of an offensive text carries its label."""
    processor = create_processor("text_ngram", augment={"probability": 0.0})
    text = "你好，今天去公园，滚开"

    def bags(labels):
        batch = processor.collate([processor.decode_value(text, labels, None)])
        return int(batch["window_rows"].numel())

    runs = 3 + 2  # runs of one and of two clauses; the run of all three is the text itself
    assert bags(None) == 1 + runs
    processor.train()
    assert bags(np.array([0.0])) == 1 + runs
    assert bags(np.array([1.0])) == 1 and bags(np.array([0.7])) == 1
    processor.eval()
    assert bags(np.array([1.0])) == 1 + runs
    assert create_processor("text_ngram", clause_windows=0).collate([text])["window_rows"].numel() == 1
