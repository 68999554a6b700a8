"""Outputs of stored checkpoints, pinned before the output path is reorganised ("outputs get a
seam"): every field a prediction carries (scores, labels, evidence) must come back the same,
scores within 1e-6, through the Python API and through `modelkit predict`'s shards.

The checkpoints are tiny (an `ngram` text model, a `small_cnn` image model, which also scores the
frames of a 4-second clip through `video_classifier`) and live in tests/data/golden with their
inputs and the outputs they gave when they were written. To write
them again (only when a change is meant to alter outputs, said in its commit):

    MODELKIT_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden_outputs.py
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import modelkit

GOLDEN = Path(__file__).parent / "data" / "golden"
REGENERATE = os.environ.get("MODELKIT_REGENERATE_GOLDEN") == "1"

TEXTS = ["你这个傻逼，滚", "今天天气不错", "", "ｓｂ 傻 逼", "nice weather today, going to the park",
         "这是一个很长的帖子, with English words too. " * 30 + "你这个傻逼。"]


def _write_text_checkpoint(folder: Path) -> Path:
    from modelkit.text.synthetic import write_synthetic_splits

    splits = write_synthetic_splits(folder / "data", seed=0)
    return modelkit.train({
        "output_dir": str(folder / "model"),
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"])},
        "model": {"name": "ngram", "embed_dim": 8},
        "processor": {"features": {"num_buckets": 4096}},
        "train": {"epochs": 3, "batch_size": 16, "learning_rate": 0.02},
    })


def _write_image_checkpoint(folder: Path) -> Path:
    from conftest import train_tiny_image_model

    return train_tiny_image_model(folder, categories=("gore", "violence"))


def _pictures(folder: Path) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for index in range(4):
        path = folder / f"picture-{index}.png"
        Image.fromarray(rng.integers(0, 256, size=(24, 20, 3), dtype=np.uint8)).save(path)
        paths.append(path.name)
    return paths


def _clip(folder: Path) -> list[str]:
    """4 s at 4 frames/s, 32x32: noise, with a bright square in the middle two seconds."""
    import av

    rng = np.random.default_rng(1)
    path = folder / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(16):
            frame = rng.integers(0, 120, size=(32, 32, 3), dtype=np.uint8)
            if 4 <= index < 12:
                frame[8:24, 8:24] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return [path.name]


def _classifier(name: str) -> modelkit.Classifier:
    if name == "video":
        from modelkit.video import video_classifier

        return video_classifier(GOLDEN / "image" / "checkpoint", sampler={"fps": 2, "size": 16})
    return modelkit.load(GOLDEN / name / "checkpoint")


def _case(name: str, tmp_path: Path) -> tuple[Path, list]:
    """The stored checkpoint and inputs of ``name`` (written first when regenerating)."""
    folder = GOLDEN / name
    if REGENERATE:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if name != "video":
            written = (_write_text_checkpoint if name == "text" else _write_image_checkpoint)(tmp_path / name)
            shutil.copytree(written, folder / "checkpoint", ignore=shutil.ignore_patterns(
                "last", "*.jsonl", "*.html", "run_config.yaml", "README.md"))
        inputs = {"text": lambda: TEXTS, "image": lambda: _pictures(folder), "video": lambda: _clip(folder)}[name]()
        (folder / "inputs.json").write_text(json.dumps(inputs, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder, _inputs(name)


def _inputs(name: str) -> list:
    inputs = json.loads((GOLDEN / name / "inputs.json").read_text(encoding="utf-8"))
    return inputs if name == "text" else [str(GOLDEN / name / path) for path in inputs]


def _same(new, old, where: str) -> None:
    """Equal structure and values; floats (scores, segment times) within 1e-6."""
    if isinstance(old, dict):
        assert isinstance(new, dict) and list(new) == list(old), (where, new, old)
        for key in old:
            _same(new[key], old[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), (where, new, old)
        for index, (a, b) in enumerate(zip(new, old)):
            _same(a, b, f"{where}[{index}]")
    elif isinstance(old, float):
        assert isinstance(new, (int, float)) and abs(new - old) <= 1e-6, (where, new, old)
    else:
        assert new == old, (where, new, old)


def _compare(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for row, (new, old) in enumerate(zip(got, expected)):
        assert set(new) == set(old), (row, new, old)
        _same({key: new[key] for key in old}, old, f"row {row}")


@pytest.mark.parametrize("name", ["text", "image", "video"])
def test_stored_checkpoints_give_their_stored_outputs(name, tmp_path):
    folder, inputs = _case(name, tmp_path)
    classifier = _classifier(name)
    outputs = [prediction.to_dict() for prediction in classifier.predict(inputs)]
    expected_file = folder / "outputs.json"
    if REGENERATE:
        expected_file.write_text(json.dumps(outputs, ensure_ascii=False, indent=1), encoding="utf-8")
    _compare(outputs, json.loads(expected_file.read_text(encoding="utf-8")))

    # The batch engine writes the same rows, ids beside them (files beside the manifest).
    modality = classifier.processor.modality
    if modality != "text":
        for path in inputs:
            shutil.copy(path, tmp_path)
        inputs = [Path(path).name for path in inputs]
    manifest = tmp_path / "inputs.jsonl"
    manifest.write_text("".join(json.dumps({"id": str(i), modality: value}, ensure_ascii=False) + "\n"
                                for i, value in enumerate(inputs)), encoding="utf-8")
    modelkit.predict_files(classifier, manifest, tmp_path / "out", progress=False)
    rows = sorted(modelkit.read_predictions(tmp_path / "out"), key=lambda row: int(row["id"]))
    _compare([{key: value for key, value in row.items() if key != "id"} for row in rows], outputs)


WRITTEN_612A567 = Path(__file__).parent / "data" / "written_612a567"


@pytest.mark.parametrize("name", ["text", "image", "video"])
def test_checkpoints_written_before_the_output_seam_give_their_outputs(name):
    # Written by the code of 612a567 (tests/data/written_612a567/make.py) on the golden inputs.
    folder = WRITTEN_612A567 / name
    inputs = _inputs(name)
    if name == "video":
        from modelkit.video import video_classifier

        classifier = video_classifier(WRITTEN_612A567 / "image" / "checkpoint", sampler={"fps": 2, "size": 16})
    else:
        classifier = modelkit.load(folder / "checkpoint")
    _compare([prediction.to_dict() for prediction in classifier.predict(inputs)],
             json.loads((folder / "outputs.json").read_text(encoding="utf-8")))
