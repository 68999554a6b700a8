"""The video modality: PyAV frame sampling, the ``video`` processor and model (any image model scores
frames; frame logits are pooled per video), and timestamped segments of violating content.

Importing this package registers them; the core finds it through the ``modelkit.plugins`` entry
point, so ``modelkit.load`` and recipes need no import of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from ..data.synthetic import register_planter, register_synthetic
from ..evaluation.sections import register_report_section
from ..processing import register_modality
from . import models, processors  # noqa: F401  (register the processor and the model)
from .evaluation import SEGMENTS_SECTION
from .models import video_classifier
from .sampler import Frame, SamplerConfig, VideoError, probe, sample_frames
from .segments import SegmentConfig, find_segments


def check_video(value: Any) -> str | None:
    """What makes a valid video input (cheap: files are looked up, not opened)."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        if not value:
            return "empty video path"
        return None if os.path.isfile(value) else f"video file not found: {value}"
    if isinstance(value, (bytes, bytearray)):
        return None if value else "empty video bytes"
    if isinstance(value, Mapping):  # a datasets Video value, {"path", "bytes"}
        if value.get("bytes"):
            return None
        if value.get("path"):
            return check_video(str(value["path"]))
        return "a video mapping needs 'path' or 'bytes'"
    return f"expected a video path, bytes or a datasets Video value, got {type(value).__name__}"


def _preview(value: Any) -> dict[str, str]:
    """A report's view of a video: its name and its first frame."""
    from ..image.decode import thumbnail

    name = processors.video_name(value)
    try:
        # The first keyframe: no more of the video is read (max_frames would read all of a video
        # whose duration cannot be trusted).
        config = SamplerConfig("keyframes", max_frames=None, size=96)
        with closing(sample_frames(processors.video_source(value), config)) as frames:
            first = next(frames, None)
    except VideoError as err:
        return {"text": str(err)}
    return {"text": name} if first is None else {**thumbnail(first.image), "text": name}


register_modality("video", check_video, files=True, preview=_preview, hub_task="video-classification")
register_report_section(SEGMENTS_SECTION)
register_synthetic("video", "modelkit.video.synthetic:write_synthetic_video_splits")
register_planter("video", "modelkit.video.synthetic:plant_video")

__all__ = ["Frame", "SamplerConfig", "SegmentConfig", "VideoError", "find_segments", "probe", "sample_frames",
           "video_classifier"]
