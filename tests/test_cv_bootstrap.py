"""Cross-validation of a recipe, and bootstrapping a category from rules, seeds and questions."""

import json
import random

import numpy as np
import pytest
from sklearn.metrics import f1_score

import modelkit
from modelkit import ConfigError, DataError
from modelkit.text.bootstrap import bootstrap
from modelkit.cli import main
from modelkit.data.records import DataConfig, fold_records, read_records
from modelkit.training.cv import cross_validate

from conftest import ngram_recipe


def test_folds_partition_the_rows(synthetic_splits):
    records = read_records(synthetic_splits["train"], DataConfig(), modelkit.Taxonomy.load("default").enabled())
    held_out = []
    for fold in range(4):
        rest, held = fold_records(records, 4, fold, seed=1)
        assert not set(rest.ids) & set(held.ids) and len(rest) + len(held) == len(records)
        held_out += held.ids
    assert sorted(held_out) == sorted(records.ids)
    with pytest.raises(ValueError, match="data.fold must be in"):
        DataConfig(folds=3, fold=3)


def test_cross_validation_trains_and_tests_every_fold(synthetic_splits, tmp_path, capsys):
    recipe = ngram_recipe(synthetic_splits, tmp_path / "cv")
    recipe["data"] = {"train": str(synthetic_splits["train"]), "dev_fraction": 0.15}
    summary = cross_validate(recipe, folds=3)
    assert [f["fold"] for f in summary["per_fold"]] == [0, 1, 2]
    assert summary["mean"]["macro_f1"] > 0.8 and summary["std"]["macro_f1"] < 0.2
    assert json.loads((tmp_path / "cv" / "cv_metrics.json").read_text())["folds"] == 3
    tested = [json.loads((tmp_path / "cv" / f"fold-{k}" / "metrics.json").read_text())["test"]["n"] for k in range(3)]
    assert sum(tested) == sum(1 for _ in open(synthetic_splits["train"], encoding="utf-8"))
    recipe["data"]["test"] = str(synthetic_splits["test"])
    with pytest.raises(ConfigError, match="remove data.dev and data.test"):
        cross_validate(recipe, folds=3)


GAMBLING = ["百家乐", "上分", "下注", "彩金", "棋牌", "赢钱", "开元", "牌局", "老虎机", "返水"]


def _corpus(tmp_path):
    rng = random.Random(0)
    others = [json.loads(line)["text"] for line in open(tmp_path / "synthetic.jsonl", encoding="utf-8")]
    rows = [{"id": i, "text": t, "gambling": 0} for i, t in enumerate(others)]
    for i in range(80):
        words = rng.sample(GAMBLING, 2)
        rows.append({"id": 1000 + i, "text": f"{rng.choice(['来玩', '今晚', '兄弟们'])}{words[0]}，{words[1]}快", "gambling": 1})
    rng.shuffle(rows)
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path, rows


def test_bootstrap_rounds_learn_a_category_without_labels(tmp_path):
    from modelkit.text.synthetic import make_synthetic

    # 60 rows per category: 960 in all, so their ids stay below the gambling rows' (1000 on); 300
    # gave ids both kinds of row shared and took three times as long.
    rows = make_synthetic(60, seed=0)
    (tmp_path / "synthetic.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    corpus, rows = _corpus(tmp_path)
    truth = {str(r["id"]): r["gambling"] for r in rows}
    config = {
        "category": "gambling", "corpus": str(corpus), "output_dir": str(tmp_path / "boot"),
        # The rules know half of the vocabulary; seeds and answers have to teach the rest.
        "rules": [{"name": "games", "keywords": ["百家乐", "老虎机"]}, {"name": "money", "patterns": ["上分|返水"]}],
        "seed_ids": [r["id"] for r in rows if r["gambling"]][:5], "query_size": 30,
        "model": {"name": "ngram", "embed_dim": 32},
        "processor": {"features": {"num_buckets": 1 << 16}},
        "train": {"epochs": 12, "batch_size": 16, "learning_rate": 0.01, "early_stopping_patience": 4},
    }
    first = bootstrap(config)
    assert first["weak_positives"] > 20 and first["seeds"] == 5 and set(first["rule_coverage"]) == {"games", "money"}
    questions = [json.loads(line) for line in open(first["questions"], encoding="utf-8")]
    assert len(questions) == 30 and not {q["id"] for q in questions} & {str(i) for i in config["seed_ids"]}
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"id": q["id"], "label": truth[q["id"]]}) + "\n" for q in questions))
    second = bootstrap(config, labels=[answers])
    assert second["human_labels"] == 30 and "round-1" in second["checkpoint"]

    texts = [r["text"] for r in rows]
    labels = np.array([r["gambling"] for r in rows])
    f1 = {}
    for name, summary in (("first", first), ("second", second)):
        clf = modelkit.load(summary["checkpoint"])
        f1[name] = f1_score(labels, clf.decide(clf.predict_proba(texts))[:, 0])
    assert f1["second"] > f1["first"] and f1["second"] >= 0.75, f1  # the answers teach what the rules miss

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "1", "label": 1}\n{"id": "2", "label": "yes"}\n')
    with pytest.raises(DataError, match="broken.jsonl, line 2"):
        bootstrap(config, labels=[broken])
    with pytest.raises(ConfigError, match="rules"):
        bootstrap({**config, "rules": [{"name": "empty"}]})
    with pytest.raises(ConfigError, match="self_training"):
        bootstrap({**config, "self_training": -1})
    assert main(["bootstrap", str(tmp_path / "missing.yaml")]) == 2

