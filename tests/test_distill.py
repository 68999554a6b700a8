"""Distillation: a student learns a teacher's scores, on unlabelled rows too, and says whose."""

import json
import shutil

import numpy as np
import pytest
import torch

import modelkit
from modelkit.config import ConfigError
from modelkit.training.cv import cross_validate
from modelkit.training.losses import ExclusiveLoss, teacher_targets

from conftest import ngram_recipe


def test_teacher_targets_follow_the_students_loss():
    scores = np.array([[0.9, 0.2], [0.1, 0.1], [0.5, 0.5]])
    np.testing.assert_allclose(teacher_targets(scores, "bce"), scores, atol=1e-6)
    softer = teacher_targets(scores, "bce", temperature=2.0)
    assert softer[0, 0] < 0.9 and softer[0, 1] > 0.2  # pulled towards 1/2
    exclusive = teacher_targets(scores, "exclusive")
    # The softmax over [logits, 0]: each category against 'none' keeps the teacher's odds.
    odds = exclusive / (1 - exclusive.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(odds, scores / (1 - scores), rtol=1e-5)
    assert np.all(exclusive.sum(axis=1) < 1)


def test_exclusive_loss_on_one_hot_labels_equals_the_class_index_loss():
    logits = torch.randn(6, 3)
    labels = torch.tensor([[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]])
    classes = torch.tensor([0, 2, 3, 1, 3, 0])
    with_none = torch.cat([logits, torch.zeros(6, 1)], dim=1)
    expected = torch.nn.functional.cross_entropy(with_none, classes)
    torch.testing.assert_close(ExclusiveLoss()(logits, labels), expected)


def _unlabelled_copy(source, path):
    """The rows of ``source`` with every label removed."""
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    path.write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "labels": []}, ensure_ascii=False) + "\n"
                            for r in rows), encoding="utf-8")
    return path


def test_student_learns_the_teachers_categories_from_unlabelled_rows_alone(synthetic_splits, ngram_checkpoint,
                                                                             tmp_path, monkeypatch):
    # The student's own training labels say "clean" everywhere and weigh nothing (gold_weight 0):
    # whatever it learns about the categories comes from the teacher's scores.
    blank = _unlabelled_copy(synthetic_splits["train"], tmp_path / "blank.jsonl")
    recipe = ngram_recipe({**synthetic_splits, "train": blank}, tmp_path / "student")
    recipe["distill"] = {"gold_weight": 0.0}
    student = modelkit.distill(ngram_checkpoint, recipe)

    teacher_test = json.loads((ngram_checkpoint / "metrics.json").read_text())["test"]["macro_f1"]
    student_metrics = json.loads((student / "metrics.json").read_text())
    assert student_metrics["test"]["macro_f1"] >= teacher_test - 0.05 > 0.8
    made = json.loads((student / "config.json").read_text())["extra"]["distilled_from"]
    assert made["teacher"] == str(ngram_checkpoint) and made["labelled_rows"] > 0
    assert made["teacher_dev"]["macro_f1"] > 0.8
    card = (student / "README.md").read_text(encoding="utf-8")
    assert "## Distillation" in card and str(ngram_checkpoint) in card and "- distillation" in card

    # A second run with other training settings reuses the teacher's scores instead of
    # rewriting them.
    cache = student / "teacher_scores.safetensors"
    written = cache.stat().st_mtime_ns
    recipe["train"]["epochs"] = 2
    modelkit.distill(ngram_checkpoint, recipe)
    assert cache.stat().st_mtime_ns == written

    # A cache cut short (a kill while it was written by an older version) is scored again.
    cache.write_bytes(cache.read_bytes()[:100])
    modelkit.distill(ngram_checkpoint, recipe)
    assert cache.stat().st_mtime_ns != written and not list(student.glob("*.tmp"))


def test_unlabelled_rows_are_added_without_the_held_out_ones(synthetic_splits, ngram_checkpoint, tmp_path):
    unlabelled = tmp_path / "posts.jsonl"
    dev_texts = [json.loads(line)["text"] for line in synthetic_splits["dev"].read_text(encoding="utf-8").splitlines()]
    posts = [{"text": t} for t in ["全新的一段没有标签的文字", "another unlabelled post", *dev_texts[:5]]]
    posts.append({"text": None})
    unlabelled.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in posts), encoding="utf-8")
    recipe = ngram_recipe(synthetic_splits, tmp_path / "student", epochs=1)
    student = modelkit.distill(ngram_checkpoint, recipe, unlabelled=[unlabelled])
    made = json.loads((student / "config.json").read_text())["extra"]["distilled_from"]
    assert made["unlabelled_rows"] == 2 and made["unlabelled_left_out"] == 6
    assert made["unlabelled_files"] == [str(unlabelled)]

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{broken\n', encoding="utf-8")
    with pytest.raises(modelkit.DataError, match="broken.jsonl, line 2"):
        modelkit.distill(ngram_checkpoint, recipe, unlabelled=[broken])


def test_cross_validated_distillation_needs_a_teacher_per_fold_trained_on_that_fold(synthetic_splits, tmp_path):
    recipe = ngram_recipe(synthetic_splits, tmp_path / "teacher")
    recipe["data"] = {"train": str(synthetic_splits["train"]), "dev_fraction": 0.15}
    taught = cross_validate(recipe, folds=2)

    student = {**recipe, "output_dir": str(tmp_path / "student")}
    summary = modelkit.distill(tmp_path / "teacher", student, folds=2)
    assert [f["fold"] for f in summary["per_fold"]] == [0, 1]
    assert summary["mean"]["macro_f1"] > taught["mean"]["macro_f1"] - 0.1 > 0.6
    for fold in range(2):
        made = json.loads((tmp_path / "student" / f"fold-{fold}" / "config.json").read_text())["extra"]
        assert made["distilled_from"]["teacher"] == str(tmp_path / "teacher" / f"fold-{fold}")

    # Fold 1's teacher swapped for fold 0's: it saw fold 1's rows.
    shutil.rmtree(tmp_path / "teacher" / "fold-1")
    shutil.copytree(tmp_path / "teacher" / "fold-0", tmp_path / "teacher" / "fold-1")
    with pytest.raises(ConfigError, match="which would leak"):
        modelkit.distill(tmp_path / "teacher", student, folds=2)


def test_distill_command_reports_bad_teachers_and_recipes(synthetic_splits, ngram_checkpoint, tmp_path, capsys):
    from modelkit.cli import main

    recipe = tmp_path / "student.yaml"
    recipe.write_text(json.dumps(ngram_recipe(synthetic_splits, tmp_path / "student", epochs=1)))

    def error(*args):
        assert main(["distill", *map(str, args)]) != 0
        return capsys.readouterr().err

    assert "teacher" in error(tmp_path / "nowhere", recipe)
    assert "distill.gold_weight" in error(ngram_checkpoint, recipe, "--set", "distill.gold_weight=2")
    assert "none.jsonl" in error(ngram_checkpoint, recipe, "--unlabelled", tmp_path / "none.jsonl")
    assert main(["distill", str(ngram_checkpoint), str(recipe)]) == 0
    assert "checkpoint:" in capsys.readouterr().out


def test_transfer_copies_are_perturbed_seeded_and_labelled_by_the_teacher(synthetic_splits, ngram_checkpoint,
                                                                          tmp_path, monkeypatch):
    import random

    processor = modelkit.load_processor(ngram_checkpoint)
    text = "这是一段用来测试的比较长的中文文字"
    copies = [processor.transfer_copy(text, random.Random(seed)) for seed in range(20)]
    assert all(copies) and any(c != text for c in copies)
    assert all(set(c) <= set(text) for c in copies)
    assert processor.transfer_copy({"text": text, "id": 3}, random.Random(0))["id"] == 3

    recipe = ngram_recipe(synthetic_splits, tmp_path / "student", epochs=1)
    recipe["distill"] = {"copies": 2}
    student = modelkit.distill(ngram_checkpoint, recipe)
    made = json.loads((student / "config.json").read_text())["extra"]["distilled_from"]
    assert made["copies"] == 2 and made["unlabelled_rows"] == 0
    from safetensors.numpy import load_file

    from modelkit.classifier import Classifier

    # The cache holds one score row per distinct input: training rows, their copies, dev rows.
    cache = student / "teacher_scores.safetensors"
    stored = len(load_file(str(cache))["scores"])
    assert 2 * made["labelled_rows"] < stored <= 3 * made["labelled_rows"] + made["labelled_rows"] // 2

    # A third copy of each row: the teacher scores only the inputs it has not seen.
    calls, predict = [], Classifier.predict_proba
    monkeypatch.setattr(Classifier, "predict_proba",
                        lambda self, inputs, **kw: calls.append(len(inputs)) or predict(self, inputs, **kw))
    recipe["distill"]["copies"] = 3
    modelkit.distill(ngram_checkpoint, recipe)
    grown = len(load_file(str(cache))["scores"]) - stored
    assert 0 < grown <= made["labelled_rows"] and calls[0] == grown
