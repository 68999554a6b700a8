"""A kill soak: ``modelkit predict`` on 20,000 rows, SIGKILLed at random moments and rerun each time,
writes every row exactly once with the scores of an uninterrupted run.

``make test`` kills it 5 times; ``make soak`` (``MODELKIT_SOAK=1``, also run by CI) 30 times, for
text and for pictures with broken files among them."""

from __future__ import annotations

import os

from modelkit.cli import main

from conftest import train_tiny_image_model
from test_engine import IMAGE_CATEGORIES, _by_id, _image_rows, _kill_until_done, _texts, _write_jsonl

KILLS = 30 if os.environ.get("MODELKIT_SOAK") == "1" else 5


def _soak(argv: list[str], output, reference, expected_ids: list[str]) -> None:
    made = _kill_until_done([*argv, "--output", str(output)], output, kills=KILLS)
    assert made >= KILLS, f"the run finished after {made} kills; give it more rows"
    assert not list(output.glob(".part-*"))  # killed mid-shard, a run leaves at most a temporary file
    got, want = _by_id(output), _by_id(reference)
    assert list(got) == expected_ids
    assert got == want


def test_text_predict_killed_at_random_moments(ngram_checkpoint, tmp_path):
    rows = _texts(20_000, seed=5)
    source = _write_jsonl(tmp_path / "posts.jsonl", rows)
    argv = ["predict", str(ngram_checkpoint), "--input", str(source), "--shard-size", "400", "--format", "jsonl"]
    assert main([*argv, "--output", str(tmp_path / "reference")]) == 0
    _soak(argv, tmp_path / "killed", tmp_path / "reference", [row["id"] for row in rows])


def test_picture_predict_killed_at_random_moments(tmp_path):
    checkpoint = train_tiny_image_model(tmp_path / "train", categories=IMAGE_CATEGORIES)
    rows = _image_rows(tmp_path / "pictures", 3000 if KILLS > 5 else 800, corrupt_every=25)
    source = _write_jsonl(tmp_path / "pictures" / "manifest.jsonl", rows)
    argv = ["predict", str(checkpoint), "--input", str(source), "--shard-size", "50"]
    assert main([*argv, "--output", str(tmp_path / "reference")]) == 0
    _soak(argv, tmp_path / "killed", tmp_path / "reference", [row["id"] for row in rows])
