"""Hostile pictures and a hostile OCR cache (item 2 of the hardening issue).

* The cache only believes entries this user wrote for this very picture, engine and settings, in a
  folder nobody else can write to: a planted entry never changes what a picture says.
* Text turned a quarter or half turn, and text at the bottom of a long screenshot, is read.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import stat
from hashlib import sha256
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("rapidocr_onnxruntime")

SENTENCES = ["在线赌场注册送彩金", "加我微信领取免费福利", "你这个傻逼滚出去", "兼职刷单日赚三百元"]
PLANTED = "今天天气不错"


class CountingEngine:
    """The real OCR engine, counting its calls."""

    def __init__(self, engine) -> None:
        self.engine, self.calls = engine, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.engine(*args, **kwargs)


@pytest.fixture(scope="module")
def engine():
    from modelkit.image.ocr import OcrConfig, TextReader

    return TextReader(OcrConfig())._get_engine()  # created once: about a second


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    from modelkit.image import ocr

    folder = tmp_path / "ocr-cache"
    monkeypatch.setenv("MODELKIT_OCR_CACHE", str(folder))
    # A folder is warned about once per process, and pytest may give the next test the same path.
    monkeypatch.setattr(ocr, "_warned", set())
    return folder


@pytest.fixture()
def no_cache(monkeypatch) -> None:
    monkeypatch.setenv("MODELKIT_OCR_CACHE", "off")


def processor(engine):
    """A fresh ``image_ocr`` processor (nothing remembered in memory) whose engine counts its calls."""
    from modelkit.image.ocr_text import OcrProcessor, OcrProcessorConfig

    fresh = OcrProcessor(OcrProcessorConfig())
    fresh.reader._engine = CountingEngine(engine)
    return fresh


def save(image: Image.Image, path: Path) -> str:
    image.save(path)
    return str(path)


def rendered(font, text: str, seed: int = 0) -> Image.Image:
    from modelkit.image.rendered import render_text

    return render_text(text, np.random.default_rng([11, seed]), font_path=font)


def characters_read(read: str, wanted: str) -> float:
    """The share of the wanted characters read, in order (spaces aside)."""
    blocks = difflib.SequenceMatcher(None, read.replace(" ", ""), wanted).get_matching_blocks()
    return sum(block.size for block in blocks) / len(wanted)


def entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.json"))


# -- the cache -----------------------------------------------------------------------------------
@pytest.fixture()
def picture(font, tmp_path) -> str:
    return save(rendered(font, SENTENCES[0]), tmp_path / "advert.png")


def _old_format(entry: dict, other_digest: str) -> object:
    return [{"text": PLANTED, "box": [[0, 0], [90, 0], [90, 20], [0, 20]], "score": 0.99}]


def _another_picture(entry: dict, other_digest: str) -> object:
    return {**entry, "digest": other_digest, "lines": [{**entry["lines"][0], "text": PLANTED}]}


def _another_engine(entry: dict, other_digest: str) -> object:
    return {**entry, "engine": "rapidocr-onnxruntime 0.0.1", "lines": [{**entry["lines"][0], "text": PLANTED}]}


def _other_settings(entry: dict, other_digest: str) -> object:
    settings = {**entry["settings"], "reader": entry["settings"]["reader"] - 1}
    return {**entry, "settings": settings, "lines": [{**entry["lines"][0], "text": PLANTED}]}


@pytest.mark.parametrize("plant", [_old_format, _another_picture, _another_engine, _other_settings])
def test_planted_entries_do_not_change_what_a_picture_says(engine, cache, picture, tmp_path, font, plant):
    truth, lines = processor(engine).read_text(picture)
    assert characters_read(truth, SENTENCES[0]) >= 0.8, truth
    [path] = entries(cache)
    other = Path(save(rendered(font, PLANTED), tmp_path / "other.png")).read_bytes()
    path.write_text(json.dumps(plant(json.loads(path.read_text()), sha256(other).hexdigest()), ensure_ascii=False))

    reading = processor(engine)
    assert reading.read_text(picture) == (truth, lines)
    assert reading.reader._engine.calls >= 1  # read again ...
    assert processor(engine).reader.cached(sha256(Path(picture).read_bytes()).hexdigest()) == lines  # ... and mended


@pytest.mark.parametrize("damage", [b"", b"{", b"\x00\xff garbage", b'{"format": 2}', b"[]"])
def test_damaged_entries_are_read_again(engine, cache, picture, damage):
    truth, _ = processor(engine).read_text(picture)
    [path] = entries(cache)
    path.write_bytes(damage)
    assert processor(engine).read_text(picture)[0] == truth


def test_entries_are_private_written_whole_and_reused(engine, cache, picture):
    first = processor(engine)
    truth, lines = first.read_text(picture)
    assert first.reader._engine.calls >= 1 and characters_read(truth, SENTENCES[0]) >= 0.8
    [path] = entries(cache)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert {stat.S_IMODE(folder.stat().st_mode) for folder in (cache, path.parent)} == {0o700}
    assert [p.name for p in cache.rglob("*") if p.is_file()] == [path.name]  # no temporary file left

    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["digest"] == first.reader.key(Path(picture).read_bytes())
    assert stored["engine"].startswith("rapidocr-onnxruntime ") and stored["settings"]["min_score"] == 0.5

    again = processor(engine)
    assert again.read_text(picture) == (truth, lines) and again.reader._engine.calls == 0


def test_off_reads_every_time(engine, no_cache, picture):
    reading = processor(engine)
    reading.read_text(picture)
    reading.read_text(picture)
    assert reading.reader._engine.calls >= 2


def _group_writable(folder: Path) -> None:
    folder.chmod(0o770)


def _world_writable(folder: Path) -> None:
    folder.chmod(0o777)


def _symlink(folder: Path) -> None:
    real = folder.with_name("real")
    folder.rename(real)
    folder.symlink_to(real, target_is_directory=True)


def _someone_elses(folder: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a folder away")
    os.chown(folder, 65534, 65534)


@pytest.mark.parametrize("expose", [_group_writable, _world_writable, _symlink, _someone_elses])
def test_a_folder_others_could_plant_entries_in_is_not_used(engine, cache, picture, font, caplog, expose):
    truth, _ = processor(engine).read_text(picture)
    # A perfect forgery: right key, digest, engine and settings. Only the folder betrays it.
    [path] = entries(cache)
    entry = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**entry, "lines": [{**entry["lines"][0], "text": PLANTED}]}, ensure_ascii=False))
    expose(cache)
    unread = save(rendered(font, SENTENCES[1]), Path(picture).with_name("unread.png"))

    reading = processor(engine)
    with caplog.at_level(logging.WARNING, logger="modelkit.image.ocr"):
        assert reading.read_text(picture)[0] == truth
        reading.read_text(unread)
    assert reading.reader._engine.calls >= 2
    assert len(entries(cache)) == 1  # the second picture was not cached there
    warnings = [record.getMessage() for record in caplog.records if "OCR cache" in record.getMessage()]
    assert len(warnings) == 1 and str(cache) in warnings[0], warnings


# -- turned text and long screenshots ------------------------------------------------------------
@pytest.mark.parametrize("turn", [90, 180, 270])
def test_turned_text_is_read(engine, no_cache, font, tmp_path, turn):
    """``turn`` degrees counter-clockwise (PIL): the text then stands ``360 - turn`` clockwise."""
    reading = processor(engine)
    for index, sentence in enumerate(SENTENCES[:2]):
        image = rendered(font, sentence, seed=index).rotate(turn, expand=True)
        text, lines = reading.read_text(save(image, tmp_path / f"{index}.png"))
        assert characters_read(text, sentence) >= 0.8, (turn, text)
        assert {line.angle for line in lines} == {360 - turn}
        for x, y in (corner for line in lines for corner in line.box):
            assert 0 <= x <= image.width and 0 <= y <= image.height


def test_turned_text_angle_reaches_the_evidence(engine, no_cache, font, tmp_path):
    from modelkit.image.ocr_text import OcrItem

    reading = processor(engine)
    text, lines = reading.read_text(save(rendered(font, SENTENCES[1]).rotate(180, expand=True), tmp_path / "x.png"))
    evidence = reading.evidence(OcrItem(None, text, lines))
    assert [line["angle"] for line in evidence["ocr_lines"]] == [180]


def _screenshot(font, size: tuple[int, int], font_size: int, lines: dict[tuple[int, int], str]) -> Image.Image:
    """A white picture with black sentences ``{(left, top): text}``."""
    from modelkit.image.rendered import _font

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for corner, text in lines.items():
        draw.text(corner, text, fill="black", font=_font(Path(font), font_size))
    return image


@pytest.mark.parametrize("height,font_size", [(5000, 16), (10000, 28)])
def test_sentence_at_the_bottom_of_a_long_screenshot_is_read(engine, no_cache, font, tmp_path, height, font_size):
    sentence = "在线赌场注册送彩金，详情加微信"
    image = _screenshot(font, (1080, height), font_size, {(60, height - 120): sentence})
    text, lines = processor(engine).read_text(save(image, tmp_path / "long.png"))
    assert characters_read(text, sentence) >= 0.9, text
    [line] = lines
    assert height - 130 <= min(y for _, y in line.box) <= height - 100  # in the picture's coordinates


def test_a_line_on_a_tile_boundary_is_read_once(engine, no_cache, font, tmp_path):
    from modelkit.image.ocr import tile_spans

    (_, first_end), (second_start, _), *_ = tile_spans(5000, 1080)
    # Cut by the first tile's end (whole in the second), near the second's start (whole in the first).
    wanted = {second_start + 5: "兼职刷单日赚三百元", first_end - 20: "加我微信领取免费福利", 4880: "扫码进群领红包"}
    image = _screenshot(font, (1080, 5000), 24, {(60, top): text for top, text in wanted.items()})
    _, lines = processor(engine).read_text(save(image, tmp_path / "long.png"))
    assert [line.text for line in lines] == list(wanted.values())
    assert all(abs(min(y for _, y in line.box) - top) <= 15 for line, top in zip(lines, wanted))


def test_a_line_longer_than_the_tile_overlap_is_read_whole(engine, no_cache, font, tmp_path):
    from modelkit.image.ocr import tile_spans

    (_, first_end), (second_start, _), *_ = tile_spans(5000, 1080)
    sentence = "在线赌场注册送彩金，详情加微信百家乐稳赢带你上岸" * 3
    left = second_start - 100
    assert left + 16 * len(sentence) > first_end  # no tile holds it whole
    image = _screenshot(font, (5000, 1080), 16, {(left, 200): sentence})
    text, lines = processor(engine).read_text(save(image, tmp_path / "wide.png"))
    assert characters_read(text, sentence) >= 0.9 and len(lines) == 1, text


def test_tiles_cover_long_pictures_with_overlap_and_leave_others_whole():
    from modelkit.image.ocr import TILE_OVERLAP, tile_spans

    assert tile_spans(2400, 1080) == [(0, 2400)]  # a phone screenshot
    assert tile_spans(1500, 200) == [(0, 1500)]  # the engine does not shrink it
    for length, breadth in ((5000, 1080), (10000, 1080), (9000, 300), (2801, 1080)):
        spans = tile_spans(length, breadth)
        assert spans[0][0] == 0 and spans[-1][1] == length and len(spans) > 1
        for (_, end), (start, next_end) in zip(spans, spans[1:]):
            assert end - start >= TILE_OVERLAP * (next_end - start)
        assert all(end - start <= max(2 * breadth, 2000) for start, end in spans)
