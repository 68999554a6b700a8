"""Frame sampling with PyAV: the few frames of a video that a classifier looks at.

:func:`sample_frames` is a generator: it decodes as it goes and keeps no frame it has handed
over, so memory does not grow with the length of the video. What makes it fast is work not done:

* frames that are not taken are never converted to RGB (on 720p H.264 the conversion costs
  about half as much as the decoding); taken ones are converted and resized in one ``reformat``;
* sampling on a time grid (``fps``, or any time-based strategy that ``max_frames`` spreads over
  a video of trusted length) sends no non-reference frame shown before the next slot to the
  decoder (``skip_frame = "NONREF"``: no other frame depends on it, so the frames taken are
  bit-identical to full decoding), and where the container has an index it seeks to the
  keyframe before the next slot whenever that keyframe lies ahead of what was read;
* ``keyframes`` sampling feeds only key packets to the decoder (``skip_frame = "NONKEY"``);
* the decoder runs with frame and slice threads;
* ``scene`` averages its thumbnails straight from the luma plane (see ``_thumbnail``).

Times come from each frame's PTS (relative to the stream's start), never from index / fps, so
variable-frame-rate video gets correct seconds. Bad files raise :class:`VideoError` naming the
file; nothing trusts the header's duration or frame rate to terminate (``max_seconds``).
"""

from __future__ import annotations

import contextlib
import heapq
import io
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Literal, Union

import av
import numpy as np
from PIL import Image

from ..processing import InputError

logger = logging.getLogger(__name__)

Source = Union[str, Path, bytes, bytearray, BinaryIO]
Strategy = Literal["fps", "every_n", "keyframes", "scene"]
STRATEGIES = ("fps", "every_n", "keyframes", "scene")

THUMBNAIL = (32, 18)  # scene detection compares grey thumbnails of this size (16:9, cheap to make)
# Pixel formats whose first plane is 8-bit luma: scene thumbnails are read from it directly.
_LUMA8 = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
          "yuv411p", "nv12", "nv21", "gray"}
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG: luma in [0, 255] rather than [16, 235]
DEFAULT_RATE = 25.0   # FFmpeg's own guess for a stream that states no frame rate
MAX_PACKET_RATE = 1000  # packets per second of max_seconds, the bound for streams without timestamps
MAX_BAD_PACKETS = 200   # consecutive undecodable packets before giving up on a stream
_TURNS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


class VideoError(InputError):
    """A video that cannot be read (missing, corrupt, no video stream, too large); names the file."""


@dataclass
class SamplerConfig:
    """Which frames :func:`sample_frames` returns, at what size, and the limits on bad input."""

    strategy: Strategy = "fps"
    fps: float = 1.0               # strategy fps: frames per second of video
    every_n: int = 30              # strategy every_n: every n-th decoded frame
    # strategy scene: a frame is taken when the mean absolute difference of its grey thumbnail from
    # the last taken frame's (pixel values in [0, 1]) exceeds this; the first frame is always taken
    scene_threshold: float = 0.3
    max_frames: int | None = 64    # at most this many frames, spread over the whole video
    size: int | None = 256         # shorter side of the returned frames (aspect kept); None: native
    max_pixels: int = 40_000_000   # refuse streams with larger frames, before decoding any
    max_seconds: float = 6 * 3600  # decode no video past this time
    threads: int = 0               # decoder threads; 0: FFmpeg's choice

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"sampler.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        checks = [
            ("fps", self.fps, math.isfinite(self.fps) and self.fps > 0, "> 0"),
            ("every_n", self.every_n, self.every_n >= 1, ">= 1"),
            ("scene_threshold", self.scene_threshold, 0 <= self.scene_threshold < 1, "in [0, 1)"),
            ("max_frames", self.max_frames, self.max_frames is None or self.max_frames >= 1, ">= 1 (or null)"),
            ("size", self.size, self.size is None or self.size >= 1, ">= 1 (or null)"),
            ("max_pixels", self.max_pixels, self.max_pixels >= 1, ">= 1"),
            ("max_seconds", self.max_seconds, math.isfinite(self.max_seconds) and self.max_seconds > 0, "> 0"),
            ("threads", self.threads, self.threads >= 0, ">= 0"),
        ]
        for name, value, valid, rule in checks:
            if not valid:
                raise ValueError(f"sampler.{name} must be {rule}, got {value}")


@dataclass
class Frame:
    """One sampled frame."""

    image: Image.Image  # RGB, display rotation applied
    time_s: float       # presentation time in seconds from the stream's start
    # Position among the stream's frames (0-based). Counted exactly while decoding from the start;
    # after a seek, exact when the container indexes every frame (MP4, AVI), else estimated from
    # time_s and the frame rate.
    index: int


@dataclass
class VideoInfo:
    """What the container says; ``None`` where it says nothing. ``width`` x ``height`` is the stored
    picture; ``rotation`` (degrees counter-clockwise, from the display matrix) turns it for display."""

    duration_s: float | None
    fps: float | None
    frames: int | None
    width: int
    height: int
    rotation: int
    codec: str


def source_name(source: Source) -> str:
    """How messages name a video: its path, else the file object's name, else its kind."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return "<video bytes>"
    return str(getattr(source, "name", None) or f"<{type(source).__name__} video>")


def _open(source: Source, name: str) -> av.container.InputContainer:
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, Path):
        source = str(source)
    if isinstance(source, str) and os.path.isfile(source) and os.path.getsize(source) == 0:
        raise VideoError(f"{name}: empty file (0 bytes)")
    try:
        return av.open(source, mode="r", metadata_errors="ignore")
    except FileNotFoundError:  # av.FileNotFoundError is one too
        raise VideoError(f"{name}: file not found") from None
    except av.InvalidDataError:
        raise VideoError(f"{name}: not a video file (corrupt or unknown format)") from None
    except (av.FFmpegError, OSError) as err:
        raise VideoError(f"{name}: cannot open ({err})") from None


def _video_stream(container: av.container.InputContainer, name: str) -> av.VideoStream:
    # Cover art in an audio file is a "video" stream of one picture: not a video.
    pictures = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if pictures:
        if pictures[0].codec_context is None:  # PyAV has no decoder for it
            raise VideoError(f"{name}: no decoder for its video codec")
        return pictures[0]
    if container.streams.audio:
        raise VideoError(f"{name}: no video stream (audio only)")
    raise VideoError(f"{name}: no video stream")


def _check_pixels(width: int, height: int, name: str, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise VideoError(f"{name}: {width}x{height} frames are over the limit of {max_pixels:,} pixels "
                         "(sampler.max_pixels)")


def _claimed_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    if stream.duration and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    return None


def _first_rotation(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    """The display rotation PyAV 18 reports on decoded frames (it has no stream-level getter)."""
    with contextlib.suppress(av.FFmpegError):
        for packet in container.demux(stream):
            for frame in stream.decode(packet):
                return frame.rotation
    return 0


def probe(source: Source) -> VideoInfo:
    """The container's description of a video (decodes one frame, for the rotation)."""
    name = source_name(source)
    with _open(source, name) as container:
        stream = _video_stream(container, name)
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            duration_s=_claimed_duration(container, stream), fps=float(rate) if rate else None,
            frames=stream.frames or None, width=stream.codec_context.width, height=stream.codec_context.height,
            rotation=_first_rotation(container, stream), codec=stream.codec_context.name,
        )


# ------------------------------------------------------------------------------------------
# Which frames: a grid of slots, at most one frame per slot
# ------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    by_index: bool        # slots count frames (every_n), else seconds
    step: float           # slot width; 0: no slots (every candidate is taken)
    cap: int | None       # max_frames
    buffered: bool        # the duration is not trusted: decimate in a buffer, yield at the end


def _trusted_duration(container: av.container.InputContainer, stream: av.VideoStream,
                      max_seconds: float) -> float | None:
    """The header's duration when the demuxer's index backs it up, else None.

    Headers lie (a 100-hour claim on a 10-second upload) and some formats have none. The index is
    built from the packet table, so a claim that ends near the last indexed packet is believed. A
    keyframe-only index (Matroska cues) ends up to a GOP before the end, hence the slack above it.
    """
    claim = _claimed_duration(container, stream)
    entries = stream.index_entries
    if claim is None or claim > max_seconds or not len(entries):
        return None
    indexed = float((entries[-1].timestamp - (stream.start_time or 0)) * stream.time_base)
    return claim if indexed - 1 <= claim <= indexed + max(10.0, 0.1 * indexed) else None


def _plan(config: SamplerConfig, container: av.container.InputContainer, stream: av.VideoStream) -> _Plan:
    by_index = config.strategy == "every_n"
    native = {"fps": 1 / config.fps, "every_n": float(config.every_n)}.get(config.strategy, 0.0)
    if config.max_frames is None:
        return _Plan(by_index, native, None, buffered=False)
    # A trusted duration lets the slots be sized up front, so frames stream out as they are decoded.
    # Without one, any up-front choice is wrong for a lying header (a 100-hour claim would give one
    # frame; no claim would give the first max_frames): keep at most max_frames and, when full,
    # widen the slots (at least doubling: for fps, every other frame goes) -- correct for any
    # length, at the price of yielding only at the end.
    duration = _trusted_duration(container, stream, config.max_seconds)
    if duration is None:
        return _Plan(by_index, native, config.max_frames, buffered=True)
    extent = (stream.frames or duration * float(stream.guessed_rate or DEFAULT_RATE)) if by_index else duration
    return _Plan(by_index, max(native, extent / config.max_frames), config.max_frames, buffered=False)


class _Grid:
    """At most one frame per slot ``[k * step, (k + 1) * step)``: the first one that qualifies."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.last = -1  # slot of the last frame taken

    def slot(self, key: float) -> int:
        # The epsilon makes a frame at exactly k / fps (in floats, 2.9999999999 / 1) land in slot k.
        return math.floor(key / self.step + 1e-9) if self.step else self.last + 1

    def next_start(self) -> float | None:
        """The earliest time that falls in a slot after the last one taken (the same epsilon)."""
        return (self.last + 1 - 1e-9) * self.step if self.step else None

    def widen(self, kept: list[tuple[float, Frame]], cap: int) -> list[tuple[float, Frame]]:
        """Widen the slots until ``kept`` (key, frame) has at most ``cap`` frames, one per slot."""
        while len(kept) > cap:
            # Positive even when every key is 0 (broken timestamps): equal keys then share a slot.
            self.step = max(2 * self.step, kept[-1][0] / cap, 1e-3)
            survivors: list[tuple[float, Frame]] = []
            self.last = -1
            for key, frame in kept:
                if (slot := self.slot(key)) > self.last:
                    survivors.append((key, frame))
                    self.last = slot
            kept = survivors
        return kept


# ------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------
class _Reader:
    """The frames of one video stream in presentation order, with their time and index, skipping
    the decoding (and the reading) of frames before ``wanted_from()`` where that is safe."""

    def __init__(self, container: av.container.InputContainer, stream: av.VideoStream, name: str,
                 config: SamplerConfig, keyframes_only: bool) -> None:
        self.container, self.stream, self.name, self.config = container, stream, name, config
        self.keyframes_only = keyframes_only
        self.start = stream.start_time or 0
        self.time_base: Fraction = stream.time_base or Fraction(1, 1)
        self.rate = float(stream.guessed_rate or stream.average_rate or DEFAULT_RATE)
        entries = stream.index_entries
        self.entries = entries if len(entries) else None
        self.frames_indexed = bool(stream.frames) and len(entries) == stream.frames
        # Index entries hold decode times; B-frame reordering shows frames later by a constant delay
        # (MP4 and x264: two frames), measured on the first frame.
        self.delay = max(0, self.start - entries[0].timestamp) if self.entries is not None else 0
        self.decoded = 0
        self.error: Exception | None = None
        self.stopped: str | None = None  # why decoding ended before the end of the stream
        self._skip = "DEFAULT"
        self._position: int | None = None  # dts of the last packet read
        self._seeked = -1                  # index entry of the last seek: only ever seek forward
        self._checked: float | None = None  # the wanted time last looked up in the index
        self._pending: list[int] = []      # pts of packets read whose frames are not yet counted
        self._base: int | None = 0         # frame index at the last (re)start; None: unknown
        self._locate = False               # find _base from the first packet after a seek
        self._counted = 0
        self._index = -1
        self.last_time: float | None = None  # of the last frame decoded
        self.end_time: float | None = None   # of the latest packet read
        context = stream.codec_context
        context.thread_type = "AUTO"
        context.thread_count = config.threads
        if keyframes_only:
            context.skip_frame = "NONKEY"

    def _seconds(self, pts: int) -> float:
        # The same float arithmetic as PyAV's frame.time, so that start 0 gives identical values.
        return float(pts - self.start) * self.time_base.numerator / self.time_base.denominator

    def _packets(self) -> Iterator[av.Packet | None]:
        """Packets of the stream; None once at the end (to drain the decoder), also after a read error."""
        packets = self.container.demux(self.stream)
        limit = self.config.max_seconds * MAX_PACKET_RATE
        read = 0
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as err:  # a cut or damaged container: what decoded so far stands
                self.error = err
                yield None
                return
            read += 1
            # Packets come in decode order, up to a few frames ahead of their display: a second of
            # slack past max_seconds, then the decoder is drained (frames past it are dropped there).
            if packet.pts is not None:
                self.end_time = max(self.end_time or 0.0, self._seconds(packet.pts))
            late = self.end_time is not None and self.end_time > self.config.max_seconds + 1
            if late or read > limit:
                self.stopped = f"stopped at sampler.max_seconds={self.config.max_seconds:g}"
                yield None
                return
            if packet.size == 0:  # PyAV's own end-of-stream packet
                yield None
                return
            yield packet

    def _decode(self, packet: av.Packet | None) -> list[av.VideoFrame] | None:
        """The frames a packet completes; None when the decoder rejects it."""
        try:
            return self.stream.decode(packet)
        except av.FFmpegError as err:  # one damaged packet; the next keyframe decodes again
            self.error = err
            return None

    def _frame_time_and_index(self, frame: av.VideoFrame) -> tuple[float, int]:
        if frame.pts is None:  # no timestamps (raw H.264): decode order at the stream's rate
            time_s = 0.0 if self.last_time is None else self.last_time + 1 / self.rate
            index = self._index + 1
        else:
            time_s = self._seconds(frame.pts)
            # Every packet read is a frame; those shown before this one (pts below) are counted,
            # including frames skipped undecoded.
            while self._pending and self._pending[0] < frame.pts:
                heapq.heappop(self._pending)
                self._counted += 1
            index = self._base + self._counted if self._base is not None else round(time_s * self.rate)
        self.last_time, self._index = time_s, index
        return time_s, index

    def _set_skip(self, packet: av.Packet, wanted_from: float | None) -> None:
        # A non-reference frame shown before the next wanted time can be neither taken nor needed
        # by another frame: let the decoder drop it undecoded.
        skip = "DEFAULT"
        if wanted_from is not None and packet.pts is not None and self._seconds(packet.pts) < wanted_from:
            skip = "NONREF"
        if skip != self._skip:
            self.stream.codec_context.skip_frame = self._skip = skip

    def _timestamp(self, seconds: float) -> int:
        # Rounded: a slot start a hair below a keyframe's time must still seek to that keyframe.
        return self.start + round(seconds * self.time_base.denominator / self.time_base.numerator)

    def _keyframe_ahead(self, wanted_from: float | None) -> int | None:
        """The keyframe entry a seek to ``wanted_from`` lands on, if it lies ahead of what was read.

        Demuxers seek to the last keyframe shown at or before the target; index entries hold decode
        times, earlier by the reordering delay.
        """
        if self.entries is None or wanted_from is None or self._position is None or wanted_from == self._checked:
            return None
        self._checked = wanted_from
        entry = self.entries.search_timestamp(self._timestamp(wanted_from) - self.delay)
        if entry <= self._seeked or self.entries[entry].timestamp <= self._position:
            return None
        return entry

    def _seek(self, entry: int, wanted_from: float) -> bool:
        try:
            self.container.seek(self._timestamp(wanted_from), stream=self.stream, backward=True)
        except av.FFmpegError:
            self.entries = None  # this container cannot seek: read on
            return False
        self._seeked = entry
        self._pending.clear()
        self._counted = 0
        self._locate = True
        return True

    def _locate_base(self, dts: int | None) -> int | None:
        """The frame index of the keyframe a seek landed on: its entry number, where every frame has an
        entry (in a closed GOP every frame decoded before a keyframe is also shown before it)."""
        if not self.frames_indexed or dts is None:
            return None
        entry = self.entries.search_timestamp(dts, backward=True, any_frame=True)
        return entry if entry >= 0 and self.entries[entry].timestamp == dts else None

    def frames(self, wanted_from) -> Iterator[tuple[av.VideoFrame, float, int]]:
        """``(frame, time_s, index)``; ``wanted_from()`` is asked, after each frame, for the earliest
        time still wanted (None: any frame may be)."""
        bad = 0
        restart = True
        while restart:
            restart = False
            for packet in self._packets():
                if packet is not None:
                    self._position = packet.dts if packet.dts is not None else packet.pts
                    if self._locate:
                        self._base, self._locate = self._locate_base(packet.dts), False
                    if packet.pts is not None:
                        heapq.heappush(self._pending, packet.pts)
                    if self.keyframes_only and not packet.is_keyframe:
                        continue
                    if not self.keyframes_only:
                        self._set_skip(packet, wanted_from())
                decoded = self._decode(packet)
                bad = 0 if decoded is not None else bad + 1
                if bad > MAX_BAD_PACKETS and not self.decoded:
                    return
                for frame in decoded or []:
                    self.decoded += 1
                    time_s, index = self._frame_time_and_index(frame)
                    if time_s > self.config.max_seconds:
                        self.stopped = f"stopped at sampler.max_seconds={self.config.max_seconds:g}"
                        return
                    _check_pixels(frame.width, frame.height, self.name, self.config.max_pixels)
                    yield frame, time_s, index
                    wanted = wanted_from()
                    entry = self._keyframe_ahead(wanted)
                    if entry is not None and self._seek(entry, wanted):
                        restart = True
                        break
                if restart:
                    break


# ------------------------------------------------------------------------------------------
# Frames out
# ------------------------------------------------------------------------------------------
def _output_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    if size is None:
        return width, height
    scale = size / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_image(frame: av.VideoFrame, size: int | None) -> Image.Image:
    """An RGB picture of a decoded frame: converted and resized in one pass, then turned upright."""
    width, height = _output_size(frame.width, frame.height, size)
    image = frame.to_image(width=width, height=height, interpolation="AREA")
    return rotate(image, frame.rotation)


def rotate(image: Image.Image, degrees: int) -> Image.Image:
    """``image`` turned ``degrees`` counter-clockwise (a display-matrix rotation, as PyAV reports it),
    to the nearest quarter turn."""
    turns = round(degrees / 90) % 4
    return image.transpose(_TURNS[turns]) if turns else image


def _thumbnail(frame: av.VideoFrame) -> np.ndarray:
    """Mean brightness of each cell of a THUMBNAIL grid, in [0, 1].

    Averaged from every few pixels of the luma plane in place: on 720p this costs a fifth of an
    swscale to a small grey picture, which would double the cost of decoding every frame.
    """
    columns, rows = THUMBNAIL
    step = max(1, min(frame.height // (4 * rows), frame.width // (4 * columns)))
    if frame.format.name in _LUMA8 and frame.height // step >= rows and frame.width // step >= columns:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8)[: plane.line_size * plane.height].reshape(plane.height, -1)
        luma = luma[::step, : frame.width : step]
        height, width = luma.shape[0] // rows, luma.shape[1] // columns
        cells = luma[: rows * height, : columns * width].reshape(rows, height, columns, width).mean(axis=(1, 3))
        if frame.format.name.startswith("yuvj") or frame.format.name == "gray" or frame.color_range == _FULL_RANGE:
            return (cells / 255.0).astype(np.float32)
        return np.clip((cells - 16) / 219.0, 0, 1).astype(np.float32)
    grey = frame.reformat(width=columns, height=rows, format="gray", interpolation="AREA")
    return grey.to_ndarray().astype(np.float32) / 255.0


def sample_frames(source: Source, config: SamplerConfig) -> Iterator[Frame]:
    """The frames ``config`` selects, in time order, as they are decoded.

    ``source`` is a path, the file's bytes or a binary file object. Raises :class:`VideoError`
    (when iterated) for a file that cannot be opened, has no video stream, has frames over
    ``max_pixels`` or has no decodable frame. A file damaged part-way yields the frames before
    the damage and ends (logged as a warning): a classifier can still judge what is there.
    With ``max_frames`` and a duration the container's index does not confirm, frames come
    out only at the end (see ``_plan``); memory stays bounded by ``max_frames`` frames.
    """
    name = source_name(source)
    with _open(source, name) as container:
        stream = _video_stream(container, name)
        _check_pixels(stream.codec_context.width, stream.codec_context.height, name, config.max_pixels)
        plan = _plan(config, container, stream)
        reader = _Reader(container, stream, name, config, keyframes_only=config.strategy == "keyframes")
        grid = _Grid(plan.step)
        kept: list[tuple[float, Frame]] = []
        reference: np.ndarray | None = None  # scene: the thumbnail of the last frame taken
        taken = 0
        for frame, time_s, index in reader.frames(lambda: None if plan.by_index else grid.next_start()):
            key = index if plan.by_index else time_s
            slot = grid.slot(key)
            if slot <= grid.last:
                continue
            if config.strategy == "scene":
                thumbnail = _thumbnail(frame)
                if reference is not None and float(np.abs(thumbnail - reference).mean()) <= config.scene_threshold:
                    continue
                reference = thumbnail
            grid.last = slot
            taken += 1
            sampled = Frame(to_image(frame, config.size), time_s, index)
            if plan.buffered:
                kept.append((key, sampled))
                if len(kept) > plan.cap:
                    kept = grid.widen(kept, plan.cap)
                continue
            yield sampled
            if taken == plan.cap:
                return
        if not reader.decoded:
            cause = f" ({reader.error})" if reader.error else ""
            raise VideoError(f"{name}: no decodable {'key ' if reader.keyframes_only else ''}frames{cause}")
        _warn_if_short(name, reader, _claimed_duration(container, stream))
        for _, sampled in kept:
            yield sampled


def _warn_if_short(name: str, reader: _Reader, claimed: float | None) -> None:
    """Say why a video that decoded gave less than it claims (the frames that did decode are used)."""
    if reader.stopped:
        logger.warning("%s: %s", name, reader.stopped)
    elif reader.error is not None:
        logger.warning("%s: damaged (%s); sampled from the %d frames that decoded", name, reader.error, reader.decoded)
    elif claimed and (end := max(reader.last_time or 0.0, reader.end_time or 0.0)) < claimed - max(1.0, 0.1 * claimed):
        # Frame-threaded decoding conceals a cut packet rather than failing on it: the time says it.
        logger.warning("%s: the stream ends at %.1f s of the %.1f s the header claims (cut short, or a lying "
                       "header)", name, end, claimed)


def sample_batches(source: Source, config: SamplerConfig, batch_size: int) -> Iterator[list[Frame]]:
    """:func:`sample_frames` in lists of ``batch_size`` (the last one may be shorter)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch: list[Frame] = []
    with contextlib.closing(sample_frames(source, config)) as frames:
        for frame in frames:
            batch.append(frame)
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch
