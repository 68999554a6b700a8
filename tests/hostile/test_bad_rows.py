"""Bad rows: an error on that row and the run goes on; bad weights and bad labels never pass
silently (items 9 to 14 of the hardening issue)."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import modelkit
from modelkit import CheckpointError, DataError
from modelkit.checkpoint import sha256_file
from modelkit.cli import main

from conftest import tiny_text_classifier, train_tiny_image_model


def _jsonl(path: Path, rows: list) -> Path:
    """Rows as JSON lines, non-ASCII characters as escapes (so a lone surrogate can be written)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _predict(checkpoint, source, output, *extra) -> int:
    return main(["predict", str(checkpoint), "--input", str(source), "--output", str(output), *extra])


# -- item 9: a path the file system refuses is that row's error ------------------------------------
@pytest.fixture(scope="module")
def image_checkpoint(tmp_path_factory) -> Path:
    return train_tiny_image_model(tmp_path_factory.mktemp("image"))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_unusable_file_names_are_row_errors(image_checkpoint, tmp_path, fmt):
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "ok.png")
    rows = [{"id": "ok", "image": "ok.png"}, {"id": "nul", "image": "a\u0000b.png"},
            {"id": "long", "image": "x" * 5000 + ".png"}, {"id": "surrogate", "image": "\udc80.png"},
            {"id": "ok2", "image": "ok.png"}]
    source = _jsonl(tmp_path / "manifest.jsonl", rows)
    output = tmp_path / "out"
    assert _predict(image_checkpoint, source, output, "--format", fmt) == 0
    written = {row["id"]: row for row in modelkit.read_predictions(output)}
    assert list(written) == ["ok", "nul", "long", "surrogate", "ok2"]
    assert "scores" in written["ok"] and "scores" in written["ok2"]
    assert "NUL" in written["nul"]["error"]
    assert "file name" in written["long"]["error"] and "file name" in written["surrogate"]["error"]


# -- item 10: non-finite weights and scores -------------------------------------------------------------
def _poison(checkpoint: Path, value: float) -> None:
    weights = checkpoint / "model.safetensors"
    state = load_file(str(weights))
    name = next(k for k in state if state[k].is_floating_point())
    state[name].view(-1)[3] = value
    save_file(state, str(weights), metadata={"format": "pt"})
    config = json.loads((checkpoint / "config.json").read_text())
    config["files"]["model.safetensors"] = sha256_file(weights)
    (checkpoint / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_at_load(tiny_checkpoint, value):
    _poison(tiny_checkpoint, value)
    with pytest.raises(CheckpointError, match=r"model.safetensors: .*(embedding|head).* non-finite"):
        modelkit.load(tiny_checkpoint)


def test_non_finite_scores_are_error_rows_never_a_pass(tmp_path):
    classifier = tiny_text_classifier()
    part_logits = classifier.model.part_logits

    def broken(**batch):  # a model that overflows on some inputs
        logits, rows = part_logits(**batch)
        lengths = torch.diff(batch["offsets"], append=batch["offsets"].new_tensor([batch["input_ids"].numel()]))
        return torch.where((lengths > 40)[:, None], torch.full_like(logits, float("nan")), logits), rows

    classifier.model.part_logits = broken
    predictions = classifier.predict(["short", "a much longer text " * 3, "ok"], on_error="record")
    assert predictions[1].error is not None and "non-finite" in predictions[1].error and not predictions[1].labels
    assert predictions[0].error is None and predictions[2].error is None
    with pytest.raises(modelkit.InputError, match="input 1: .*non-finite"):
        classifier.predict(["short", "a much longer text " * 3])
    source = _jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "short"}, {"id": "b", "text": "a much longer text " * 3}])
    summary = modelkit.predict_files(classifier, source, tmp_path / "out", progress=False)
    written = {row["id"]: row for row in modelkit.read_predictions(tmp_path / "out")}
    assert "non-finite" in written["b"]["error"] and "scores" in written["a"] and summary.errors == 1


# -- item 11: training labels that are missing ------------------------------------------------------------
def _label_file(tmp_path: Path, kind: str) -> Path:
    rows = [("你这个傻逼", "1"), ("今天天气不错", "0")] * 10
    if kind == "csv":
        path = tmp_path / "train.csv"
        lines = ["id,text,label"] + [f"r{i},{text},{label if i != 5 else ''}" for i, (text, label) in enumerate(rows)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path
    path = tmp_path / "train.jsonl"
    body = []
    for i, (text, label) in enumerate(rows):
        value = {"nan": "NaN", "null": "null", "blank": '""'}[kind] if i == 5 else label
        body.append(f'{{"id": "r{i}", "text": "{text}", "label": {value}}}')
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["csv", "nan", "null", "blank"])
def test_missing_training_labels_are_errors_naming_file_row_and_column(tmp_path, kind):
    path = _label_file(tmp_path, kind)
    config = modelkit.load_run_config({"data": {"train": str(path), "label_field": "label", "label_map": {0: [], 1: ["abuse"]}},
                                       "categories": ["abuse"], "model": {"name": "ngram"}})
    with pytest.raises(DataError, match=rf"{path.name}, row 5 \(id 'r5'\): column 'label': .*missing"):
        modelkit.data.records.read_records(path, config.data, config.build_taxonomy())


def test_drop_invalid_labels_counts_what_it_dropped(tmp_path):
    path = _label_file(tmp_path, "csv")
    output = tmp_path / "run"
    modelkit.train({"data": {"train": str(path), "label_field": "label", "label_map": {0: [], 1: ["abuse"]},
                             "drop_invalid_labels": True, "dev_fraction": 0.3},
                    "categories": ["abuse"], "model": {"name": "ngram", "embed_dim": 8},
                    "processor": {"features": {"num_buckets": 1024}}, "train": {"epochs": 1},
                    "output_dir": str(output)})
    events = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    dropped = [e for e in events if e["event"] == "dropped_labels"]
    assert dropped and dropped[0]["count"] == 1 and "row 5" in dropped[0]["rows"][0]
    start = next(e for e in events if e["event"] == "start")
    assert start["train_rows"] + start["dev_rows"] == 19


# -- item 12: ids -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_ids_are_strings_as_written_and_bad_ids_are_row_errors(tiny_checkpoint, tmp_path, fmt, capsys):
    rows = [{"id": 1, "text": "a"}, {"id": "1", "text": "b"}, {"id": None, "text": "c"},
            {"id": {"x": 1}, "text": "d"}, {"id": 2.5, "text": "e"}, {"id": "z", "text": "f"}, {"id": "z", "text": "g"},
            {"text": "no id"}]
    source = _jsonl(tmp_path / "in.jsonl", rows)
    output = tmp_path / "out"
    assert _predict(tiny_checkpoint, source, output, "--format", fmt) == 0
    err = capsys.readouterr().err
    assert "2 duplicate ids" in err and "'1'" in err and "'z'" in err
    written = list(modelkit.read_predictions(output))
    # A row without the id field is known by its position, as in a file without ids.
    assert [row["id"] for row in written] == ["1", "1", None, None, "2.5", "z", "z", "7"]
    assert "id is missing (null)" in written[2]["error"] and "id must be a string or a number" in written[3]["error"]
    assert all("scores" in written[i] for i in (0, 1, 4, 5, 6, 7))
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["duplicate_ids"] == {"count": 2, "examples": ["1", "z"]}


def test_rows_without_an_id_field_are_numbered_as_text(tiny_checkpoint, tmp_path):
    source = _jsonl(tmp_path / "in.jsonl", [{"body": "a"}, {"body": "b"}])
    assert main(["predict", str(tiny_checkpoint), "--input", str(source), "--output", str(tmp_path / "out"),
                 "--input-field", "body", "--format", "jsonl"]) == 0
    assert [row["id"] for row in modelkit.read_predictions(tmp_path / "out")] == ["0", "1"]


# -- item 13: encodings and JSON arrays --------------------------------------------------------------------
@pytest.mark.parametrize("encoding, bom", [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
                                          ("utf-32-le", codecs.BOM_UTF32_LE)])
def test_utf16_files_are_refused_with_the_encoding_named(tiny_checkpoint, tmp_path, encoding, bom, capsys):
    text = "".join(json.dumps({"id": f"r{i}", "text": "你好"}, ensure_ascii=False) + "\n" for i in range(5))
    for suffix in (".jsonl", ".csv"):
        source = tmp_path / f"in{suffix}"
        source.write_bytes(bom + (text if suffix == ".jsonl" else "id,text\nr0,你好\n").encode(encoding))
        assert _predict(tiny_checkpoint, source, tmp_path / f"out{suffix}") == 2
        err = capsys.readouterr().err
        assert f"{source}: " in err and encoding.upper().split("-")[0] + "-" + encoding.split("-")[1] in err.upper()
        assert not (tmp_path / f"out{suffix}").exists()


def test_utf8_bom_is_skipped(tiny_checkpoint, tmp_path):
    source = tmp_path / "in.csv"
    source.write_bytes(codecs.BOM_UTF8 + "id,text\nr0,你好\nr1,hello\n".encode())
    assert _predict(tiny_checkpoint, source, tmp_path / "out") == 0
    assert [row["id"] for row in modelkit.read_predictions(tmp_path / "out")] == ["r0", "r1"]


def test_a_json_array_file_is_read_as_rows(tiny_checkpoint, tmp_path):
    rows = [{"id": f"r{i}", "text": "你好"} for i in range(4)] + [{"id": "bad", "text": 5}]
    source = tmp_path / "in.json"
    source.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    assert _predict(tiny_checkpoint, source, tmp_path / "out") == 0
    written = list(modelkit.read_predictions(tmp_path / "out"))
    assert [row["id"] for row in written] == ["r0", "r1", "r2", "r3", "bad"] and "error" in written[-1]


def test_training_reads_a_json_array_and_refuses_utf16(tmp_path):
    rows = [{"text": "你这个傻逼", "labels": ["abuse"]}, {"text": "今天天气不错", "labels": []}] * 5
    array = tmp_path / "train.json"
    array.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    config = modelkit.load_run_config({"data": {"train": str(array)}, "categories": ["abuse"], "model": {"name": "ngram"}})
    records = modelkit.data.records.read_records(array, config.data, config.build_taxonomy())
    assert len(records) == 10 and records.labels[:, 0].tolist() == [1.0, 0.0] * 5
    utf16 = tmp_path / "train16.jsonl"
    utf16.write_bytes(codecs.BOM_UTF16_LE + "\n".join(json.dumps(r) for r in rows).encode("utf-16-le"))
    with pytest.raises(DataError, match=rf"{utf16.name}: .*UTF-16"):
        modelkit.data.records.read_records(utf16, config.data, config.build_taxonomy())


# -- item 14: each left-out row is counted once ----------------------------------------------------------
def test_rows_left_out_are_counted_once_when_dev_is_split_off(tmp_path):
    from PIL import Image

    rows = []
    for index in range(20):
        name = f"{index}.png"
        if index % 7 != 3:  # rows 3, 10 and 17 name files that do not exist
            Image.new("RGB", (16, 16), (20 * index, 0, 0)).save(tmp_path / name)
        rows.append({"id": f"i{index}", "image": name, "labels": ["gore"] if index % 2 else []})
    manifest = _jsonl(tmp_path / "manifest.jsonl", rows)
    output = tmp_path / "run"
    modelkit.train({"data": {"train": str(manifest), "inputs": {"image": "image"}, "skip_bad_files": True,
                             "dev_fraction": 0.3},
                    "categories": ["gore"], "model": {"name": "image", "arch": "small_cnn"},
                    "processor": {"resize": 16, "crop": 16}, "train": {"epochs": 1}, "output_dir": str(output)})
    events = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    skipped = [e for e in events if e["event"] == "skipped_rows"]
    assert sum(e["count"] for e in skipped) == 3, skipped
    start = next(e for e in events if e["event"] == "start")
    assert start["train_rows"] + start["dev_rows"] == 17


def test_run_summary_counts_bad_rows_once(tiny_checkpoint, tmp_path, capsys):
    rows = [{"id": f"r{i}", "text": "ok"} for i in range(10)] + ["{broken", {"id": "n", "text": None}]
    source = _jsonl(tmp_path / "in.jsonl", rows)
    assert _predict(tiny_checkpoint, source, tmp_path / "out", "--shard-size", "5") == 0
    assert "12 rows (12 scored now), 2 errors" in capsys.readouterr().out
    assert _predict(tiny_checkpoint, source, tmp_path / "out", "--shard-size", "5") == 0
    assert "12 rows (0 scored now, 12 done before), 0 errors" in capsys.readouterr().out
