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


def test_a_sentence_written_alone_is_one_of_the_runs_exactly():
    """Runs keep the mark that closes them, and whole sentences of more clauses than a run are
    runs too, so a violation written as its own sentence in a long text is scored as written."""
    from modelkit.text.processors import clause_spans

    assert "丑女还指望骗男人?" in clause_spans("前文很长。丑女还指望骗男人?。后面的话,还有", 256, 3)
    four = "某些领导直接说,女生要生二胎,我们不要女生,女生不能出差。"
    assert four in clause_spans("后来。" + four + "好", 256, 3)
    assert all(len(run) <= 10 for run in clause_spans("短句。" + "长" * 20 + "。短句", 10, 3))
    processor = create_processor("text_ngram")
    text = "你好，今天去公园，滚开"  # short: one bag, however many clauses
    assert processor.collate([text])["window_rows"].tolist() == [0]
