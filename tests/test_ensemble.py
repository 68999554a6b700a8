import json

import numpy as np
import pytest
import yaml

import modelkit
from conftest import TINY_BERT
from modelkit.training.cv import cross_validate


def _write(path, data):
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _member_recipes(directory, splits, wordpiece_dir=None):
    """An ngram member and a second one (a tiny BERT when a tokenizer is given, else word n-grams).

    Their data blocks point at a file that does not exist: the ensemble's data must win.
    """
    data = {"train": str(directory / "not-used.jsonl"), "dev_fraction": 0.2}
    ngram = {"data": data, "model": {"name": "ngram", "embed_dim": 32}, "processor": {"features": {"num_buckets": 1 << 16}},
             "train": {"epochs": 15, "batch_size": 16, "learning_rate": 0.01, "early_stopping_patience": 5, "seed": 99}}
    if wordpiece_dir is not None:
        second = {"data": data,
                  "model": {"name": "transformer", "backbone_config": TINY_BERT, "dropout": 0.0},
                  "processor": {"tokenizer": str(wordpiece_dir), "max_length": 48},
                  "train": {"epochs": 8, "batch_size": 32, "learning_rate": 0.003}}
    else:
        second = {"data": data, "model": {"name": "ngram", "embed_dim": 32},
                  "processor": {"features": {"num_buckets": 1 << 16, "char_ngram_max": 3}},
                  "train": {"epochs": 15, "batch_size": 16, "learning_rate": 0.01, "early_stopping_patience": 5}}
    return [_write(directory / "ngram.yaml", ngram).name, _write(directory / "second.yaml", second).name]


def test_ensemble_recipe_trains_members_and_averages_their_logits(synthetic_splits, wordpiece_dir, tmp_path):
    members = _member_recipes(tmp_path, synthetic_splits, wordpiece_dir)
    recipe = _write(tmp_path / "ensemble.yaml", {
        "output_dir": str(tmp_path / "run"),
        "data": {key: str(synthetic_splits[key]) for key in ("train", "dev", "test")},
        "ensemble": {"members": members, "weights": [1, 3]},
    })
    checkpoint = modelkit.train(recipe)
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    assert metrics["test"]["macro_f1"] >= 0.9, metrics["test"]
    assert [m["checkpoint"] for m in metrics["members"]] == [
        str(tmp_path / "run" / "members" / "0-ngram"), str(tmp_path / "run" / "members" / "1-second")]
    # The ensemble's data and split seed reach the members; their training seeds stay their own.
    member_runs = [yaml.safe_load((tmp_path / "run" / "members" / n / "run_config.yaml").read_text())
                   for n in ("0-ngram", "1-second")]
    assert all(r["data"]["train"] == str(synthetic_splits["train"]) and r["data"]["split_seed"] == 0
               for r in member_runs)
    assert [r["train"]["seed"] for r in member_runs] == [99, 0]
    assert (checkpoint / "member-1" / "tokenizer" / "tokenizer.json").is_file()

    ensemble = modelkit.load(checkpoint, device="cpu")
    assert ensemble.model.registry_name == "ensemble"
    texts = ["你这个傻逼", "nice weather today", "", "x" * 10_000]
    member_logits = [modelkit.load(m["checkpoint"], device="cpu").predict_logits(texts) for m in metrics["members"]]
    np.testing.assert_allclose(ensemble.predict_logits(texts), 0.25 * member_logits[0] + 0.75 * member_logits[1],
                               rtol=1e-5, atol=1e-5)
    copy = modelkit.load(ensemble.save(tmp_path / "copy"), device="cpu")
    np.testing.assert_allclose(copy.predict_proba(texts), ensemble.predict_proba(texts), rtol=1e-5, atol=1e-6)

    # Every member file is covered by config.json's hashes.
    (checkpoint / "member-1" / "tokenizer" / "tokenizer.json").write_text("{}")
    with pytest.raises(modelkit.CheckpointError, match="member-1/tokenizer/tokenizer.json"):
        modelkit.load(checkpoint)


def test_ensemble_cross_validation_splits_every_member_alike(synthetic_splits, tmp_path):
    ngram, second = _member_recipes(tmp_path, synthetic_splits)
    members = [second, {"recipe": ngram, "set": ["train.seed=7"]}]
    recipe = _write(tmp_path / "ensemble.yaml", {
        "output_dir": str(tmp_path / "cv"),
        "data": {"train": str(synthetic_splits["train"]), "dev_fraction": 0.15},
        "ensemble": {"members": members},
        "train": {"tune_thresholds": True},
    })
    summary = cross_validate(recipe, folds=3)
    assert len(summary["per_fold"]) == 3 and summary["mean"]["macro_f1"] > 0.8, summary
    for fold in range(3):
        logs = [json.loads(line) for line in
                (tmp_path / "cv" / f"fold-{fold}" / "members" / "0-second" / "train_log.jsonl").open()]
        other = [json.loads(line) for line in
                 (tmp_path / "cv" / f"fold-{fold}" / "members" / "1-ngram" / "train_log.jsonl").open()]
        assert logs[0]["train_rows"] == other[0]["train_rows"] and logs[0]["dev_rows"] == other[0]["dev_rows"]
        assert json.loads((tmp_path / "cv" / f"fold-{fold}" / "metrics.json").read_text())["test"]["n"] > 0
        run = yaml.safe_load((tmp_path / "cv" / f"fold-{fold}" / "members" / "1-ngram" / "run_config.yaml").read_text())
        assert run["train"]["seed"] == 7 and run["data"]["split_seed"] == 0  # the member's --set applied


@pytest.mark.parametrize("change, message", [
    ({"model": {"name": "ngram"}}, "either a model block or an ensemble block"),
    ({"ensemble": {"members": ["ngram.yaml"]}}, "at least 2 member recipes"),
    ({"ensemble": {"members": ["ngram.yaml", "missing.yaml"]}}, "recipe 'missing.yaml' not found"),
    ({"ensemble": {"members": ["ngram.yaml", "second.yaml"], "weights": [1]}}, "1 weights for 2 members"),
    ({"ensemble": {"members": ["ngram.yaml", "nested.yaml"]}}, "itself an ensemble"),
    ({"ensemble": {"members": ["ngram.yaml", "broken.yaml"]}}, "broken.yaml: model.embed_dim"),
    ({"ensemble": {"members": ["ngram.yaml", {"recipe": "second.yaml", "set": ["train.epocs=2"]}]}},
     "second.yaml: train.epocs: unknown field"),
    ({"ensemble": {"members": ["ngram.yaml", {"recipe": "second.yaml", "sets": []}]}}, "members\\[1\\].sets: unknown field"),
    ({"ensemble": None, "model": {"name": "ensemble", "members": [{"name": "ngram"}, {"name": "ngram"}]}},
     "trained from member recipes"),
])
def test_ensemble_recipe_errors_name_the_problem(synthetic_splits, tmp_path, change, message):
    _member_recipes(tmp_path, synthetic_splits)
    _write(tmp_path / "nested.yaml", {"data": {"train": "x.jsonl"}, "ensemble": {"members": ["ngram.yaml", "second.yaml"]}})
    _write(tmp_path / "broken.yaml", {"data": {"train": "x.jsonl"}, "model": {"name": "ngram", "embed_dim": "big"}})
    recipe = {"data": {"train": str(synthetic_splits["train"])}, "ensemble": {"members": ["ngram.yaml", "second.yaml"]}}
    recipe.update(change)
    if recipe["ensemble"] is None:
        del recipe["ensemble"]
    with pytest.raises(modelkit.ConfigError, match=message):
        modelkit.load_run_config(_write(tmp_path / "ensemble.yaml", recipe))
