"""The batch engine: streamed inputs, resumable sharded output, exactly once under SIGKILL."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import modelkit
from modelkit.cli import main
from modelkit.image.synthetic import write_synthetic_image_splits
from modelkit.batch.shards import OutputFolderError


IMAGE_CATEGORIES = ["gore", "violence"]


@pytest.fixture(scope="module")
def tiny_image_checkpoint(tmp_path_factory) -> Path:
    splits = write_synthetic_image_splits(tmp_path_factory.mktemp("images"), seed=0, rows_per_category=10,
                                          clean_rows=20, size=16, categories=IMAGE_CATEGORIES)
    recipe = {
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "inputs": {"image": "image"}},
        "categories": IMAGE_CATEGORIES,
        "model": {"name": "image", "arch": "small_cnn"},
        "processor": {"resize": 16, "crop": 16},
        "train": {"epochs": 1, "batch_size": 16},
        "output_dir": str(tmp_path_factory.mktemp("runs") / "image"),
    }
    return modelkit.train(recipe)


def _texts(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = ["你这个傻逼", "今天天气不错", "去死吧", "谢谢分享", "垃圾东西", "好好学习", "hello", "idiot", "nice day"]
    return [{"id": f"t{i}", "text": " ".join(rng.choices(words, k=rng.randint(1, 12)))} for i in range(count)]


def _write_jsonl(path: Path, rows: list) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def _image_rows(folder: Path, count: int, corrupt_every: int = 0) -> list[dict]:
    """PNG files under ``folder``; every ``corrupt_every``-th one is broken (truncated or not a picture)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for index in range(count):
        path = folder / f"{index}.png"
        if corrupt_every and index % corrupt_every == 3:
            path.write_bytes(b"not a picture" if index % 2 else _png(rng)[:40])
        else:
            path.write_bytes(_png(rng))
        rows.append({"id": f"i{index}", "image": path.name})
    return rows


def _png(rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _by_id(output: Path) -> dict:
    rows = list(modelkit.read_predictions(output))
    counts = Counter(row["id"] for row in rows)
    assert max(counts.values()) == 1, [i for i, n in counts.items() if n > 1][:5]
    return {row["id"]: row for row in rows}


def _predict(argv: list[str]) -> None:
    os._exit(main(argv))


def _parts(output: Path) -> int:
    return len(list(output.glob("part-*"))) if output.is_dir() else 0


def _kill_until_done(argv: list[str], output: Path, kills: int) -> int:
    """Run ``modelkit predict`` in a child process, SIGKILL it, rerun the same command; at least
    ``kills`` times, then once to the end. Returns the kills made.

    A third of the kills land at a random moment of start-up or of the first shard; the others a
    random moment after the run has written a new part, mid-way through a later one. Killing only
    after progress keeps the test independent of the machine's speed.

    Children fork from a server that imported modelkit once (torch's thread pools do not survive
    a fork of a process that used them), so a run starts in milliseconds, not seconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["modelkit.cli"])
    rng = random.Random(1)
    made = 0
    while True:
        before = _parts(output)
        process = context.Process(target=_predict, args=(argv,))
        process.start()
        if made < kills:
            if rng.random() < 1 / 3:
                time.sleep(rng.uniform(0.0, 0.5))
            else:
                while process.is_alive() and _parts(output) == before:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.06))
        if process.is_alive() and made < kills:
            os.kill(process.pid, signal.SIGKILL)
            process.join()
            made += 1
            continue
        process.join()
        assert process.exitcode == 0, process.exitcode
        if json.loads((output / "manifest.json").read_text()).get("complete"):
            return made


@pytest.mark.slow
def test_text_run_killed_20_times_writes_every_row_once_with_uninterrupted_scores(ngram_checkpoint, tmp_path):
    rows = _texts(60_000)
    source = _write_jsonl(tmp_path / "posts.jsonl", rows)
    reference = tmp_path / "reference"
    modelkit.predict_files(modelkit.load(ngram_checkpoint), source, reference, shard_size=1000,
                           progress=False)

    killed = tmp_path / "killed"
    argv = ["predict", str(ngram_checkpoint), "--input", str(source), "--output", str(killed), "--shard-size", "1000"]
    made = _kill_until_done(argv, killed, kills=20)
    assert made >= 20, f"the run finished after {made} kills; give it more rows"
    # Killed mid-shard, a run leaves a temporary file at most, never a part of a shard.
    assert not list(killed.glob(".part-*"))
    got, want = _by_id(killed), _by_id(reference)
    assert list(got) == [row["id"] for row in rows]
    assert got == want


@pytest.mark.slow
def test_image_run_killed_20_times_writes_every_row_once_with_uninterrupted_scores(tiny_image_checkpoint, tmp_path):
    rows = _image_rows(tmp_path / "pictures", 5000, corrupt_every=20)
    source = _write_jsonl(tmp_path / "pictures" / "manifest.jsonl", rows)
    reference = tmp_path / "reference"
    argv = ["predict", str(tiny_image_checkpoint), "--input", str(source), "--shard-size", "100"]
    assert main([*argv, "--output", str(reference)]) == 0
    killed = tmp_path / "killed"
    made = _kill_until_done([*argv, "--output", str(killed)], killed, kills=20)
    assert made >= 20, f"the run finished after {made} kills; give it more rows"
    got, want = _by_id(killed), _by_id(reference)
    assert list(got) == [row["id"] for row in rows]
    assert got == want


def test_corrupt_and_non_text_rows_become_error_records_for_exactly_those_rows(ngram_checkpoint,
                                                                             tiny_image_checkpoint, tmp_path):
    # Text: 5 % of rows empty (a blank line, {}, null) or not text (numbers, lists, objects).
    rows: list = _texts(400)
    bad = set(range(7, 400, 20))
    kinds = ["", {"id": "?"}, {"text": None}, {"text": 12}, {"text": ["a"]}, {"text": {"a": 1}}, "{broken"]
    for number, index in enumerate(sorted(bad)):
        kind = kinds[number % len(kinds)]
        rows[index] = kind if isinstance(kind, str) else {"id": f"t{index}", **kind} if "id" not in kind else kind
    source = _write_jsonl(tmp_path / "texts.jsonl", rows)
    output = tmp_path / "text-out"
    assert main(["predict", str(ngram_checkpoint), "--input", str(source), "--output", str(output),
                 "--shard-size", "128"]) == 0
    written = list(modelkit.read_predictions(output))
    assert len(written) == 400
    assert {i for i, row in enumerate(written) if "error" in row} == bad
    assert all("scores" in row for i, row in enumerate(written) if i not in bad)

    # Pictures: 5 % truncated or not pictures at all, plus a path to a missing file.
    pictures = _image_rows(tmp_path / "pictures", 200, corrupt_every=20)
    pictures.append({"id": "missing", "image": "nowhere.png"})
    manifest = _write_jsonl(tmp_path / "pictures" / "manifest.jsonl", pictures)
    output = tmp_path / "image-out"
    assert main(["predict", str(tiny_image_checkpoint), "--input", str(manifest), "--output", str(output),
                 "--num-workers", "2", "--format", "jsonl"]) == 0
    written = list(modelkit.read_predictions(output))
    failed = {row["id"] for row in written if "error" in row}
    assert failed == {f"i{i}" for i in range(3, 200, 20)} | {"missing"}
    assert len(written) == 201


def test_output_that_is_the_input_or_another_runs_folder_is_refused_before_running(ngram_checkpoint, tmp_path,
                                                                                  capsys):
    source = _write_jsonl(tmp_path / "in.jsonl", _texts(50))
    before = source.read_bytes()
    assert main(["predict", str(ngram_checkpoint), "--input", str(source), "--output", str(source)]) == 2
    assert "is the input" in capsys.readouterr().err and source.read_bytes() == before
    assert main(["predict", str(ngram_checkpoint), "--input", str(source), "--output", str(tmp_path)]) == 2
    assert "lies inside it" in capsys.readouterr().err
    assert main(["predict", str(ngram_checkpoint), "--input", str(source), "--output",
                 str(ngram_checkpoint / "out")]) == 2
    assert "overlaps the checkpoint" in capsys.readouterr().err

    output = tmp_path / "out"
    assert main(["predict", str(ngram_checkpoint), "--input", str(source), "--output", str(output)]) == 0
    other = _write_jsonl(tmp_path / "other.jsonl", _texts(50, seed=1))
    assert main(["predict", str(ngram_checkpoint), "--input", str(other), "--output", str(output)]) == 2
    assert "differs in: input_fingerprint" in capsys.readouterr().err
    assert main(["predict", str(ngram_checkpoint), "--input", str(other), "--output", str(output),
                 "--overwrite"]) == 0
    assert [row["id"] for row in modelkit.read_predictions(output)] == [f"t{i}" for i in range(50)]
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    assert main(["predict", str(ngram_checkpoint), "--input", str(source), "--output", str(stray)]) == 2
    assert "has other files" in capsys.readouterr().err
    assert main(["predict", str(ngram_checkpoint), "--input", str(source), "--output", str(tmp_path / "x"),
                 "--device", "tpu"]) == 2
    assert "device 'tpu'" in capsys.readouterr().err


def test_sources_stream_the_same_rows(ngram_checkpoint, tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _texts(300)
    clf = modelkit.load(ngram_checkpoint)
    want = np.array([list(p.scores.values()) for p in clf.predict([row["text"] for row in rows])])
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    with open(tmp_path / "in.csv", "w", encoding="utf-8") as handle:
        handle.write("id,text\n" + "".join(f"{row['id']},{row['text']}\n" for row in rows))
    sources = {"jsonl": _write_jsonl(tmp_path / "in.jsonl", rows), "parquet": tmp_path / "in.parquet",
               "csv": tmp_path / "in.csv", "dataset": datasets.Dataset.from_list(rows), "iterable": iter(rows),
               "strings": [row["text"] for row in rows]}
    for name, source in sources.items():
        summary = modelkit.predict_files(clf, source, tmp_path / f"out-{name}", shard_size=128, progress=False)
        assert summary.rows == 300 and summary.errors == 0 and summary.complete, name
        written = list(modelkit.read_predictions(tmp_path / f"out-{name}"))
        ids = [str(i) for i in range(300)] if name == "strings" else [row["id"] for row in rows]
        assert [row["id"] for row in written] == ids, name
        np.testing.assert_allclose([list(row["scores"].values()) for row in written], want, atol=1e-6, err_msg=name)
    with pytest.raises(OutputFolderError, match="iterable cannot be checked"):
        modelkit.predict_files(clf, iter(rows), tmp_path / "out-iterable", shard_size=128, progress=False)
    streamed = list(clf.predict_stream((row["text"] for row in rows), chunk_size=64))
    np.testing.assert_allclose([list(p.scores.values()) for p in streamed], want, atol=1e-6)


def test_folder_of_pictures_is_an_input(tiny_image_checkpoint, tmp_path):
    _image_rows(tmp_path / "pictures" / "sub", 30, corrupt_every=20)
    output = tmp_path / "out"
    summary = modelkit.predict_files(modelkit.load(tiny_image_checkpoint), tmp_path / "pictures", output,
                                     progress=False)
    assert summary.rows == 30 and summary.errors == 2
    written = list(modelkit.read_predictions(output))
    assert sorted(row["id"] for row in written) == sorted(f"sub/{i}.png" for i in range(30))


@pytest.mark.slow
def test_ray_engine_writes_what_the_local_engine_writes(ngram_checkpoint, tmp_path):
    ray = pytest.importorskip("ray")
    from modelkit.batch.ray import predict_files_with_ray

    rows = _texts(3000)
    rows[17] = {"id": "t17", "text": None}
    source = _write_jsonl(tmp_path / "posts.jsonl", rows)
    local = tmp_path / "local"
    modelkit.predict_files(modelkit.load(ngram_checkpoint), source, local, shard_size=500, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = predict_files_with_ray(ngram_checkpoint, source, tmp_path / "ray", shard_size=500, actors=2)
    finally:
        ray.shutdown()
    assert summary.complete and summary.rows == 3000 and summary.scored == 3000 and summary.errors == 1
    assert _by_id(tmp_path / "ray") == _by_id(local)
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == sorted(p.name for p in local.iterdir())


@pytest.mark.parametrize("kind", ["ngram", "transformer", "image"])
def test_exported_onnx_checkpoint_matches_pytorch(kind, request, tmp_path, capsys):
    checkpoint = request.getfixturevalue({"ngram": "ngram_checkpoint", "transformer": "bert_checkpoint",
                                          "image": "tiny_image_checkpoint"}[kind])
    exported = tmp_path / "onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--output", str(exported)]) == 0
    assert "largest logit difference" in capsys.readouterr().out
    original, onnx = modelkit.load(checkpoint, backend="torch"), modelkit.load(exported)
    assert onnx.model.registry_name == "exported_onnx" and onnx.thresholds == original.thresholds
    if kind == "image":
        inputs = _image_rows(tmp_path / "pictures", 40)
        inputs = [str(tmp_path / "pictures" / row["image"]) for row in inputs]
    else:  # lengths from one character to several windows, batched differently from the trace
        inputs = [row["text"] * (1 + i % 7) for i, row in enumerate(_texts(300))] + ["x", "长" * 900]
    for batch_size in (1, 7, 256):
        gap = np.abs(onnx.predict_logits(inputs, batch_size=batch_size)
                     - original.predict_logits(inputs, batch_size=batch_size)).max()
        assert gap <= 1e-4, (kind, batch_size, gap)
    # The engine runs the exported folder like any checkpoint.
    source = _write_jsonl(tmp_path / "in.jsonl", [{"id": i, ("image" if kind == "image" else "text"): x}
                                                   for i, x in enumerate(inputs)])
    assert main(["predict", str(exported), "--input", str(source), "--output", str(tmp_path / "out")]) == 0
    assert len(list(modelkit.read_predictions(tmp_path / "out"))) == len(inputs)


def test_export_refuses_what_it_cannot_export(ngram_checkpoint, tmp_path, capsys):
    assert main(["export", str(ngram_checkpoint), "--output", str(ngram_checkpoint)]) == 2
    assert "is the checkpoint itself" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["ngram", "image"])
def test_checkpoints_are_hub_repositories_with_model_cards(kind, request, tmp_path):
    from huggingface_hub import ModelCard

    checkpoint = request.getfixturevalue({"ngram": "ngram_checkpoint", "image": "tiny_image_checkpoint"}[kind])
    card = ModelCard.load(checkpoint / "README.md")
    assert card.data.library_name == "modelkit" and "content-moderation" in card.data.tags
    assert card.data.pipeline_tag == {"ngram": "text-classification", "image": "image-classification"}[kind]
    hub = tmp_path / "hub"
    where = modelkit.push_to_hub(checkpoint, "moderation/" + kind, local_dir=hub)
    assert Path(where) == hub / "moderation" / kind and not (Path(where) / "last").exists()
    pulled = modelkit.load_from_hub("moderation/" + kind, local_dir=hub)
    assert pulled.thresholds == modelkit.load(checkpoint).thresholds
    with pytest.raises(modelkit.ConfigError, match="expected 'owner/name'"):
        modelkit.push_to_hub(checkpoint, "../escape", local_dir=hub)


def test_processes_of_a_multi_gpu_run_split_the_shards(ngram_checkpoint, tmp_path, monkeypatch):
    source = _write_jsonl(tmp_path / "in.jsonl", _texts(1000))
    clf = modelkit.load(ngram_checkpoint)
    single = tmp_path / "single"
    modelkit.predict_files(clf, source, single, shard_size=100, progress=False)
    shared = tmp_path / "shared"
    monkeypatch.setenv("WORLD_SIZE", "3")
    written = []
    for rank in range(3):  # as accelerate launch would start them, one after another here
        monkeypatch.setenv("RANK", str(rank))
        summary = modelkit.predict_files(clf, source, shared, shard_size=100, progress=False)
        written.append(sorted(int(p.name[5:10]) for p in shared.glob("part-*")))
        assert summary.complete == (rank == 2)
    assert written[0] == [0, 3, 6, 9] and written[1] == sorted([0, 3, 6, 9, 1, 4, 7])
    assert _by_id(shared) == _by_id(single)
