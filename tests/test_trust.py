"""Checkpoints and runs you can trust: each hostile input below has its documented outcome."""

import json
import pickle
import shutil
import time

import pytest

import modelkit
from modelkit import CheckpointError, ConfigError, DataError
from modelkit.checkpoint import sha256_file
from modelkit.cli import main
from modelkit.data.records import DataConfig, read_records

from conftest import ngram_recipe


@pytest.fixture()
def ckpt(ngram_checkpoint, tmp_path):
    """A private copy of the trained ngram checkpoint, free to damage."""
    target = tmp_path / "ckpt"
    modelkit.load(ngram_checkpoint).save(target)
    return target


def _edit_config(directory, change):
    path = directory / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def test_missing_or_empty_manifest_is_refused(ckpt):
    weights = ckpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF  # a flipped byte that an empty manifest would let through
    weights.write_bytes(bytes(data))
    _edit_config(ckpt, lambda c: c.update(files={}))
    with pytest.raises(CheckpointError, match="the 'files' manifest is empty"):
        modelkit.load(ckpt)
    _edit_config(ckpt, lambda c: c.pop("files"))
    with pytest.raises(CheckpointError, match="field 'files' is missing"):
        modelkit.load(ckpt)
    _edit_config(ckpt, lambda c: c.update(files={"processor_config.json": "0" * 64}))
    with pytest.raises(CheckpointError, match="does not list model.safetensors"):
        modelkit.load(ckpt)


def test_taxonomy_order_must_match_id2label(ckpt):
    def swap(config):
        categories = config["taxonomy"]["categories"]
        categories[0], categories[-1] = categories[-1], categories[0]

    _edit_config(ckpt, swap)
    with pytest.raises(CheckpointError, match="id2label .* does not match the taxonomy's category order"):
        modelkit.load(ckpt)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["thresholds"].update(abuse=1.5), r"thresholds.abuse: must be a number in \[0, 1\], got 1.5"),
    (lambda c: c["thresholds"].update(abuse=-0.1), r"thresholds.abuse: must be a number in \[0, 1\]"),
    (lambda c: c["thresholds"].update(abuse="0.5"), r"thresholds.abuse: must be a number in \[0, 1\], got '0.5'"),
    (lambda c: c["thresholds"].update(nudity=0.5), "thresholds.nudity: not a category"),
    (lambda c: c.update(calibration={"temperature": {"abuse": 0}}), r"calibration.temperature.abuse: must be a number > 0"),
    (lambda c: c.update(calibration={"temperature": {"abuse": -2}}), r"calibration.temperature.abuse: must be a number > 0"),
])
def test_out_of_range_thresholds_and_temperatures_are_refused(ckpt, change, message):
    _edit_config(ckpt, change)
    with pytest.raises(CheckpointError, match=message):
        modelkit.load(ckpt)


def test_processor_loads_without_the_model(ckpt):
    processor = modelkit.load_processor(ckpt)
    assert processor.name == "text_ngram" and not processor.training
    batch = processor(["你这个傻逼", "hello"])
    assert set(batch) == {"input_ids", "offsets", "window_rows"} and batch["window_rows"].tolist() == [0, 1]
    (ckpt / "processor_config.json").write_text('{"name": "text_ngram"}')
    with pytest.raises(CheckpointError, match="processor_config.json does not match the hash"):
        modelkit.load_processor(ckpt)


class _Bomb:
    """Unpickling this creates a marker file: proof that a pickle was opened."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_transformer_checkpoint_never_reads_outside_itself(bert_checkpoint, tmp_path):
    ckpt = tmp_path / "bert"
    shutil.copytree(bert_checkpoint, ckpt, ignore=shutil.ignore_patterns("last"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _Bomb.marker = tmp_path / "unpickled"
    (elsewhere / "pytorch_model.bin").write_bytes(pickle.dumps(_Bomb()))
    (elsewhere / "config.json").write_text(json.dumps({"model_type": "bert"}))

    # A backbone path inside the model config is a record only: the architecture comes from
    # backbone_config and the weights from model.safetensors.
    _edit_config(ckpt, lambda c: c["model"].update(backbone=str(elsewhere)))
    modelkit.load(ckpt).predict(["hello"])
    assert not _Bomb.marker.exists()
    _edit_config(ckpt, lambda c: c["model"].pop("backbone_config"))
    with pytest.raises(CheckpointError, match="model.backbone_config: missing"):
        modelkit.load(ckpt)
    assert not _Bomb.marker.exists()

    fresh = tmp_path / "bert2"
    shutil.copytree(bert_checkpoint, fresh, ignore=shutil.ignore_patterns("last"))
    processor_config = json.loads((fresh / "processor_config.json").read_text())
    for tokenizer, message in [(str(elsewhere), "tokenizer must be a folder inside the checkpoint"),
                               ("../elsewhere", "tokenizer must be a folder inside the checkpoint"),
                               ("bert-base-chinese", "cannot load a tokenizer")]:
        (fresh / "processor_config.json").write_text(json.dumps({**processor_config, "tokenizer": tokenizer}))
        _edit_config(fresh, lambda c: c["files"].update({
            "processor_config.json": sha256_file(fresh / "processor_config.json")}))
        started = time.perf_counter()
        with pytest.raises(CheckpointError, match=message):
            modelkit.load(fresh)
        assert time.perf_counter() - started < 10  # no network retries
    assert not _Bomb.marker.exists()


def test_resume_refuses_another_recipe_and_says_what_changed(synthetic_splits, tmp_path):
    recipe = ngram_recipe(synthetic_splits, tmp_path / "run", epochs=1)
    modelkit.train(recipe)
    changed = ngram_recipe(synthetic_splits, tmp_path / "run", epochs=2)
    changed["model"]["embed_dim"] = 16
    with pytest.raises(ConfigError, match=r"--resume: .*different recipe \(model.embed_dim: 32 -> 16\)"):
        modelkit.train(changed, resume=True)

    other = tmp_path / "other_train.jsonl"
    rows = synthetic_splits["train"].read_text(encoding="utf-8").splitlines()
    other.write_text("\n".join(rows[:-10]) + "\n", encoding="utf-8")
    moved = ngram_recipe({**synthetic_splits, "train": other}, tmp_path / "run", epochs=2)
    with pytest.raises(ConfigError, match="data.files.train: the file's content differs"):
        modelkit.train(moved, resume=True)
    modelkit.train(ngram_recipe(synthetic_splits, tmp_path / "run", epochs=2), resume=True)  # same recipe: fine


def test_corrupt_resume_state_gives_clear_errors(synthetic_splits, tmp_path):
    recipe = ngram_recipe(synthetic_splits, tmp_path / "run", epochs=1)
    modelkit.train(recipe)
    recipe["train"]["epochs"] = 2
    optimizer = tmp_path / "run" / "last" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="optimizer.pt: truncated or corrupt.*delete .*last to start over"):
        modelkit.train(recipe, resume=True)
    (tmp_path / "run" / "last" / "trainer_state.json").write_text('{"epoch": "one"')
    with pytest.raises(CheckpointError, match="trainer_state.json: unreadable trainer state"):
        modelkit.train(recipe, resume=True)
    (tmp_path / "run" / "last" / "trainer_state.json").write_text('{"epoch": "one"}')
    with pytest.raises(CheckpointError, match="epoch: expected int"):
        modelkit.train(recipe, resume=True)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_bad_training_inputs_name_file_row_and_field(synthetic_splits, tmp_path):
    nan_labels = tmp_path / "nan.jsonl"
    nan_labels.write_text('{"id": "a", "text": "x", "label": 1}\n{"id": "b", "text": "y", "label": NaN}\n')
    recipe = ngram_recipe(synthetic_splits, tmp_path / "run")
    recipe["data"].update(train=str(nan_labels), label_field="label", label_map={"0": [], "1": ["abuse"]})
    with pytest.raises(DataError, match=r"nan.jsonl, row 1 \(id 'b'\): column 'label': label is missing \(NaN\)"):
        modelkit.train(recipe)

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.jsonl: the file is empty"):
        modelkit.train(ngram_recipe({**synthetic_splits, "train": empty}, tmp_path / "run"))

    for value in (".nan", ".inf", "-.inf"):
        with pytest.raises(ConfigError, match=r"train.learning_rate: expected a finite number"):
            modelkit.load_run_config(ngram_recipe(synthetic_splits, tmp_path / "run"),
                                     overrides=[f"train.learning_rate={value}"])

    duplicated = tmp_path / "dup.yaml"
    duplicated.write_text("data: {train: a.jsonl}\ntrain:\n  epochs: 3\n  batch_size: 8\n  epochs: 5\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: invalid YAML: .*duplicate key 'epochs' \(line 5; first "
                                          r"written on line 3\)"):
        modelkit.load_run_config(duplicated)


def test_dev_split_without_positives_is_a_logged_warning(synthetic_splits, tmp_path, caplog):
    clean_dev = _jsonl(tmp_path / "dev.jsonl", [{"id": i, "text": "nice weather today", "labels": []} for i in range(20)])
    recipe = ngram_recipe({**synthetic_splits, "dev": clean_dev}, tmp_path / "run", epochs=2)
    checkpoint = modelkit.train(recipe)
    log = [json.loads(line) for line in (checkpoint / "train_log.jsonl").read_text().splitlines()]
    warnings = [r["message"] for r in log if r["event"] == "warning"]
    assert any("no positive labels at all: selecting epochs on the dev loss" in w for w in warnings), warnings
    assert [r["select_metric"] for r in log if r["event"] == "start"] == ["loss"]
    assert "no positive labels at all" in caplog.text


def test_csv_cells_stay_as_written_and_bad_utf8_is_named(ngram_checkpoint, tmp_path, capsys):
    table = tmp_path / "in.csv"
    table.write_text("id,text\n007,NA\n1e3,666\n0x1,\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    assert main(["predict", str(ngram_checkpoint), "--input", str(table), "--output", str(output)]) == 0
    rows = list(modelkit.read_predictions(output))
    assert [r["id"] for r in rows] == ["007", "1e3", "0x1"] and all("scores" in r for r in rows)
    records = read_records(table, DataConfig(), None, require_labels=False)
    assert records.inputs == ["NA", "666", ""]

    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"id": 1, "text": "ok"}\n{"id": 2, "text": "bad \xff\xfe bytes"}\n')
    # Streamed, a line that is not UTF-8 is one error record, not the end of the run.
    assert main(["predict", str(ngram_checkpoint), "--input", str(broken), "--output", str(tmp_path / "out2")]) == 0
    rows = list(modelkit.read_predictions(tmp_path / "out2"))
    assert "scores" in rows[0] and rows[1] == {"id": None, "error": "row 1: not UTF-8 text (invalid start byte)"}


def test_batch_size_must_be_positive(ngram_checkpoint, synthetic_splits, tmp_path, capsys):
    clf = modelkit.load(ngram_checkpoint)
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"batch_size must be a whole number >= 1, got {bad}"):
            clf.predict(["x"], batch_size=bad)
    with pytest.raises(SystemExit):
        main(["predict", str(ngram_checkpoint), "--input", str(synthetic_splits["test"]), "--output",
              str(tmp_path / "o.jsonl"), "--batch-size", "-1"])
    assert "--batch-size: must be >= 1, got -1" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
    assert main(["predict", str(ngram_checkpoint), "--input", str(synthetic_splits["test"]), "--output",
                 str(tmp_path / "o.jsonl"), "--device", "gpu"]) == 2
    assert "device 'gpu': not a device" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="train.batch_size must be >= 1"):
        modelkit.load_run_config(ngram_recipe(synthetic_splits, tmp_path / "run", batch_size=0))
