"""One sentence that names the input and what is expected, never a traceback (item 19)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

import modelkit
from modelkit import CheckpointError, ConfigError
from modelkit.cli import main

from conftest import ngram_recipe, one_line_error, train_tiny_image_model


def test_distill_from_a_teacher_of_another_modality(tmp_path, synthetic_splits, capsys):
    teacher = train_tiny_image_model(tmp_path / "teacher")
    student = tmp_path / "student.yaml"
    student.write_text(yaml.safe_dump(ngram_recipe(synthetic_splits, tmp_path / "student")))
    assert main(["distill", str(teacher), str(student)]) == 2
    line = one_line_error(capsys.readouterr().err, "distill")
    assert "reads image inputs" in line and "reads text" in line and str(teacher) in line


@pytest.mark.parametrize("kind", ["list", "mapping"])
def test_deeply_nested_yaml_is_a_config_error(tmp_path, kind, capsys):
    depth = 20_000
    recipe = tmp_path / "deep.yaml"
    recipe.write_text("a: " + ("[" * depth + "]" * depth if kind == "list" else "{b: " * depth + "1" + "}" * depth))
    with pytest.raises(ConfigError, match=r"deep.yaml: .*nested more than \d+ levels deep"):
        modelkit.load_run_config(recipe)
    assert main(["train", str(recipe)]) == 2
    assert "nested more than" in capsys.readouterr().err


def test_deeply_nested_checkpoint_json_is_refused(tiny_checkpoint):
    path = tiny_checkpoint / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps(config)[:-1] + ', "extra2": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(CheckpointError, match="config.json: .*nested"):
        modelkit.load(tiny_checkpoint)


@pytest.mark.parametrize("inputs, expected", [
    (None, "expected a list of inputs, got None"),
    (42, "expected a list of inputs, got int"),
    ("一句话", "expected a list of inputs, got a single str; wrap it in a list"),
    ([None], "input 0: expected str, got NoneType"),
])
def test_predict_with_the_wrong_kind_of_input(inputs, expected):
    from conftest import tiny_text_classifier

    classifier = tiny_text_classifier()
    for method in (classifier.predict, classifier.predict_proba):
        with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
            method(inputs)


def test_load_names_a_file_as_a_file(tmp_path, tiny_checkpoint):
    with pytest.raises(CheckpointError, match=r"config.json: a file, not a checkpoint directory; give its folder"):
        modelkit.load(tiny_checkpoint / "config.json")
    with pytest.raises(CheckpointError, match="does not exist"):
        modelkit.load(tmp_path / "nowhere")


@pytest.mark.parametrize("value", [-1, 1.5, "2", True])
def test_num_workers_must_be_a_whole_number_from_zero(value):
    from conftest import tiny_text_classifier

    classifier = tiny_text_classifier()
    with pytest.raises(ValueError, match=rf"num_workers must be a whole number >= 0, got {value!r}"):
        classifier.predict(["a"], num_workers=value)
    with pytest.raises(ValueError, match="num_workers"):
        list(classifier.predict_stream(["a"], num_workers=value))


@pytest.mark.parametrize("value", [0, -3, 2.0, None])
def test_batch_size_must_be_a_whole_number_from_one(value):
    from conftest import tiny_text_classifier

    with pytest.raises(ValueError, match=rf"batch_size must be a whole number >= 1, got {value!r}"):
        tiny_text_classifier().predict(["a"], batch_size=value)
