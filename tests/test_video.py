"""The video modality end to end: a frame model trained from video labels (and segments) on synthetic
videos finds where the planted category is; checkpoints round-trip; the CLI trains, predicts and
evaluates (segment metrics, timelines); every bad video is an error in training and an error
record in prediction; frame pooling and part labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import modelkit
import video_files
from modelkit.data.records import DataConfig, DataError, read_records
from modelkit.video.segments import part_labels
from modelkit.video.synthetic import write_synthetic_video_splits
from modelkit.video.evaluation import segment_metrics, temporal_iou
from modelkit.video.models import pool_frames, video_classifier

CATEGORIES = ["pornography", "soft_pornography", "vulgar"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def video_splits(tmp_path_factory) -> dict:
    return write_synthetic_video_splits(tmp_path_factory.mktemp("videos"), categories=CATEGORIES, train=60, dev=16,
                                        test=30, duration_s=(5.0, 8.0), min_signal_s=2.0, max_signal_s=3.5,
                                        fps=8, size=(96, 72), seed=0)


def video_recipe(splits: dict, output_dir: Path, **train) -> dict:
    return {
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "test": str(splits["test"]),
                 "inputs": {"video": "video"}},
        "categories": CATEGORIES,
        "model": {"name": "video", "frames": {"name": "image", "arch": "small_cnn", "dropout": 0.1}},
        "processor": {"frame": {"resize": [36, 48], "crop": None},
                      "sampler": {"fps": 4, "max_frames": 40, "size": 36},
                      "segments": {"exit_ratio": 0.5, "merge_gap_s": 0.6, "min_frames": 2}},
        "train": {"epochs": 10, "batch_size": 8, "learning_rate": 0.003, "tune_thresholds": True, **train},
        "output_dir": str(output_dir),
    }


@pytest.fixture(scope="session")
def video_checkpoint(video_splits, tmp_path_factory) -> Path:
    return modelkit.train(video_recipe(video_splits, tmp_path_factory.mktemp("runs") / "video"))


def localisation(predictions: list, rows: list[dict]) -> tuple[float, float]:
    """(share of violating videos whose planted segment is found at IoU >= 0.5, share of clean videos
    with no segment at all)."""
    found, clean = [], []
    for prediction, row in zip(predictions, rows):
        if row["segments"]:
            truth = row["segments"][0]
            mine = [s for s in prediction.segments if s["category"] == truth["category"]]
            found.append(max((temporal_iou(truth, s) for s in mine), default=0.0) >= 0.5)
        else:
            clean.append(not prediction.segments)
    return float(np.mean(found)), float(np.mean(clean))


# -- learning and localising --------------------------------------------------------------------------
def test_planted_segments_are_found_and_clean_videos_give_none(video_checkpoint, video_splits):
    rows = read_jsonl(video_splits["test"])
    paths = [str(video_splits["test"].parent / row["video"]) for row in rows]
    predictions = modelkit.load(video_checkpoint).predict(paths, batch_size=8)
    found, clean = localisation(predictions, rows)
    assert found >= 0.9 and clean >= 0.9, (found, clean)
    segment = next(s for p in predictions for s in p.segments or [])
    assert set(segment) == {"category", "start_s", "end_s", "peak_s", "peak_score"}
    assert segment["start_s"] <= segment["peak_s"] <= segment["end_s"]


def test_checkpoint_round_trip_and_backends(video_checkpoint, video_splits, tmp_path):
    rows = read_jsonl(video_splits["test"])[:6]
    paths = [str(video_splits["test"].parent / row["video"]) for row in rows]
    clf = modelkit.load(video_checkpoint)
    config = json.loads((video_checkpoint / "config.json").read_text())
    assert config["model"]["name"] == "video" and config["model"]["frame_model"]["name"] == "image"
    again = modelkit.load(clf.save(tmp_path / "copy"), backend="torch")
    first, second = clf.predict(paths), again.predict(paths, num_workers=2)
    for a, b in zip(first, second):  # ONNX Runtime frames against PyTorch frames, in workers
        assert np.allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-4)
        assert [s["category"] for s in a.segments] == [s["category"] for s in b.segments]
    assert clf.model._frame_scorer is not None and again.model._frame_scorer is None  # ONNX Runtime, PyTorch
    record = first[0].to_dict()
    assert set(record) == {"scores", "labels", "segments", "evidence"}
    assert record["evidence"]["frames"] == len(first[0].parts[0])


def test_video_classifier_from_an_image_checkpoint(video_checkpoint, video_splits):
    """Any image checkpoint scores frames; with max pooling a video scores its worst frame."""
    frames = modelkit.load(video_checkpoint)
    image_dir = Path(video_checkpoint).parent / "frames-only"
    frame_model = frames.model.frames
    image = modelkit.Classifier(frame_model, frames.processor.frame, frames.policy)
    image.save(image_dir)
    clf = video_classifier(image_dir, sampler={"fps": 2, "size": 36})
    path = str(video_splits["test"].parent / read_jsonl(video_splits["test"])[0]["video"])
    prediction = clf.predict([path])[0]
    times, scores = prediction.parts
    assert np.allclose(list(prediction.scores.values()), scores.max(axis=0), atol=1e-5)
    assert np.allclose(np.diff(times), 0.5)


# -- CLI ---------------------------------------------------------------------------------------------
def test_cli_predict_and_evaluate(video_checkpoint, video_splits, tmp_path):
    from modelkit.cli import main

    output = tmp_path / "predictions.jsonl"
    assert main(["predict", str(video_checkpoint), "--input", str(video_splits["test"]), "--output", str(output),
                 "--num-workers", "2"]) == 0
    rows = list(modelkit.read_predictions(output))
    assert len(rows) == 30 and all({"id", "scores", "labels", "segments"} <= set(r) for r in rows)
    report_dir = tmp_path / "eval"
    assert main(["evaluate", str(video_checkpoint), "--data", str(video_splits["test"]),
                 "--output-dir", str(report_dir)]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    metrics = report["segments"]["metrics"]
    assert metrics["overall"]["true_segments"] == sum(1 for r in read_jsonl(video_splits["test"]) if r["segments"])
    assert metrics["overall"]["recall"] >= 0.8
    timelines = sorted(p.name for p in (report_dir / "plots").glob("timeline_*.png"))
    assert timelines and timelines[0].startswith("timeline_")
    page = (report_dir / "report.html").read_text()
    assert "Segments" in page and "temporal IoU" in page


def test_cli_train_and_resume_argument_path(video_splits, tmp_path):
    """`modelkit train` on a video recipe file, with part labels switched off (video labels only)."""
    from modelkit.cli import main

    recipe = video_recipe(video_splits, tmp_path / "run", epochs=1)
    # What the run learns is not checked here: the 16 dev videos train it (the 60 of train took
    # three quarters of the test's time) and no test split is scored after it.
    recipe["data"]["train"] = recipe["data"]["dev"]
    del recipe["data"]["test"]
    recipe["train"].update(part_loss_weight=0.0)
    recipe["model"]["aggregation"] = "attention"
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(recipe))
    assert main(["train", str(path)]) == 0
    clf = modelkit.load(tmp_path / "run")
    assert clf.model.config.aggregation == "attention" and clf.model.alpha is not None


# -- bad inputs ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def bad_videos(tmp_path_factory) -> tuple[Path, list[tuple[str, str]]]:
    """A manifest of good and bad videos: (id, what the error says) for the bad ones."""
    folder = tmp_path_factory.mktemp("bad_videos")
    (folder / "videos").mkdir()
    makers = {
        "corrupt": (video_files.write_corrupt, "not a video"),
        "truncated": (video_files.write_truncated, "not a video"),
        "audio": (video_files.write_audio_only, "no video stream"),
        "empty-stream": (video_files.write_no_frames, "no decodable frames"),
    }
    rows, bad = [], []
    for name, (make, message) in makers.items():
        make(folder / "videos" / f"{name}.mp4")
        rows.append({"id": name, "video": f"videos/{name}.mp4", "labels": []})
        bad.append((name, message))
    (folder / "videos" / "zero.mp4").write_bytes(b"")
    rows.append({"id": "zero", "video": "videos/zero.mp4", "labels": []})
    bad.append(("zero", "empty"))
    rows.append({"id": "missing", "video": "videos/nope.mp4", "labels": []})
    bad.append(("missing", "not found"))
    rows.append({"id": "escape", "video": "../outside.mp4", "labels": []})
    bad.append(("escape", "leads out"))
    for name, make in [("early", video_files.write_ends_early), ("lying", video_files.write_lying_duration),
                       ("raw", video_files.write_raw_h264), ("ok", video_files.write_constant_fps)]:
        suffix = ".h264" if name == "raw" else ".mp4"
        make(folder / "videos" / f"{name}{suffix}")
        rows.append({"id": name, "video": f"videos/{name}{suffix}", "labels": ["vulgar"]})
    return write_jsonl(folder / "manifest.jsonl", rows), bad


def test_bad_videos_in_prediction_become_error_records(video_checkpoint, bad_videos, tmp_path):
    from modelkit.cli import main

    manifest, bad = bad_videos
    output = tmp_path / "predictions.jsonl"
    assert main(["predict", str(video_checkpoint), "--input", str(manifest), "--output", str(output)]) == 0
    rows = {r["id"]: r for r in modelkit.read_predictions(output)}
    for name, message in bad:
        assert message in rows[name]["error"], rows[name]
    for name in ("early", "lying", "raw", "ok"):  # odd metadata still gives scores and segments
        assert "error" not in rows[name] and "segments" in rows[name], rows[name]


def test_bad_videos_in_training_are_named_or_skipped(bad_videos, tmp_path):
    manifest, bad = bad_videos
    config = DataConfig(inputs={"video": "video"})
    with pytest.raises(DataError, match=r"id 'zero'|id 'missing'"):
        read_records(manifest, config, modelkit.Taxonomy.load())
    decodable = {"early", "lying", "raw", "ok"}
    recipe = {"data": {"train": str(manifest), "dev": str(manifest), "inputs": {"video": "video"},
                       "skip_bad_files": True},
              "categories": CATEGORIES, "model": {"name": "video", "frames": {"name": "image", "arch": "small_cnn"}},
              "processor": {"frame": {"resize": 16, "crop": 16}, "sampler": {"fps": 2, "size": 16}},
              "train": {"epochs": 1, "batch_size": 4}, "output_dir": str(tmp_path / "run")}
    output = modelkit.train(recipe)
    log = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    skipped = next(event for event in log if event["event"] == "skipped_rows")
    assert {row.split("id '")[1].split("'")[0] for row in skipped["rows"]} == {name for name, _ in bad}
    rows = read_jsonl(manifest)
    corrupt_only = write_jsonl(manifest.with_name("corrupt.jsonl"),
                               [r for r in rows if r["id"] in decodable | {"corrupt"}])
    recipe["data"].update(train=str(corrupt_only), dev=str(corrupt_only), skip_bad_files=False)
    with pytest.raises(DataError, match=r"corrupt\.mp4.*not a video.*skip_bad_files"):
        modelkit.train(recipe)


# -- pieces --------------------------------------------------------------------------------------------
def test_pooling_over_each_videos_frames():
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0], [4.0, 0.0], [-3.0, 5.0], [1.0, 1.0]])
    rows = torch.tensor([0, 0, 0, 1, 1])
    assert pool_frames(logits, rows, "max", 2).tolist() == [[4.0, 1.0], [1.0, 5.0]]
    assert pool_frames(logits, rows, "mean", 2).tolist() == [[2.0, 0.0], [-1.0, 3.0]]
    assert pool_frames(logits, rows, "topk_mean", 2).tolist() == [[3.0, 0.5], [-1.0, 3.0]]
    near_max = pool_frames(logits, rows, "attention", 2, alpha=torch.tensor([50.0, 50.0]))
    near_mean = pool_frames(logits, rows, "attention", 2, alpha=torch.tensor([0.0, 0.0]))
    assert torch.allclose(near_max, torch.tensor([[4.0, 1.0], [1.0, 5.0]]), atol=1e-3)
    assert torch.allclose(near_mean, torch.tensor([[2.0, 0.0], [-1.0, 3.0]]))


def test_batches_hold_a_bounded_number_of_frames():
    from modelkit.processing import create_processor

    assert create_processor("video", sampler={"max_frames": 64}).batch_size(256) == 8
    assert create_processor("video", sampler={"max_frames": 64}).batch_size(4) == 4
    assert create_processor("video", sampler={"max_frames": None}).batch_size(256) == 1


def test_part_labels_from_segments():
    times = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    labels = np.array([1.0, 1.0, 0.0])
    segments = [{"category": "a", "start_s": 1.0, "end_s": 3.0}, {"category": "elsewhere", "start_s": 0, "end_s": 9}]
    out = part_labels(times, labels, segments, ["a", "b", "c"])
    assert out[:, 0].tolist() == [0, 1, 1, 0, 0]  # inside [start, end)
    assert np.isnan(out[:, 1]).all()  # labelled, but not where: left to the video label
    assert out[:, 2].tolist() == [0] * 5  # not in the video at all


def test_segments_column_is_validated(video_splits, tmp_path):
    rows = read_jsonl(video_splits["dev"])
    rows[2]["segments"] = [{"category": "vulgar", "start_s": 3.0}]
    bad = write_jsonl(video_splits["dev"].parent / "bad_segments.jsonl", rows)
    recipe = video_recipe({"train": bad, "dev": bad, "test": bad}, tmp_path / "run", epochs=1)
    with pytest.raises(DataError, match=r"id 'video-\d+'.*segments entries need category, start_s and end_s"):
        modelkit.train(recipe)


def test_datasets_video_column(video_splits):
    import datasets

    rows = read_jsonl(video_splits["test"])[:3]
    folder = video_splits["test"].parent
    table = datasets.Dataset.from_dict({"clip": [str(folder / r["video"]) for r in rows],
                                        "labels": [r["labels"] for r in rows]})
    table = table.cast_column("clip", datasets.Video())
    records = read_records(table, DataConfig(inputs={"video": "clip"}), modelkit.Taxonomy.load().subset(CATEGORIES))
    assert records.inputs[0]["path"] == str(folder / rows[0]["video"])


def test_segment_metrics_report_iou_precision_and_recall():
    truth = [[{"category": "a", "start_s": 2.0, "end_s": 5.0}], []]
    predicted = [[{"category": "a", "start_s": 2.5, "end_s": 5.0}], [{"category": "a", "start_s": 0.0, "end_s": 1.0}]]
    metrics = segment_metrics(predicted, truth, ["a"])["a"]
    assert metrics["matched"] == 1 and metrics["precision"] == 0.5 and metrics["recall"] == 1.0
    assert metrics["false_alarm_videos"] == 1
