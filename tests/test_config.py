import pytest

from modelkit import ConfigError, load_run_config

BASE = {"data": {"train": "a.jsonl"}, "model": {"name": "ngram"}}


def test_unknown_key_is_named_with_suggestion(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: {train: a.jsonl}\ntrain: {epocs: 3}\n")
    with pytest.raises(ConfigError, match=r"run.yaml: train.epocs: unknown field \(did you mean 'epochs'"):
        load_run_config(path)


def test_wrong_type_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: {train: a.jsonl}\ntrain: {epochs: ten}\n")
    with pytest.raises(ConfigError, match="train.epochs: expected int, got 'ten'"):
        load_run_config(path)


def test_model_block_is_validated_against_the_model_config():
    with pytest.raises(ConfigError, match="model.embed_dimension: unknown field"):
        load_run_config({**BASE, "model": {"name": "ngram", "embed_dimension": 3}})
    with pytest.raises(ConfigError, match="unknown model 'bert2'"):
        load_run_config({**BASE, "model": {"name": "bert2"}})
    with pytest.raises(ConfigError, match="processor.features.num_buckets: expected int"):
        load_run_config({**BASE, "processor": {"features": {"num_buckets": "many"}}})
    with pytest.raises(ConfigError, match="model.features: configures how inputs are processed; move it to "
                                          "processor.features"):
        load_run_config({**BASE, "model": {"name": "ngram", "features": {"num_buckets": 16}}})
    with pytest.raises(ConfigError, match="augment: moved into the processor"):
        load_run_config({**BASE, "augment": {"probability": 0.5}})


def test_overrides_and_data_root(tmp_path):
    config = load_run_config(BASE, overrides=["train.epochs=2", "train.learning_rate=1e-4", "categories=[abuse]"],
                             data_root=tmp_path)
    assert config.train.epochs == 2 and config.train.learning_rate == pytest.approx(1e-4)
    assert config.data.train == str(tmp_path / "a.jsonl")
    assert config.build_taxonomy().ids == ["abuse"]
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_run_config(BASE, overrides=["train.epochs"])


def test_range_checks_and_missing_required():
    with pytest.raises(ConfigError, match="train.epochs must be >= 1"):
        load_run_config({**BASE, "train": {"epochs": 0}})
    with pytest.raises(ConfigError, match="data: required field is missing"):
        load_run_config({"model": {"name": "ngram"}})


def test_unknown_category_in_recipe():
    with pytest.raises(ConfigError, match="unknown category 'nudity'"):
        load_run_config({**BASE, "categories": ["nudity"]})
