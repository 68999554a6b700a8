"""The ``video`` processor: sample frames from a video, decode each with a frame processor, batch them.

A video becomes a list of frame items (what an ``image`` or ``image_ocr`` processor makes of
each sampled picture) and the frames' times. :meth:`VideoProcessor.collate` concatenates the
frames of a batch of videos into one frame batch, plus ``frame_rows`` (the video each frame came
from), so any image model scores the frames and the ``video`` model pools them per video. After
scoring, :meth:`VideoProcessor.postprocess` turns per-frame scores into timestamped segments.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..config import ConfigError
from ..processing import CompositeProcessor, InputError, Processor, check_input, register_processor
from .sampler import Frame, SamplerConfig, sample_frames
from .segments import SegmentConfig, find_segments, part_labels, row_segments

# Frames one training batch may hold: 512 pictures of 224x224 are 300 MB as float32, whatever
# the requested batch size (evaluation in training defaults to 512 inputs).
FRAMES_PER_BATCH = 512
# Inference reads a video this many sampled frames at a time, and scores at most this many
# frames in one batch: the memory of a frame model's activations on them (a small CNN on 224 px
# frames, about 200 MB) is the memory of scoring any video, whatever its length.
FRAMES_PER_PIECE = 32
FRAMES_PER_INFERENCE_BATCH = 64


@dataclass
class VideoItem:
    frames: list[Any]  # what the frame processor decoded, one per sampled frame
    times: np.ndarray  # seconds of each frame, from the stream's presentation times
    evidence: list[dict[str, Any] | None]  # the frame processor's evidence per frame


@dataclass
class VideoProcessorConfig:
    # The processor of each sampled frame (name + its fields): image, or image_ocr for text in frames.
    frame: dict[str, Any] = field(default_factory=lambda: {"name": "image"})
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    segments: SegmentConfig = field(default_factory=SegmentConfig)


def video_source(value: Any) -> Any:
    """What the sampler opens: a path, or the bytes / path of a ``datasets`` Video value."""
    if isinstance(value, Mapping):
        return bytes(value["bytes"]) if value.get("bytes") else str(value.get("path") or "")
    return value


def video_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("path") or "<video bytes>")
    return str(value) if isinstance(value, (str, Path)) else f"<{type(value).__name__} video>"


@register_processor("video")
class VideoProcessor(CompositeProcessor):
    """Video -> sampled frames -> the frame processor's batch + ``frame_rows``."""

    modality = "video"
    config_class = VideoProcessorConfig
    part_names = ("frame",)

    def check_parts(self) -> None:
        if self.frame.modality != "image":
            raise ConfigError(f"processor.frame: {self.frame.name} reads {self.frame.modality} inputs, not images")

    @property
    def frame(self) -> Processor:
        return self.parts["frame"]

    @property
    def max_batch_inputs(self) -> int:
        """Videos per batch such that a batch holds at most FRAMES_PER_BATCH frames when every video
        reaches sampler.max_frames (one video per batch when frames are not capped)."""
        cap = self.config.sampler.max_frames
        return 1 if cap is None else max(1, FRAMES_PER_BATCH // cap)

    def decode_value(self, value: Any, labels: np.ndarray | None, rng: random.Random | None) -> VideoItem:
        with closing(sample_frames(video_source(value), self.config.sampler)) as frames:
            item = self._item(list(frames), labels, rng)
        if item is None:
            raise InputError(f"{video_name(value)}: no frames could be sampled")
        return item

    def pieces(self, raw: Any) -> Iterator[tuple[VideoItem, dict[str, Any]]]:
        """The video :data:`FRAMES_PER_PIECE` sampled frames at a time, as they are decoded: an
        hour of video costs the memory of a minute."""
        value = self.value_of(raw)
        problem = check_input(self.modality, value)
        if problem is not None:
            raise TypeError(problem)
        sampled = False
        with closing(sample_frames(video_source(value), self.config.sampler)) as frames:
            while window := list(itertools.islice(frames, FRAMES_PER_PIECE)):
                item = self._item(window, None, None)
                sampled = True
                yield item, self.evidence(item)
        if not sampled:
            raise InputError(f"{video_name(value)}: no frames could be sampled")

    def _item(self, frames: list[Frame], labels: np.ndarray | None, rng: random.Random | None) -> VideoItem | None:
        if not frames:
            return None
        items = [self.frame.decode_value(frame.image, labels, rng) for frame in frames]
        return VideoItem(items, np.asarray([frame.time_s for frame in frames], dtype=np.float64),
                         [self.frame.evidence(item) for item in items])

    def piece_units(self, item: VideoItem) -> int:
        return len(item.frames)

    @property
    def max_batch_units(self) -> int:
        return FRAMES_PER_INFERENCE_BATCH

    def collate(self, items: Sequence[VideoItem]) -> dict[str, torch.Tensor]:
        batch = self.frame.collate([frame for item in items for frame in item.frames])
        counts = torch.tensor([len(item.frames) for item in items])
        batch["frame_rows"] = torch.repeat_interleave(torch.arange(len(items)), counts)
        return batch

    output_fields = ("segments",)

    def part_positions(self, item: VideoItem) -> np.ndarray:
        """Frame times in seconds."""
        return item.times

    def evidence(self, item: VideoItem) -> dict[str, Any]:
        """How many frames were scored over which span, and what the frame processor saw in each
        (the text OCR read), keeping its short fields only (not OCR boxes)."""
        evidence: dict[str, Any] = {"frames": len(item.frames),
                                    "span_s": [round(float(item.times[0]), 3), round(float(item.times[-1]), 3)]}
        seen = [{"time_s": round(float(t), 3), **{k: v for k, v in e.items() if isinstance(v, (str, int, float))}}
                for t, e in zip(item.times, item.evidence) if e]
        if seen:
            evidence["frame_evidence"] = seen
        return evidence

    def merge_evidence(self, pieces: list[dict[str, Any] | None]) -> dict[str, Any] | None:
        """The evidence of a whole video from its pieces': frames summed, spans joined."""
        pieces = [piece for piece in pieces if piece]
        if len(pieces) <= 1:
            return pieces[0] if pieces else None
        merged: dict[str, Any] = {"frames": sum(piece["frames"] for piece in pieces),
                                  "span_s": [pieces[0]["span_s"][0], pieces[-1]["span_s"][1]]}
        seen = [entry for piece in pieces for entry in piece.get("frame_evidence", [])]
        if seen:
            merged["frame_evidence"] = seen
        return merged

    def postprocess(self, positions: np.ndarray, part_scores: np.ndarray, thresholds: np.ndarray,
                    categories: list[str]) -> dict[str, Any]:
        """The video's violating ``segments`` from its frame times and calibrated frame scores."""
        return {"segments": find_segments(positions, part_scores, thresholds, categories, self.config.segments)}

    def part_annotations(self, records: Any, field: str | None) -> list[Any] | None:
        """Each row's timed labels ``[{category, start_s, end_s}]`` (the ``data.segments_field`` column)."""
        return row_segments(records, field)

    def part_targets(self, item: VideoItem, labels: np.ndarray, annotation: Any,
                     categories: Sequence[str]) -> np.ndarray:
        return part_labels(item.times, labels, annotation, categories)
