"""Synthetic videos (modelkit.video.synthetic): a moving background with a planted signal, visible
exactly when the manifest says."""

from __future__ import annotations

import colorsys
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelkit.video.synthetic import load_background_clip, make_synthetic_video, write_synthetic_video_splits, write_text_overlay_splits
from modelkit.image.synthetic import motif_colour

av = pytest.importorskip("av")

CLIPS = ("bigbuckbunny.mp4", "vtest.avi")
# A pixel "changed" when a channel moved by more than H.264 noise at CRF 20 (a few levels) ever does.
CHANGED = 40


@pytest.fixture(scope="module")
def clips(shared_data) -> list[Path]:
    """The real clips in ../shared/data/video; skipped or failed like shared_data when missing."""
    paths = [shared_data / "video" / name for name in CLIPS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        if os.environ.get("MODELKIT_REQUIRE_SHARED") == "1":
            pytest.fail(f"missing {missing} and MODELKIT_REQUIRE_SHARED=1")
        pytest.skip(f"missing {missing}")
    return paths


def _decode(path: Path) -> tuple[np.ndarray, list[float], str]:
    """Frames (n, height, width, 3), their times in seconds and the codec/pixel format."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(frame.to_ndarray(format="rgb24"), float(frame.time)) for frame in container.decode(stream)]
        codec = f"{stream.codec_context.name}/{stream.codec_context.pix_fmt}"
    return np.stack([f for f, _ in frames]), [t for _, t in frames], codec


def _changed(frames: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per frame, the pixels that differ from the reference by more than compression noise."""
    return np.abs(frames.astype(np.int16) - reference.astype(np.int16)).max(axis=-1) > CHANGED


def _shown(row: dict, fps: int, frames: int) -> np.ndarray:
    """Which frames the manifest says carry the signal."""
    times = np.arange(frames) / fps
    shown = np.zeros(frames, dtype=bool)
    for segment in row["segments"]:
        shown |= (segment["start_s"] <= times) & (times < segment["end_s"])
    return shown


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_videos_are_deterministic_and_well_formed(tmp_path):
    kwargs = {"duration_s": 3.0, "fps": 10, "signal": "motif", "category": "gore", "start_s": 1.31, "end_s": 2.05}
    rows = [make_synthetic_video(tmp_path / f"{name}.mp4", seed=seed, **kwargs)
            for name, seed in (("a", 7), ("b", 7), ("c", 8))]
    # Given times move onto frames: the first one at or after 1.31 s and the first one at or after 2.05 s.
    segment = {"category": "gore", "start_s": 1.4, "end_s": 2.1}
    assert rows[0] == {"video": str(tmp_path / "a.mp4"), "labels": ["gore"], "segments": [segment]}
    assert rows[1]["segments"] == rows[0]["segments"] and rows[2]["segments"] == rows[0]["segments"]
    (a, times, codec), (b, _, _), (c, _, _) = (_decode(tmp_path / f"{name}.mp4") for name in "abc")
    assert codec == "h264/yuv420p" and a.shape == (30, 120, 160, 3)
    assert times == pytest.approx([i / 10 for i in range(30)])
    assert np.array_equal(a, b) and (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    assert not np.array_equal(a, c)
    # The procedural background moves: consecutive frames differ.
    assert all(np.abs(a[i + 1].astype(int) - a[i]).mean() > 1 for i in range(len(a) - 1))


@pytest.mark.parametrize("background", ["procedural", "clip"])
def test_the_motif_is_exactly_where_the_manifest_says(tmp_path, background, request):
    if background == "clip":
        background = load_background_clip(request.getfixturevalue("clips")[0], (160, 120), 10)
    kwargs = {"duration_s": 5.0, "fps": 10, "size": (160, 120), "background": background, "seed": 3}
    row = make_synthetic_video(tmp_path / "signal.mp4", signal="motif", category="pornography", start_s=1.7,
                               end_s=3.2, **kwargs)
    make_synthetic_video(tmp_path / "plain.mp4", **kwargs)
    (frames, _, _), (plain, _, _) = _decode(tmp_path / "signal.mp4"), _decode(tmp_path / "plain.mp4")
    changed = _changed(frames, plain).mean(axis=(1, 2))
    shown = _shown(row, 10, len(frames))
    assert shown.sum() == 15 and row["segments"][0]["start_s"] == 1.7
    # The motif covers a few percent of the frame; elsewhere only compression noise differs.
    assert changed[shown].min() > 0.01 and changed[~shown].max() < 0.001
    # What changed has the category's hue (pornography's motif is red; its colour varies a little).
    middle = int(np.flatnonzero(shown)[shown.sum() // 2])
    mask = _changed(frames[middle], plain[middle])
    hues = np.asarray(Image.fromarray(frames[middle]).convert("HSV"))[..., 0][mask] / 256
    expected = colorsys.rgb_to_hsv(*(c / 255 for c in motif_colour("pornography", np.random.default_rng(0))))[0]
    distance = np.abs((hues - expected + 0.5) % 1 - 0.5)
    assert np.median(distance) < 0.08


def test_background_clips_are_resampled_cropped_and_looped(tmp_path, clips):
    bunny = load_background_clip(clips[0], (160, 120), 10)
    # 132 frames at 25 fps are 5.28 s: 53 frames at 10 fps, cropped from 16:9 to 4:3.
    assert bunny.shape == (53, 120, 160, 3) and bunny.dtype == np.uint8
    window = load_background_clip(clips[1], (96, 64), 10, max_frames=20, rng=np.random.default_rng(1))
    assert window.shape == (20, 64, 96, 3)
    # A 12 s video over the 5.3 s clip plays it forwards and backwards: every frame is a clip frame.
    make_synthetic_video(tmp_path / "long.mp4", duration_s=12.0, size=(160, 120), background=bunny, seed=1)
    frames, _, _ = _decode(tmp_path / "long.mp4")
    assert len(frames) == 120
    period = 2 * (len(bunny) - 1)
    bounce = [k if k < len(bunny) else period - k for k in range(period)]
    small, clip = frames[:, ::4, ::4].astype(np.int16), bunny[:, ::4, ::4].astype(np.int16)
    errors = [np.abs(small - clip[[bounce[(offset + i) % period] for i in range(120)]]).mean()
              for offset in range(period)]
    # One starting place matches up to compression noise (grass texture: a few levels); the others do not.
    assert min(errors) < 6 and min(errors) < 0.3 * np.median(errors)


def test_synthetic_video_splits(tmp_path):
    paths = write_synthetic_video_splits(tmp_path, categories=["gore", "abuse"], train=6, dev=2, test=2,
                                         duration_s=(2.0, 3.0), min_signal_s=0.5, max_signal_s=1.5, seed=1)
    splits = {split: _rows(path) for split, path in paths.items()}
    assert [len(splits[s]) for s in ("train", "dev", "test")] == [6, 2, 2]
    rows = [row for split in splits.values() for row in split]
    assert len({row["id"] for row in rows}) == 10
    assert [sum(not row["labels"] for row in split) for split in splits.values()] == [2, 1, 1]  # 40 % clean
    starts = []
    for row in rows:
        assert set(row) == {"id", "video", "labels", "segments"} and row["video"] == f"videos/{row['id']}.mp4"
        assert (tmp_path / row["video"]).is_file()
        assert [s["category"] for s in row["segments"]] == row["labels"] and set(row["labels"]) <= {"gore", "abuse"}
        for segment in row["segments"]:
            assert 0.5 <= segment["end_s"] - segment["start_s"] <= 1.5 and segment["end_s"] <= 3.0
            starts.append(segment["start_s"])
    assert len(set(starts)) > 2  # signals start at different times
    again = write_synthetic_video_splits(tmp_path / "again", categories=["gore", "abuse"], train=6, dev=2, test=2,
                                         duration_s=(2.0, 3.0), min_signal_s=0.5, max_signal_s=1.5, seed=1)
    assert all(_rows(again[s]) == splits[s] for s in splits)
    first = rows[0]["video"]
    assert (tmp_path / first).read_bytes() == (tmp_path / "again" / first).read_bytes()
    frames, _, _ = _decode(tmp_path / first)
    assert 20 <= len(frames) <= 30 and frames.shape[1:] == (120, 160, 3)


def test_text_overlay_splits_with_real_backgrounds(tmp_path, font, clips):
    paths = write_text_overlay_splits(
        tmp_path, positives=[("加我微信领取免费福利", "illicit_ads")], negatives=["今天天气不错"], train=2, dev=1,
        test=1, clean_fraction=0.5, duration_s=(2.0, 2.0), min_signal_s=1.0, max_signal_s=1.0, size=(240, 136),
        backgrounds=clips, font_path=font)
    splits = {split: _rows(path) for split, path in paths.items()}
    assert sorted(len(row["segments"]) for row in splits["train"]) == [0, 1]  # one of two clean
    rows = [row for split in splits.values() for row in split]
    for row in rows:
        frames, _, _ = _decode(tmp_path / row["video"])
        assert frames.shape == (20, 136, 240, 3)
        assert row["labels"] == [s["category"] for s in row["segments"]]


@pytest.mark.parametrize("background", ["procedural", "clip"])
def test_overlaid_text_is_readable_by_ocr(tmp_path, font, background, request, monkeypatch):
    pytest.importorskip("rapidocr_onnxruntime")
    from modelkit.image.ocr import OcrConfig, TextReader

    monkeypatch.setenv("MODELKIT_OCR_CACHE", "off")
    text = "你这个傻逼，滚你妈的，今天天气不错"
    if background == "clip":
        background = load_background_clip(request.getfixturevalue("clips")[1], (480, 270), 10, max_frames=40,
                                          rng=np.random.default_rng(0))
    row = make_synthetic_video(tmp_path / "caption.mp4", duration_s=4.0, size=(480, 270), signal="text",
                               category="abuse", text=text, start_s=1.5, end_s=3.0, background=background, seed=5,
                               font_path=font)
    frames, _, _ = _decode(tmp_path / "caption.mp4")
    reader = TextReader(OcrConfig())
    wanted = set(text) - {"，"}

    def read(i: int) -> set[str]:
        return set("".join(line.text for line in reader.read(str(i), lambda: Image.fromarray(frames[i]))))

    assert row["segments"] == [{"category": "abuse", "start_s": 1.5, "end_s": 3.0}]
    assert len(wanted & read(15)) >= 0.8 * len(wanted) and len(wanted & read(29)) >= 0.8 * len(wanted)
    assert not wanted & read(14) and not wanted & read(30)
