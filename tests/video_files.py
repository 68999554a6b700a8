"""Test videos written with PyAV: good clips with known timestamps, and the bad files uploads bring.

Every writer takes the path to write and returns it. The good clips carry a frame-number mark: the
top-left 32x32 block is grey level ``8 * (index % 32)`` (see :func:`mark_of`), so a test can tell
which frame a sampler returned, e.g. after a seek.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SIZE = (160, 120)  # width, height: small, so every clip encodes in well under a second
MS = Fraction(1, 1000)
# Irregular gaps (ms): bursts, a 700 ms hole and a 1.47 s hole.
VFR_PTS_MS = [0, 40, 80, 300, 310, 1000, 1030, 2500, 2540, 2580, 3000]
HOURS_CLAIMED = 100


def mark_of(pixels: np.ndarray) -> int:
    """The frame number (mod 32) written into an RGB frame of a good clip."""
    return int(round(float(pixels[4:28, 4:28].mean()) / 8)) % 32


def _picture(index: int, size: tuple[int, int] = SIZE, base: Sequence[int] | None = None) -> np.ndarray:
    """A scrolling gradient with a moving box (so inter frames carry real motion) and the mark."""
    width, height = size
    if base is None:
        x = (np.arange(width)[None, :] + 3 * index) % width
        y = np.arange(height)[:, None]
        pixels = np.stack([np.broadcast_to(x * 255 // width, (height, width)),
                           np.broadcast_to(y * 255 // height, (height, width)),
                           np.full((height, width), 96)], axis=-1).astype(np.uint8)
    else:
        pixels = np.empty((height, width, 3), np.uint8)
        pixels[:] = base
    left = 40 + (5 * index) % (width - 60)
    pixels[height // 2 : height // 2 + 20, left : left + 20] = (255, 255, 0)
    pixels[:32, :32] = 8 * (index % 32)
    return pixels


def _encode(path: Path, pictures, *, rate: int | None = 10, time_base: Fraction | None = None,
            pts: Sequence[int] | None = None, gop: int | None = None, fmt: str | None = None,
            options: dict[str, str] | None = None, rotation: int | None = None) -> Path:
    path = Path(path)
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream("libx264", rate=rate) if rate else container.add_stream("libx264")
        pictures = iter(pictures)
        first = next(pictures)
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        if time_base is not None:
            stream.time_base = stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for index, pixels in enumerate([first, *pictures]):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[index], time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_constant_fps(path: Path, fps: int = 10, seconds: float = 3.0, size: tuple[int, int] = SIZE,
                       gop: int | None = 10) -> Path:
    """H.264 in MP4 at a constant ``fps``: frame i is shown at i / fps seconds."""
    return _encode(path, (_picture(i, size) for i in range(round(fps * seconds))), rate=fps, gop=gop)


def write_vfr(path: Path) -> Path:
    """H.264 in MP4 with time base 1/1000 and frame i at ``VFR_PTS_MS[i]`` milliseconds."""
    return _encode(path, (_picture(i) for i in range(len(VFR_PTS_MS))), rate=None, time_base=MS,
                   pts=VFR_PTS_MS)


def write_rotated(path: Path, degrees: int = 90) -> Path:
    """A 160x120 clip whose display matrix turns it ``degrees`` counter-clockwise (portrait phone video);
    the top-left of the stored picture is white, the rest dark."""
    def picture() -> np.ndarray:
        pixels = np.full((SIZE[1], SIZE[0], 3), 20, np.uint8)
        pixels[:40, :40] = 255
        return pixels
    return _encode(path, (picture() for _ in range(10)), rotation=degrees)


def write_scenes(path: Path, colours: Sequence[tuple[int, int, int]], seconds_each: float = 1.0,
                 fps: int = 10) -> Path:
    """Solid-colour scenes one after the other (a small moving box in each): cuts at k * seconds_each."""
    per_scene = round(seconds_each * fps)
    pictures = (_picture(i, base=colours[i // per_scene]) for i in range(per_scene * len(colours)))
    return _encode(path, pictures, rate=fps)


def write_corrupt(path: Path) -> Path:
    """Random bytes under a video file name."""
    Path(path).write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    return Path(path)


def write_truncated(path: Path) -> Path:
    """The first 30% of a normal MP4 (its index, written at the end, is lost)."""
    whole = write_constant_fps(Path(path).with_suffix(".whole.mp4")).read_bytes()
    Path(path).write_bytes(whole[: len(whole) * 3 // 10])
    return Path(path)


def write_ends_early(path: Path) -> Path:
    """An MP4 with its index first (faststart) cut in the middle: the index lists 3 s of frames, the
    data holds about half; the last packet is cut short."""
    whole = _encode(Path(path).with_suffix(".whole.mp4"), (_picture(i) for i in range(30)),
                    options={"movflags": "faststart"}, gop=10).read_bytes()
    Path(path).write_bytes(whole[: len(whole) // 2])
    return Path(path)


def write_audio_only(path: Path) -> Path:
    """One second of a 440 Hz tone, AAC in MP4, no video stream."""
    rate = 22050
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return Path(path)


def write_no_frames(path: Path) -> Path:
    """An AVI with a declared H.264 video stream and not a single packet (the MP4 muxer drops empty
    tracks, so AVI it is)."""
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        container.start_encoding()
    return Path(path)


def write_lying_duration(path: Path, seconds: float = 4.0) -> Path:
    """A ``seconds``-long Matroska clip whose header claims ``HOURS_CLAIMED`` hours.

    Matroska, because FFmpeg believes its Segment Duration; in MP4 it recomputes the duration from
    the sample table and ignores patched mvhd/tkhd/mdhd fields.
    """
    _encode(path, (_picture(i) for i in range(round(10 * seconds))), fmt="matroska")
    data = bytearray(Path(path).read_bytes())
    at = data.find(b"\x44\x89\x88")  # EBML id of Duration, then "8-byte float" (in milliseconds)
    if at < 0:
        raise RuntimeError(f"{path}: no Matroska Duration element to patch")
    struct.pack_into(">d", data, at + 3, HOURS_CLAIMED * 3600 * 1000.0)
    Path(path).write_bytes(data)
    return Path(path)


def write_raw_h264(path: Path, frames: int = 30) -> Path:
    """An H.264 elementary stream (.h264): no container, so no duration, no index, no timestamps
    (every frame's pts is None)."""
    return _encode(path, (_picture(i) for i in range(frames)), rate=10, fmt="h264")
