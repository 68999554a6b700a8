"""Threshold calibration written into checkpoints, and paired comparison of two reports."""

import json
import shutil

import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import precision_score

import modelkit
from modelkit.cli import main
from modelkit.data.records import read_records
from modelkit.evaluation.report import EvaluationError, ScoredData, build_report, write_report
from modelkit.evaluation.thresholds import Objective, fit_temperature, fit_thresholds, operating_point


def test_objective_parsing():
    assert Objective.parse("precision@0.95") == Objective("precision", 0.95)
    assert str(Objective.parse("RECALL@.9")) == "recall@0.9"
    for bad in ("precision", "precision@1.5", "accuracy@0.9", "f2"):
        with pytest.raises(ValueError, match="expected f1, precision@P or recall@R"):
            Objective.parse(bad)


def test_fitted_threshold_reaches_target_precision_on_its_data():
    rng = np.random.default_rng(1)
    truth = rng.random((2000, 3)) < [0.1, 0.3, 0.5]
    scores = np.clip(truth * 0.35 + rng.random((2000, 3)) * 0.65, 0, 1)
    for target in (0.9, 0.95, 0.99):
        cuts = fit_thresholds(truth, scores, f"precision@{target}")
        for j in range(3):
            assert precision_score(truth[:, j], scores[:, j] >= cuts[j]) >= target
    shared = fit_thresholds(truth, scores, "precision@0.95", per_category=False)
    assert len(set(shared)) == 1
    assert precision_score(truth.ravel(), scores.ravel() >= shared[0]) >= 0.95
    assert operating_point(np.zeros(10), np.linspace(0, 1, 10), "f1") is None


def test_temperature_recovers_the_scaling():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 20000)
    truth = rng.random(20000) < 1 / (1 + np.exp(-logits / 2.5))  # the model is 2.5x overconfident
    assert fit_temperature(truth, logits) == pytest.approx(2.5, rel=0.1)
    assert fit_temperature(np.ones(5), np.zeros(5)) == 1.0


def test_calibrate_writes_thresholds_used_from_then_on(ngram_checkpoint, synthetic_splits, tmp_path):
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(ngram_checkpoint, checkpoint)
    record = modelkit.calibrate(checkpoint, synthetic_splits["dev"], objective="precision@0.95",
                                per_category=True, temperature=True)
    classifier = modelkit.load(checkpoint)
    assert classifier.calibration["objective"] == "precision@0.95"
    assert classifier.thresholds == {c: record["dev"][c]["threshold"] for c in classifier.categories}
    assert set(record["temperature"]) == set(classifier.categories)

    records = read_records(synthetic_splits["dev"], classifier.data_config(), classifier.taxonomy)
    scores = classifier.predict_proba(records.inputs)
    flagged = classifier.decide(scores)
    for j, category in enumerate(classifier.categories):
        if category not in record["unreachable"] and flagged[:, j].any():
            assert precision_score(records.labels[:, j], flagged[:, j]) >= 0.95
    # The temperatures change the scores predict() returns; the raw logits are untouched.
    logits = classifier.predict_logits(records.inputs)
    expected = expit(logits / classifier.policy.temperature_vector)
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    predictions = classifier.predict(records.inputs[:5])
    assert [p.labels for p in predictions] == [
        [c for c, hit in zip(classifier.categories, row) if hit] for row in flagged[:5]]


def test_calibrate_cli(ngram_checkpoint, synthetic_splits, tmp_path, capsys):
    output = tmp_path / "calibrated"
    assert main(["calibrate", str(ngram_checkpoint), "--data", str(synthetic_splits["dev"]),
                 "--objective", "recall@0.9", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "objective recall@0.9" in printed and "abuse" in printed
    config = json.loads((output / "config.json").read_text())
    assert config["calibration"]["objective"] == "recall@0.9" and not config["calibration"]["per_category"]
    assert len(set(config["thresholds"].values())) == 1  # one shared threshold
    with pytest.raises(SystemExit):
        main(["calibrate", str(ngram_checkpoint), "--data", str(synthetic_splits["dev"]), "--objective", "auc"])


def _report(tmp_path, name, labels, scores):
    data = ScoredData.build(labels, scores, ["porn", "abuse"], ids=[f"row-{i}" for i in range(len(labels))])
    write_report(data, build_report(data, [0.5, 0.5], bootstrap_resamples=10), tmp_path / name)
    return tmp_path / name


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(5)
    labels = rng.random((400, 2)) < 0.3
    weak = np.clip(labels * 0.2 + rng.random((400, 2)) * 0.8, 0, 1)
    strong = weak.copy()
    strong[:, 0] = np.clip(labels[:, 0] * 0.6 + rng.random(400) * 0.4, 0, 1)  # planted: porn much better
    a = _report(tmp_path, "a", labels, weak)
    b = _report(tmp_path, "b", labels, strong)
    return tmp_path, labels, weak, a, b


def test_compare_finds_planted_difference_and_none_with_itself(two_models):
    tmp_path, labels, weak, a, b = two_models
    result = modelkit.compare_reports(a, b, resamples=300)
    rows = {(m["scope"], m["metric"]): m for m in result["metrics"]}
    for metric in ("f1", "roc_auc", "average_precision"):
        assert rows[("porn", metric)]["delta"] > 0.1 and rows[("porn", metric)]["p_value"] < 0.01
        assert rows[("abuse", metric)]["delta"] == 0 and rows[("abuse", metric)]["p_value"] == 1.0
    same = modelkit.compare_reports(a, a / "report.json", resamples=100)
    assert all(m["delta"] == 0 and m["p_value"] == 1.0 for m in same["metrics"])


def test_compare_pairs_rows_by_id_and_refuses_other_data(two_models):
    tmp_path, labels, weak, a, b = two_models
    shuffled_dir = tmp_path / "shuffled"
    order = np.random.default_rng(0).permutation(len(labels))
    data = ScoredData.build(labels[order], weak[order], ["porn", "abuse"], ids=[f"row-{i}" for i in order])
    write_report(data, build_report(data, [0.5, 0.5], bootstrap_resamples=5), shuffled_dir)
    result = modelkit.compare_reports(a, shuffled_dir, resamples=50)
    assert all(m["delta"] == 0 for m in result["metrics"])

    other = _report(tmp_path, "other", labels[:300], weak[:300])
    with pytest.raises(EvaluationError, match="cover different rows"):
        modelkit.compare_reports(a, other)
    flipped = labels.copy()
    flipped[0, 0] = ~flipped[0, 0]
    with pytest.raises(EvaluationError, match="disagree on the true labels"):
        modelkit.compare_reports(a, _report(tmp_path, "flipped", flipped, weak))
    with pytest.raises(EvaluationError, match="no report.json"):
        modelkit.compare_reports(a, tmp_path / "missing")


def test_compare_cli_writes_html(two_models, capsys):
    tmp_path, _, _, a, b = two_models
    output = tmp_path / "cmp" / "comparison.html"
    assert main(["compare", str(a), str(b), "--output", str(output), "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "p-value" in printed and "porn" in printed
    assert output.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
