"""The shipped recipes against the real data in ../shared/data."""

import json
from pathlib import Path

import pytest

import modelkit
from modelkit.data.records import read_records

from conftest import REPO

RECIPES = sorted((REPO / "configs" / "text").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_encodes_every_row_of_its_data(recipe, shared_data):
    config = modelkit.load_run_config(recipe, data_root=shared_data)
    taxonomy = config.build_taxonomy()
    for split in ("train", "dev", "test"):
        path = getattr(config.data, split)
        if path:
            records = read_records(path, config.data, taxonomy)
            assert len(records) > 500 and records.labels.sum() > 0
    for path in config.distill.unlabelled:
        assert Path(path).is_file(), path


def test_distilled_recipe_learns_from_a_cold_teacher_and_swsr_posts(cold_checkpoint, shared_data, tmp_path):
    # The shipped teacher is the ensemble (20 minutes to train); any COLD checkpoint shows the path.
    # Without the training-time attacks, which double the epoch and are tested on cold.yaml, and
    # without the perturbed copies (tested in test_distill.py), which triple what the teacher scores
    # and the student trains on; the higher learning rate makes up for them in one epoch (dev
    # accuracy about 0.896, 0.891 with the recipe's copies and rate).
    config = modelkit.load_run_config(REPO / "configs/text/cold_distilled.yaml", data_root=shared_data,
                                      overrides=[f"output_dir={tmp_path / 'student'}", "train.epochs=1",
                                                 "processor.augment.probability=0", "train.consistency=0",
                                                 "distill.copies=0", "train.learning_rate=0.01"])
    student = modelkit.distill(cold_checkpoint, config)
    made = json.loads((student / "config.json").read_text())["extra"]["distilled_from"]
    assert made["labelled_rows"] == 25726 and made["unlabelled_rows"] == 1527
    dev = json.loads((student / "metrics.json").read_text())["dev"]
    assert dev["accuracy"] >= 0.87


def test_cold_recipe_learns_real_chinese(cold_checkpoint):
    dev = json.loads((cold_checkpoint / "metrics.json").read_text())["dev"]
    assert dev["n"] == 6431 and dev["accuracy"] >= 0.89
    clf = modelkit.load(cold_checkpoint)
    assert clf.predict(["你这个傻逼，滚回你的国家去"])[0].scores["abuse"] > clf.predict(["今天天气不错"])[0].scores["abuse"]


def test_cold_recipe_holds_recall_under_attack(cold_checkpoint, shared_data):
    """cold.yaml carries the evasion defences: disguised offensive rows keep their recall."""
    import random

    import numpy as np

    from modelkit.text.augment import apply_attack

    clf = modelkit.load(cold_checkpoint)
    rows = [json.loads(line) for line in open(shared_data / "cold" / "dev.jsonl", encoding="utf-8")]
    offensive = [r["text"] for r in rows if r["label"] == 1][:600]

    def recall(texts):
        return float(np.mean(clf.decide(clf.predict_proba(texts))[:, 0]))

    clean = recall(offensive)
    assert clean > 0.8
    for attack in ("separator", "traditional", "homoglyph", "emoji", "pinyin", "homophone"):
        attacked = [apply_attack(t, attack, random.Random(i)) for i, t in enumerate(offensive)]
        assert recall(attacked) >= 0.9 * clean, attack


@pytest.mark.slow
def test_bootstrap_gambling_beats_its_rules(shared_data, tmp_path):
    import numpy as np
    from sklearn.metrics import f1_score

    from modelkit.text.bootstrap import bootstrap, load_bootstrap_config, rule_votes

    rows = [json.loads(line) for line in open(shared_data / "chineseharm_bench" / "dev.jsonl", encoding="utf-8")]
    truth = np.array([r["label"] == "博彩" for r in rows])
    seeds = sorted(r["id"] for r in rows if r["label"] == "博彩")[:10]
    config = load_bootstrap_config(REPO / "configs/bootstrap/gambling.yaml", data_root=shared_data,
                                   overrides=[f"seed_ids={seeds}", f"output_dir={tmp_path}"])
    texts = [r["text"] for r in rows]
    rules_f1 = f1_score(truth, rule_votes(texts, config.rules).any(axis=1))
    f1, recipe_fits = {}, config.self_training
    assert recipe_fits > 0
    for fits in (0, recipe_fits):
        config.self_training, config.output_dir = fits, str(tmp_path / f"fits-{fits}")
        summary = bootstrap(config)
        clf = modelkit.load(summary["checkpoint"])
        f1[fits] = f1_score(truth, clf.decide(clf.predict_proba(texts))[:, 0])
    # About 0.59 for the rules, 0.73 for one fit, 0.79 with the recipe's self-training.
    assert rules_f1 > 0.5 and f1[0] > rules_f1 + 0.05 and f1[recipe_fits] > f1[0] + 0.03, (rules_f1, f1)
    assert summary["self_training_positives"] > 50
    assert summary["weak_positives"] > 200


def test_shipped_recipes_are_found_by_name(tmp_path, monkeypatch):
    from modelkit.config import ConfigError
    from modelkit.recipes import find_recipe, list_recipes
    from modelkit.training.recipe import load_run_config

    monkeypatch.chdir(tmp_path)  # names, not paths: nothing here is a file
    assert {"text/cold", "image/synthetic", "video/synthetic"} <= set(list_recipes())
    assert find_recipe("text/cold.yaml") == find_recipe("text/cold") == REPO / "configs" / "text" / "cold.yaml"
    assert find_recipe("../pyproject") is None and find_recipe("/etc/passwd") is None
    config = load_run_config("text/cold_seeds", data_root="/data")
    assert config.data.train == "/data/cold/train.jsonl"
    assert config.ensemble.members[0].recipe == str(REPO / "configs" / "text" / "cold.yaml")
    with pytest.raises(ConfigError, match="text/nope: no such recipe file, nor a recipe that ships with modelkit"):
        load_run_config("text/nope")
