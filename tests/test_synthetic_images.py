"""Synthetic images (modelkit.image.synthetic) and text rendered into pictures (modelkit.image.rendered)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression

from modelkit.image.rendered import render_rows, render_text, write_rendered_manifest
from modelkit.image.synthetic import make_synthetic_images, write_synthetic_image_splits
from modelkit.text.synthetic import CUES
from modelkit.image.synthetic import MOTIFS

CATEGORIES = ["gore", "abuse", "piracy"]


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((directory / "images").iterdir())}


def test_images_are_deterministic_for_a_seed(tmp_path):
    kwargs = {"rows_per_category": 5, "clean_rows": 5, "categories": CATEGORIES}
    runs = {"a": 0, "b": 0, "c": 1}
    rows = [make_synthetic_images(tmp_path / name, seed=seed, **kwargs) for name, seed in runs.items()]
    assert rows[0] == rows[1] and _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")


def test_image_rows_labels_and_files(tmp_path):
    rows = make_synthetic_images(tmp_path, rows_per_category=30, clean_rows=20, size=48)
    assert len(rows) == 30 * len(CUES) + 20 and len({r["id"] for r in rows}) == len(rows)
    assert sum(not r["labels"] for r in rows) == 20
    assert {r["labels"][0] for r in rows if r["labels"]} == set(CUES)
    multi = [r for r in rows if len(r["labels"]) == 2]
    assert 0.03 * len(rows) < len(multi) < 0.2 * len(rows) and all(len(set(r["labels"])) == 2 for r in multi)
    for row in rows[:20]:
        assert row["image"].startswith("images/") and row["image"].endswith(".png")
        with Image.open(tmp_path / row["image"]) as image:
            assert image.size == (48, 48) and image.mode == "RGB"
    assert len(MOTIFS) >= len(CUES) and len(MOTIFS) >= 16


def test_image_splits_and_errors(tmp_path):
    paths = write_synthetic_image_splits(tmp_path, rows_per_category=10, clean_rows=10, categories=CATEGORIES,
                                         image_format="jpg")
    splits = {k: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()] for k, p in paths.items()}
    assert [len(splits[k]) for k in ("train", "dev", "test")] == [28, 6, 6]
    assert all((tmp_path / row["image"]).is_file() for rows in splits.values() for row in rows)
    with pytest.raises(ValueError, match="available: pornography"):
        make_synthetic_images(tmp_path, categories=["gore", "spam"])


def test_categories_are_learnable_from_colour_histograms(tmp_path):
    rows = [r for r in make_synthetic_images(tmp_path, rows_per_category=40, clean_rows=40, size=32,
                                             categories=CATEGORIES) if len(r["labels"]) < 2]

    def features(row: dict) -> np.ndarray:
        with Image.open(tmp_path / row["image"]) as image:
            pixels = np.asarray(image.convert("HSV")).reshape(-1, 3)
        # Saturated pixels by hue: backgrounds and distractors are muted, motifs are not.
        return np.histogram(pixels[pixels[:, 1] > 150, 0], bins=16, range=(0, 256))[0] / len(pixels)

    x = np.stack([features(r) for r in rows])
    y = np.array([r["labels"][0] if r["labels"] else "clean" for r in rows])
    model = LogisticRegression(C=100, max_iter=2000).fit(x[::2], y[::2])
    assert model.score(x[1::2], y[1::2]) > 0.7  # chance is 0.25


def _transitions(image: Image.Image) -> int:
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    dark = grey < (np.percentile(grey, 2) + np.percentile(grey, 98)) / 2
    return int(np.count_nonzero(np.diff(dark, axis=1)))


def test_chinese_renders_as_glyphs(font):
    image = render_text("今天天气不错，评论区见", np.random.default_rng(0), font_path=font)
    assert image.mode == "RGB" and _transitions(image) > 100
    # Missing glyphs would all draw as the same empty box: different characters must look different.
    other = render_text("血腥斩首画面脑残废物的", np.random.default_rng(0), font_path=font)
    assert image.size == other.size and np.asarray(image).tobytes() != np.asarray(other).tobytes()


def test_rendering_wraps_and_is_deterministic(font):
    short = render_text("转发一下", np.random.default_rng(3), font_path=font, width=400)
    long = render_text("看了一部电影 watched a film tonight " * 20, np.random.default_rng(3), font_path=font, width=400)
    assert long.height > short.height + 100 and long.width < short.width + 100
    again = render_text("转发一下", np.random.default_rng(3), font_path=font, width=400)
    assert np.array_equal(np.asarray(short), np.asarray(again))
    clipped = render_text("看" * 1000, np.random.default_rng(3), font_path=font, width=400, max_chars=10)
    assert clipped.height < long.height
    empty = render_text("", np.random.default_rng(3), font_path=font)
    assert empty.width > 0 and empty.height > 0


def test_render_rows_keep_fields_and_drop_text(font, tmp_path):
    rows = [{"id": "a", "text": "你这个傻逼", "labels": ["abuse"]}, {"id": "b", "text": "nice weather", "labels": []}]
    out = render_rows(rows, tmp_path / "one", font_path=font)
    assert out == [{"id": "a", "labels": ["abuse"], "image": "images/0.jpg"},
                   {"id": "b", "labels": [], "image": "images/1.jpg"}]
    assert rows[0]["text"] == "你这个傻逼"  # the input rows are left alone
    with Image.open(tmp_path / "one" / "images/0.jpg") as image:
        assert image.format == "JPEG"
    render_rows(rows, tmp_path / "two", font_path=font)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    render_rows(rows, tmp_path / "three", font_path=font, seed=1)
    assert _files(tmp_path / "one") != _files(tmp_path / "three")


def test_rendered_manifest_skips_existing_images(font, tmp_path):
    source = tmp_path / "source.jsonl"
    rows = [{"id": f"r{i}", "text": f"第{i}条 row {i}", "labels": ["violence"] if i % 2 else []} for i in range(5)]
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "\n", encoding="utf-8")
    manifest = write_rendered_manifest(source, tmp_path / "out", limit=3, font_path=font)
    written = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert manifest == tmp_path / "out" / "manifest.jsonl" and [r["id"] for r in written] == ["r0", "r1", "r2"]
    assert all("text" not in r and (tmp_path / "out" / r["image"]).is_file() for r in written)

    (tmp_path / "out" / "images" / "0.jpg").write_bytes(b"kept")
    manifest.write_text("stale", encoding="utf-8")
    write_rendered_manifest(source, tmp_path / "out", font_path=font)
    assert (tmp_path / "out" / "images" / "0.jpg").read_bytes() == b"kept"
    assert len(manifest.read_text(encoding="utf-8").splitlines()) == 5
