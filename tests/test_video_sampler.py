"""The video frame sampler against real PyAV decoding: real clips from ../shared/data/video,
small generated clips with known timestamps (tests/video_files.py), and the bad files uploads bring."""

from __future__ import annotations

import inspect
import io
import itertools
import logging
import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import video_files as vf
from conftest import SHARED_DATA
from modelkit.config import ConfigError, from_dict
from modelkit.processing import InputError
from modelkit.video.sampler import (
    Frame, SamplerConfig, VideoError, VideoInfo, probe, rotate, sample_batches, sample_frames,
)

EVERY_FRAME = {"strategy": "every_n", "every_n": 1, "max_frames": None, "size": None}
SCENE_COLOURS = [(20, 20, 20), (230, 230, 230), (200, 30, 30)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Every generated clip, written once (about a second in all)."""
    folder = tmp_path_factory.mktemp("videos")
    return {
        "constant": vf.write_constant_fps(folder / "constant.mp4"),                   # 10 fps, 3 s, GOP 10
        "long": vf.write_constant_fps(folder / "long.mp4", seconds=12),               # 10 fps, 12 s, GOP 10
        "vfr": vf.write_vfr(folder / "vfr.mp4"),
        "rotated": vf.write_rotated(folder / "rotated.mp4", 90),
        "rotated_cw": vf.write_rotated(folder / "rotated_cw.mp4", -90),
        "scenes": vf.write_scenes(folder / "scenes.mp4", SCENE_COLOURS),
        "corrupt": vf.write_corrupt(folder / "corrupt.mp4"),
        "truncated": vf.write_truncated(folder / "truncated.mp4"),
        "ends_early": vf.write_ends_early(folder / "ends_early.mp4"),
        "audio_only": vf.write_audio_only(folder / "audio_only.mp4"),
        "no_frames": vf.write_no_frames(folder / "no_frames.avi"),
        "lying": vf.write_lying_duration(folder / "lying.mkv"),                       # 4 s, claims 100 h
        "raw": vf.write_raw_h264(folder / "raw.h264"),                                 # 30 frames, no pts
    }


def shared_video(name: str) -> Path:
    """A clip of ../shared/data/video; skipped where absent, a failure under MODELKIT_REQUIRE_SHARED=1."""
    path = SHARED_DATA / "video" / name
    if not path.is_file():
        message = f"shared video not found: {path} (set MODELKIT_SHARED_DATA)"
        if os.environ.get("MODELKIT_REQUIRE_SHARED") == "1":
            pytest.fail(message + " and MODELKIT_REQUIRE_SHARED=1")
        pytest.skip(message)
    return path


def sample(source, **fields) -> list[Frame]:
    return list(sample_frames(source, SamplerConfig(**fields)))


def decode_all(path: Path) -> list[av.VideoFrame]:
    """Every frame, decoded the plain way: the reference the sampler must agree with."""
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def first_at_or_after(times: list[float], step: float) -> list[int]:
    """Positions of the first frame at or after each k * step: what fps sampling must pick."""
    picked, target = [], 0.0
    for position, time_s in enumerate(times):
        if time_s >= target - 1e-9:
            picked.append(position)
            target = (int(time_s / step + 1e-6) + 1) * step
    return picked


# ------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------
def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"sampler\.fps must be > 0, got 0"):
        SamplerConfig(fps=0)
    with pytest.raises(ConfigError, match=r"sampler\.every_n must be >= 1, got 0"):
        from_dict(SamplerConfig, {"strategy": "every_n", "every_n": 0})
    with pytest.raises(ConfigError, match="strategy"):
        from_dict(SamplerConfig, {"strategy": "random"})
    assert from_dict(SamplerConfig, {"strategy": "scene", "max_frames": None, "size": 128}).size == 128
    assert issubclass(VideoError, InputError)


# ------------------------------------------------------------------------------------------
# Real clips: every frame, with PyAV's own timestamps
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "vtest.avi"])
def test_every_frame_of_a_real_clip_has_pyavs_timestamp(name):
    path = shared_video(name)
    frames = sample(path, **EVERY_FRAME)
    reference = decode_all(path)
    assert len(frames) == len(reference) == {"bigbuckbunny.mp4": 132, "vtest.avi": 795}[name]
    assert [f.time_s for f in frames] == [f.time for f in reference]
    assert [f.index for f in frames] == list(range(len(reference)))
    for position in (0, len(reference) // 2, len(reference) - 1):
        assert np.array_equal(np.asarray(frames[position].image), reference[position].to_ndarray(format="rgb24"))


def test_real_clip_sampled_at_one_fps_with_its_frame_rate():
    path = shared_video("bigbuckbunny.mp4")  # 25 fps, 5.28 s
    frames = sample(path, fps=1.0)
    assert [f.time_s for f in frames] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [f.index for f in frames] == [0, 25, 50, 75, 100, 125]
    assert all(f.image.size == (455, 256) for f in frames)


# ------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fps", [2.0, 3.0, 0.5])
def test_fps_takes_the_first_frame_at_or_after_each_target(clips, fps):
    frames = sample(clips["constant"], fps=fps, max_frames=None)  # 10 fps, 3 s
    expected = first_at_or_after([i / 10 for i in range(30)], 1 / fps)
    assert [f.index for f in frames] == expected
    assert [f.time_s for f in frames] == pytest.approx([i / 10 for i in expected])
    # The picture is that frame's (the clip writes the frame number into it).
    assert [vf.mark_of(np.asarray(f.image.resize(vf.SIZE))) for f in frames] == [i % 32 for i in expected]


@pytest.mark.parametrize("fps", [0.25, 1.0, 3.0])
def test_fast_paths_return_exactly_what_full_decoding_gives(clips, fps):
    """Skipped non-reference frames and seeks (GOP 10 on a 12 s clip) change no frame: same
    frames, same timestamps and indices, same pixels as decoding everything."""
    reference = decode_all(clips["long"])
    expected = first_at_or_after([f.time for f in reference], 1 / fps)
    frames = sample(clips["long"], fps=fps, max_frames=None, size=None)
    assert [f.index for f in frames] == expected
    assert [f.time_s for f in frames] == [reference[i].time for i in expected]
    for frame, position in zip(frames, expected):
        assert np.array_equal(np.asarray(frame.image), reference[position].to_ndarray(format="rgb24"))


def test_variable_frame_rate_gives_the_true_seconds(clips):
    seconds = [ms / 1000 for ms in vf.VFR_PTS_MS]
    assert [f.time_s for f in sample(clips["vfr"], **EVERY_FRAME)] == pytest.approx(seconds)
    for fps in (10.0, 1.0):
        frames = sample(clips["vfr"], fps=fps, max_frames=None)
        assert [f.time_s for f in frames] == pytest.approx([seconds[i] for i in first_at_or_after(seconds, 1 / fps)])
    assert [f.time_s for f in sample(clips["vfr"], fps=1.0)] == pytest.approx([0.0, 1.0, 2.5, 3.0])


def test_every_n_counts_decoded_frames(clips):
    frames = sample(clips["constant"], strategy="every_n", every_n=4, max_frames=None)
    assert [f.index for f in frames] == list(range(0, 30, 4))
    assert [f.time_s for f in frames] == pytest.approx([i / 10 for i in range(0, 30, 4)])


def test_keyframes_returns_the_key_frames_only(clips):
    reference = decode_all(clips["long"])
    with av.open(str(clips["long"])) as container:
        key_packets = {p.pts for p in container.demux(video=0) if p.is_keyframe and p.pts is not None}
    frames = sample(clips["long"], strategy="keyframes", max_frames=None)
    assert [f.index for f in frames] == [i for i, f in enumerate(reference) if f.key_frame]
    assert [f.index for f in frames] == list(range(0, 120, 10))  # GOP 10
    assert {round(f.time_s * 10) for f in frames} == {round(float(pts * reference[0].time_base) * 10)
                                                      for pts in key_packets}


def test_scene_takes_the_first_frame_and_each_cut(clips):
    frames = sample(clips["scenes"], strategy="scene", max_frames=None)  # 1 s per colour
    assert [f.time_s for f in frames] == pytest.approx([0.0, 1.0, 2.0])
    colours = [np.asarray(f.image)[-5:, -5:].reshape(-1, 3).mean(axis=0) for f in frames]
    for colour, expected in zip(colours, SCENE_COLOURS):
        assert np.abs(colour - expected).max() < 12
    assert len(sample(clips["scenes"], strategy="scene", scene_threshold=0.95, max_frames=None)) == 1


# ------------------------------------------------------------------------------------------
# max_frames: spread over the whole video, whatever the header says
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["fps", "every_n", "keyframes"])
def test_max_frames_spreads_over_the_whole_video(clips, strategy):
    frames = sample(clips["long"], strategy=strategy, fps=10.0, every_n=1, max_frames=5)  # 12 s
    times = [f.time_s for f in frames]
    assert 3 <= len(frames) <= 5
    assert times[0] == 0.0 and times[-1] >= 8.0
    assert times == sorted(times)
    gaps = np.diff(times)
    assert gaps.max() <= 2 * gaps.min() + 0.2


@pytest.mark.parametrize("clip, seconds", [("lying", 4.0), ("raw", 3.0)])
def test_max_frames_needs_no_trustworthy_duration(clips, clip, seconds):
    """A 4 s clip claiming 100 hours, and a raw stream with no duration: still spread over the
    real length (the claim would have given one frame, no claim the first five)."""
    info = probe(clips[clip])
    assert info.duration_s == (vf.HOURS_CLAIMED * 3600 if clip == "lying" else None)
    for strategy in ("fps", "every_n"):
        frames = sample(clips[clip], strategy=strategy, fps=10.0, every_n=1, max_frames=5)
        times = [f.time_s for f in frames]
        assert 3 <= len(frames) <= 5
        assert times[0] == 0.0 and times[-1] >= 0.6 * seconds
    assert [f.time_s for f in sample(clips[clip], **EVERY_FRAME)] == pytest.approx(
        [i / 10 for i in range(round(10 * seconds))])


def test_max_frames_caps_scene_and_keyframes(clips):
    assert len(sample(clips["long"], strategy="keyframes", max_frames=3)) <= 3
    assert len(sample(clips["scenes"], strategy="scene", scene_threshold=0.0, max_frames=4)) <= 4


# ------------------------------------------------------------------------------------------
# Pictures: size and rotation
# ------------------------------------------------------------------------------------------
def test_size_is_the_shorter_side(clips):
    assert sample(clips["constant"], size=64)[0].image.size == (85, 64)
    assert sample(clips["constant"], size=200)[0].image.size == (267, 200)
    assert sample(clips["constant"], size=None)[0].image.size == (160, 120)
    image = sample(clips["constant"])[0].image
    assert isinstance(image, Image.Image) and image.mode == "RGB"


@pytest.mark.parametrize("clip, corner", [("rotated", "bottom_left"), ("rotated_cw", "top_right")])
def test_display_rotation_is_applied(clips, clip, corner):
    """The display matrix turns the stored 160x120 picture (white top-left corner) a quarter turn:
    counter-clockwise for +90 (the white corner goes bottom-left), clockwise for -90 (top-right)."""
    assert probe(clips[clip]).rotation == (90 if clip == "rotated" else -90)
    for size, shape in [(None, (160, 120)), (60, (80, 60))]:
        frame = sample(clips[clip], size=size)[0]
        pixels = np.asarray(frame.image)
        assert pixels.shape[:2] == shape  # portrait: height, width
        h, w = shape
        corners = {"top_left": pixels[: h // 8, : w // 8], "top_right": pixels[: h // 8, -w // 8 :],
                   "bottom_left": pixels[-h // 8 :, : w // 8], "bottom_right": pixels[-h // 8 :, -w // 8 :]}
        assert corners.pop(corner).mean() > 200
        assert all(patch.mean() < 60 for patch in corners.values())


def test_scene_thumbnail_reads_any_pixel_format():
    """The thumbnail is read from the luma plane where there is one, through swscale otherwise:
    both give the same brightness."""
    from modelkit.video.sampler import _thumbnail

    pixels = np.zeros((120, 160, 3), np.uint8)
    pixels[:, 80:] = 200
    rgb = av.VideoFrame.from_ndarray(pixels, format="rgb24")
    yuv = rgb.reformat(format="yuv420p")
    assert yuv.format.name == "yuv420p" and rgb.format.name == "rgb24"
    assert np.abs(_thumbnail(rgb) - _thumbnail(yuv)).max() < 0.05
    assert _thumbnail(yuv)[:, :14].mean() < 0.05 and _thumbnail(yuv)[:, 18:].mean() > 0.7


def test_rotate_turns_counter_clockwise():
    image = Image.new("RGB", (4, 2))
    image.putpixel((0, 0), (255, 255, 255))
    assert rotate(image, 90).size == (2, 4) and rotate(image, 90).getpixel((0, 3)) == (255, 255, 255)
    assert rotate(image, -90).getpixel((1, 0)) == (255, 255, 255)
    assert rotate(image, 180).getpixel((3, 1)) == (255, 255, 255)
    assert rotate(image, 0) is image


# ------------------------------------------------------------------------------------------
# Bad input: a VideoError naming the file, never a hang
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("clip, message", [
    ("corrupt", "not a video file"),
    ("truncated", "not a video file"),
    ("audio_only", r"no video stream \(audio only\)"),
    ("no_frames", "no decodable frames"),
])
def test_bad_files_raise_video_error_naming_the_file(clips, clip, message):
    path = clips[clip]
    with pytest.raises(VideoError, match=message) as caught:
        sample(path)
    assert path.name in str(caught.value)
    if clip != "no_frames":
        with pytest.raises(VideoError, match=message):
            probe(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(VideoError, match="nothing.mp4: file not found"):
        sample(tmp_path / "nothing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty.mp4: empty file \(0 bytes\)"):
        sample(tmp_path / "empty.mp4")


def test_a_stream_that_ends_early_yields_what_decodes(clips, caplog):
    """The index promises 3 s, the data stops after about one and the last packet is cut."""
    assert probe(clips["ends_early"]).duration_s == 3.0
    with caplog.at_level(logging.WARNING, logger="modelkit.video.sampler"):
        frames = sample(clips["ends_early"], **EVERY_FRAME)
    assert 3 <= len(frames) < 30
    assert [f.time_s for f in frames] == pytest.approx([i / 10 for i in range(len(frames))])
    assert "ends_early.mp4" in caplog.text


def test_limits(clips):
    with pytest.raises(VideoError, match=r"constant.mp4: 160x120 frames are over the limit of 10,000 pixels"):
        sample(clips["constant"], max_pixels=100 * 100)
    frames = sample(clips["constant"], **EVERY_FRAME, max_seconds=1.0)
    assert frames[-1].time_s == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------
# Streaming and sources
# ------------------------------------------------------------------------------------------
def open_files(path: Path) -> int:
    return sum(os.path.realpath(f"/proc/self/fd/{fd}") == str(path.resolve()) for fd in os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_frames_stream_lazily_and_an_abandoned_generator_closes_the_file(clips):
    frames = sample_frames(clips["long"], SamplerConfig(fps=10.0, max_frames=None))
    assert inspect.isgenerator(frames)
    assert open_files(clips["long"]) == 0  # nothing is opened before the first frame is asked for
    first = list(itertools.islice(frames, 3))
    assert [f.index for f in first] == [0, 1, 2]
    assert open_files(clips["long"]) == 1
    frames.close()
    assert open_files(clips["long"]) == 0


def test_bytes_and_file_objects_work_like_paths(clips):
    expected = [f.time_s for f in sample(clips["vfr"], fps=10.0)]
    assert [f.time_s for f in sample(clips["vfr"].read_bytes(), fps=10.0)] == expected
    with open(clips["vfr"], "rb") as handle:
        assert [f.time_s for f in sample(handle, fps=10.0)] == expected
    with pytest.raises(VideoError, match="<video bytes>: not a video file"):
        sample(b"not a video at all" * 100)
    with pytest.raises(VideoError, match="not a video file"):
        sample(io.BytesIO(clips["corrupt"].read_bytes()))


def test_sample_batches(clips):
    batches = list(sample_batches(clips["constant"], SamplerConfig(fps=10.0 / 4, max_frames=None), batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 2]  # frames 0, 4, ..., 28
    assert [f.index for b in batches for f in b] == list(range(0, 30, 4))
    with pytest.raises(ValueError, match="batch_size"):
        next(sample_batches(clips["constant"], SamplerConfig(), batch_size=0))


def test_probe(clips):
    assert probe(clips["constant"]) == VideoInfo(duration_s=3.0, fps=10.0, frames=30, width=160, height=120,
                                                 rotation=0, codec="h264")
    raw = probe(clips["raw"])
    assert (raw.duration_s, raw.frames, raw.width, raw.height) == (None, None, 160, 120)
