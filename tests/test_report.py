"""Evaluation reports: every number of report.json checked against scikit-learn, computed here."""

import json
import re

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

import modelkit
from modelkit.evaluation.report import EvaluationError, ScoredData, build_report, write_report

CATEGORIES = ["porn", "abuse", "gore"]  # gore has no positives: its AUC and AP are undefined
THRESHOLDS = np.array([0.5, 0.45, 0.5])
RESAMPLES = 40


def small_case() -> ScoredData:
    rng = np.random.default_rng(7)
    n = 90
    labels = np.zeros((n, 3), dtype=bool)
    labels[:, 0] = rng.random(n) < 0.3
    labels[:, 1] = rng.random(n) < 0.4
    # Rounded so that tied scores exercise the tie handling of the curves.
    scores = np.round(np.clip(labels * 0.3 + rng.random((n, 3)) * 0.7, 0, 1), 2)
    return ScoredData.build(
        labels, scores, CATEGORIES, ids=[f"r{i}" for i in range(n)],
        inputs=[f"post {i} <script>alert({i})</script> & <b>bold</b>" for i in range(n)],
        fields={"lang": rng.choice(["zh", "en"], n).tolist()},
    )


@pytest.fixture(scope="module")
def case():
    data = small_case()
    report = build_report(data, THRESHOLDS, slice_by=["lang"], bootstrap_resamples=RESAMPLES, seed=3,
                          errors_per_category=5, header={"data": "in-memory"})
    return data, report


def approx(value):
    return pytest.approx(value, abs=1e-9)


def test_overall_numbers_match_sklearn(case):
    data, report = case
    y, s = data.labels, data.scores
    pred = s >= THRESHOLDS
    overall = report["overall"]
    assert overall["n"] == len(y)
    assert overall["accuracy"] == approx(accuracy_score(y, pred))
    defined = [0, 1]
    for average in ("micro", "macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, pred, average=average, zero_division=0)
        assert (overall[f"{average}_precision"], overall[f"{average}_recall"], overall[f"{average}_f1"]) == (
            approx(p), approx(r), approx(f))
    assert overall["micro_roc_auc"] == approx(roc_auc_score(y.ravel(), s.ravel()))
    assert overall["micro_average_precision"] == approx(average_precision_score(y.ravel(), s.ravel()))
    for average in ("macro", "weighted"):
        assert overall[f"{average}_roc_auc"] == approx(roc_auc_score(y[:, defined], s[:, defined], average=average))
        assert overall[f"{average}_average_precision"] == approx(
            average_precision_score(y[:, defined], s[:, defined], average=average))
    assert overall["label_counts"] == {"porn": int(y[:, 0].sum()), "abuse": int(y[:, 1].sum()), "gore": 0,
                                       "none": int((~y.any(axis=1)).sum())}
    assert "exclusive" not in overall  # some rows carry two categories


def test_category_numbers_match_sklearn(case):
    data, report = case
    y, s = data.labels, data.scores
    for j, name in enumerate(CATEGORIES):
        m = report["categories"][name]
        truth, score, cut = y[:, j], s[:, j], THRESHOLDS[j]
        p, r, f, _ = precision_recall_fscore_support(truth, score >= cut, average="binary", zero_division=0)
        assert (m["support"], m["precision"], m["recall"], m["f1"], m["threshold"]) == (
            int(truth.sum()), approx(p), approx(r), approx(f), approx(cut))
        tn, fp, fn, tp = confusion_matrix(truth, score >= cut, labels=[False, True]).ravel()
        assert m["confusion"] == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
        if truth.any():
            assert m["roc_auc"] == approx(roc_auc_score(truth, score))
            assert m["average_precision"] == approx(average_precision_score(truth, score))
        else:
            assert m["roc_auc"] is None and m["average_precision"] is None
            assert m["ci"]["roc_auc"] is None and m["operating_points"]["f1"] is None

        for row in m["threshold_table"]:
            p, r, f, _ = precision_recall_fscore_support(truth, score >= row["threshold"], average="binary",
                                                         zero_division=0)
            assert (row["precision"], row["recall"], row["f1"], row["flagged"]) == (
                approx(p), approx(r), approx(f), int((score >= row["threshold"]).sum()))
        assert any(row["threshold"] == approx(cut) for row in m["threshold_table"])

        # Expected calibration error over 15 equal-width bins, right edges inclusive.
        edges = np.linspace(0, 1, 16)
        ece = 0.0
        for low, high in zip(edges[:-1], edges[1:]):
            inside = (score > low) & (score <= high) if low > 0 else (score <= high)
            if inside.any():
                ece += inside.sum() / len(score) * abs(truth[inside].mean() - score[inside].mean())
        assert m["ece"] == approx(ece) and m["calibration"]["ece"] == approx(ece)
        assert sum(b["count"] for b in m["calibration"]["bins"]) == len(score)


def test_operating_points_are_the_best_thresholds(case):
    data, report = case
    for j, name in enumerate(CATEGORIES[:2]):
        truth, score = data.labels[:, j], data.scores[:, j]
        grid = []
        for cut in np.unique(score):
            p, r, f, _ = precision_recall_fscore_support(truth, score >= cut, average="binary", zero_division=0)
            grid.append((cut, p, r, f))
        points = report["categories"][name]["operating_points"]
        assert points["f1"]["f1"] == approx(max(g[3] for g in grid))
        for target in (0.9, 0.95, 0.99):
            feasible = [g for g in grid if g[1] >= target]
            point = points[f"precision@{target:g}"]
            if not feasible:
                assert point is None
                continue
            assert point["precision"] >= target
            assert point["recall"] == approx(max(g[2] for g in feasible))
        for target in (0.9, 0.95):
            point = points[f"recall@{target:g}"]
            assert point["recall"] >= target
            assert point["precision"] == approx(max(g[1] for g in grid if g[2] >= target))


def test_bootstrap_intervals_are_reproducible_with_sklearn(case):
    data, report = case
    y, s = data.labels, data.scores
    pred = s >= THRESHOLDS
    rng = np.random.default_rng(3)
    draws = {key: [] for key in ("porn/f1", "porn/roc_auc", "abuse/average_precision", "macro/f1", "micro/roc_auc")}
    for _ in range(RESAMPLES):
        idx = rng.integers(0, len(y), len(y))
        draws["porn/f1"].append(f1_score(y[idx, 0], pred[idx, 0], zero_division=0))
        draws["porn/roc_auc"].append(roc_auc_score(y[idx, 0], s[idx, 0]))
        draws["abuse/average_precision"].append(average_precision_score(y[idx, 1], s[idx, 1]))
        draws["macro/f1"].append(f1_score(y[idx], pred[idx], average="macro", zero_division=0))
        draws["micro/roc_auc"].append(roc_auc_score(y[idx].ravel(), s[idx].ravel()))
    expected = {key: np.percentile(values, [2.5, 97.5]).tolist() for key, values in draws.items()}
    categories = report["categories"]
    assert categories["porn"]["ci"]["f1"] == pytest.approx(expected["porn/f1"])
    assert categories["porn"]["ci"]["roc_auc"] == pytest.approx(expected["porn/roc_auc"])
    assert categories["abuse"]["ci"]["average_precision"] == pytest.approx(expected["abuse/average_precision"])
    assert report["overall"]["ci"]["macro"]["f1"] == pytest.approx(expected["macro/f1"])
    assert report["overall"]["ci"]["micro"]["roc_auc"] == pytest.approx(expected["micro/roc_auc"])


def test_slices_and_errors(case):
    data, report = case
    y, s = data.labels, data.scores
    lang = np.array(data.fields["lang"])
    groups = report["slices"]["lang"]["groups"]
    assert set(groups) == {"zh", "en"}
    for value, group in groups.items():
        rows = lang == value
        assert group["n"] == rows.sum()
        p, r, f, _ = precision_recall_fscore_support(y[rows, 1], s[rows, 1] >= 0.45, average="binary", zero_division=0)
        abuse = group["categories"]["abuse"]
        assert (abuse["precision"], abuse["recall"], abuse["f1"]) == (approx(p), approx(r), approx(f))
        assert abuse["roc_auc"] == approx(roc_auc_score(y[rows, 1], s[rows, 1]))
        assert group["macro_f1"] == approx(f1_score(y[rows], s[rows] >= THRESHOLDS, average="macro", zero_division=0))

    errors = report["categories"]["porn"]["errors"]
    negatives = np.flatnonzero(~y[:, 0] & (s[:, 0] >= 0.5))
    top = sorted(negatives, key=lambda i: -s[i, 0])[:5]
    assert [e["score"] for e in errors["false_positives"]] == [s[i, 0] for i in top]
    assert all(e["id"] in {f"r{i}" for i in negatives} and "porn" not in e["labels"] for e in errors["false_positives"])
    assert all(e["score"] < 0.5 and "porn" in e["labels"] for e in errors["false_negatives"])


def test_mutually_exclusive_labels_get_the_class_confusion_matrix():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, 60)  # 2 = none
    labels = np.stack([classes == 0, classes == 1], axis=1)
    scores = np.clip(labels * 0.4 + rng.random((60, 2)) * 0.6, 0, 1)
    report = build_report(ScoredData.build(labels, scores, ["hate", "offensive"]), [0.5, 0.5], bootstrap_resamples=5)
    flagged = scores >= 0.5
    predicted = np.where(flagged.any(axis=1), np.argmax(np.where(flagged, scores, -1), axis=1), 2)
    names = np.array(["hate", "offensive", "none"])
    exclusive = report["overall"]["exclusive"]
    assert exclusive["confusion_matrix"] == confusion_matrix(names[classes], names[predicted], labels=names).tolist()
    assert exclusive["weighted_f1"] == approx(f1_score(names[classes], names[predicted], average="weighted"))


def test_written_report_is_self_contained_and_escaped(case, tmp_path):
    data, report = case
    paths = write_report(data, report, tmp_path)
    assert {p.name for p in paths.values()} == {"report.json", "report.md", "report.html", "predictions.jsonl"}
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["categories"]["gore"]["roc_auc"] is None and on_disk["files"]["predictions"] == "predictions.jsonl"
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    for text in (page, markdown):
        assert "<script>" not in text and "<b>bold</b>" not in text
        assert "&lt;script&gt;alert(" in text and "undefined" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from a network
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', page)
    assert len(images) == len(CATEGORIES) == len(on_disk["files"]["plots"])
    for name in on_disk["files"]["plots"]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in markdown
    first = json.loads((tmp_path / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"id", "input", "labels", "scores", "lang"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scores": np.zeros((3, 2))}, "3 rows of scores but 4 rows of labels"),
        ({"labels": [["porn"], [], ["violence"], []]}, "labels row 2: unknown category 'violence'"),
        ({"scores": [{"porn": 0.1, "abuse": 0.2}] * 3 + [{"porn": 0.1, "x": 0.2}]}, "scores row 3: unknown category 'x'"),
        ({"scores": np.array([[0.1, np.nan]] * 4)}, "NaN or infinite in 4 rows"),
        ({"ids": [1, 2]}, "ids has 2 rows but labels have 4"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, message):
    arguments = {"labels": [["porn"], [], ["abuse"], []], "scores": np.full((4, 2), 0.5),
                 "categories": ["porn", "abuse"], **kwargs}
    with pytest.raises(EvaluationError, match=re.escape(message)):
        ScoredData.build(**arguments)


def test_unknown_slice_field_and_threshold_category():
    data = ScoredData.build(np.array([[1], [0]]), np.array([[0.9], [0.1]]), ["porn"])
    with pytest.raises(EvaluationError, match="cannot slice by 'topic'"):
        build_report(data, [0.5], slice_by=["topic"])
    with pytest.raises(EvaluationError, match="unknown category 'abuse'"):
        build_report(data, {"abuse": 0.5})


def test_evaluate_checkpoint_writes_report(ngram_checkpoint, synthetic_splits, tmp_path):
    report = modelkit.evaluate(ngram_checkpoint, synthetic_splits["test"], output_dir=tmp_path,
                               slice_by=["language"], bootstrap_resamples=20)
    assert report["overall"]["macro_f1"] > 0.9
    assert set(report["slices"]["language"]["groups"]) == {"zh", "en"}
    assert report["header"]["checkpoint"]["model"] == "ngram"
    assert all((tmp_path / name).is_file() for name in ("report.json", "report.md", "report.html"))
    with pytest.raises(EvaluationError, match="cannot slice by 'topic'"):
        modelkit.evaluate(ngram_checkpoint, synthetic_splits["test"], slice_by=["topic"])


def test_html_report_renders_every_plot_in_headless_chromium(case, chromium, tmp_path):
    from PIL import Image

    from modelkit.evaluation.screenshot import rendered_images, screenshot_html

    data, report = case
    write_report(data, report, tmp_path)
    assert rendered_images(tmp_path / "report.html") == (len(CATEGORIES), len(CATEGORIES))
    shot = screenshot_html(tmp_path / "report.html", tmp_path / "report.png", width=1400)
    image = Image.open(shot).convert("L")
    assert image.width == 1400 and image.height > 3000
    # Plots are drawn: a good share of the page is neither white background nor blank.
    assert sum(count for value, count in enumerate(image.histogram()) if value < 200) > 0.02 * image.width * image.height
