"""The ``video`` model: any image model scores sampled frames; frame logits are pooled per video.

Videos are labelled as a whole far more often than frame by frame, so the model learns from
video-level labels (multiple-instance learning): the pooled logit is what the loss sees, and
the frame logits that produced it are what segments are cut from. Pooling:

* ``max``: a video is as violating as its worst frame (one frame of gore is enough);
* ``mean``: the share of violating frames matters (a cooking video with one bloody frame);
* ``topk_mean``: the mean of the ``topk`` highest frames, robust to a single false alarm;
* ``attention``: per-category learned attention over frames (auto-pool, McFee et al. 2018): frame
  weights are ``softmax(alpha * logit)``, so training moves each category between mean
  (``alpha = 0``) and max (``alpha`` large) as its video labels demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import torch
from torch import nn

from ..config import ConfigError, from_dict
from ..models.base import InnerBackend, InnerModel, ModerationModel, pool_windows
from ..models.registry import get_model_class, register_model, stored_minimum_parameters
from ..processing import Processor
from .processors import VideoProcessor, VideoProcessorConfig

Aggregation = Literal["max", "mean", "topk_mean", "attention"]


@dataclass
class VideoModelConfig:
    # The frame model, as a recipe's model block (name + fields): image, onnx or ocr_text.
    frames: dict[str, Any] | None = None
    # Or a trained image checkpoint directory whose model scores the frames.
    frames_checkpoint: str | None = None
    # The frame model's stored config (name + fields); written by checkpoints.
    frame_model: dict[str, Any] | None = None
    aggregation: Aggregation = "max"
    # Frames averaged by topk_mean (fewer when a video has fewer frames).
    topk: int = 3

    def __post_init__(self) -> None:
        given = [name for name in ("frames", "frames_checkpoint", "frame_model") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("video needs exactly one of model.frames (a frame model block, e.g. {name: image, "
                             f"arch: small_cnn}}) and model.frames_checkpoint (a trained image model); got "
                             f"{given or 'neither'}")
        if self.frames is not None and "name" not in self.frames:
            raise ValueError("model.frames needs a name (image, onnx or ocr_text)")
        if self.topk < 1:
            raise ValueError(f"model.topk must be >= 1, got {self.topk}")


def _frame_processor_config(config: VideoModelConfig) -> dict[str, Any]:
    from ..checkpoint import load_processor

    if config.frames is not None:
        params = dict(config.frames)
        return get_model_class(str(params.pop("name"))).processor_defaults(params)
    return load_processor(Path(str(config.frames_checkpoint))).to_config()


def pool_frames(frame_logits: torch.Tensor, frame_rows: torch.Tensor, aggregation: Aggregation, topk: int,
                alpha: torch.Tensor | None = None) -> torch.Tensor:
    """Frame logits ``[frames, C]`` -> video logits ``[videos, C]`` (``frame_rows`` ascending)."""
    if aggregation == "max":
        return pool_windows(frame_logits, frame_rows)
    counts = torch.bincount(frame_rows).tolist()
    pooled = []
    for frames in torch.split(frame_logits, counts):
        if aggregation == "mean":
            pooled.append(frames.mean(0))
        elif aggregation == "topk_mean":
            pooled.append(frames.topk(min(topk, len(frames)), dim=0).values.mean(0))
        else:
            weights = torch.softmax(alpha * frames, dim=0)
            pooled.append((weights * frames).sum(0))
    return torch.stack(pooled)


@register_model("video")
class VideoModel(ModerationModel):
    """Frame model + pooling over each video's frames."""

    config_class = VideoModelConfig
    default_processor = "video"
    path_fields = ("frames_checkpoint",)
    exportable = False

    def __init__(self, config: VideoModelConfig, num_labels: int, frames: ModerationModel | None = None) -> None:
        super().__init__(config, num_labels)
        if frames is None:
            raise ConfigError("video is built by create_model or loaded from a checkpoint")
        if frames.num_labels != num_labels:
            raise ConfigError(f"model.frames_checkpoint scores {frames.num_labels} categories, the run {num_labels}")
        self.frames = frames
        # Auto-pool starts at 1 (between mean and max): the logit scale of frames decides the rest.
        self.alpha = nn.Parameter(torch.ones(num_labels)) if config.aggregation == "attention" else None
        self._backend: InnerBackend | None = None
        self._frame_scorer: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None

    def use_inner_backend(self, backend: InnerBackend | None) -> None:
        self._backend, self._frame_scorer = backend, None

    def score_frames(self, frame_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Frame logits; in inference, by the runner's backend for the frame model (ONNX Runtime for a
        CNN on a CPU, set up on the first batch), else PyTorch."""
        if self._backend is not None and not self.training and not torch.is_grad_enabled():
            if self._frame_scorer is None:
                self._frame_scorer = self._backend(self.frames, frame_batch)
                if self._frame_scorer is None:  # the backend keeps PyTorch for this model
                    self._backend = None
            if self._frame_scorer is not None:
                return self._frame_scorer(frame_batch)
        return self.frames(**frame_batch)

    @property
    def has_sparse_gradients(self) -> bool:  # type: ignore[override]
        return self.frames.has_sparse_gradients

    @classmethod
    def processor_defaults(cls, model_config: dict[str, Any]) -> dict[str, Any]:
        parsed = from_dict(VideoModelConfig, dict(model_config), where="model")
        if parsed.frame_model:
            return {"name": cls.default_processor}
        return {"name": cls.default_processor, "frame": _frame_processor_config(parsed)}

    @classmethod
    def inner_models(cls, config: VideoModelConfig) -> dict[str, InnerModel]:
        if config.frames is not None:
            return {"frames": InnerModel(block=config.frames, processor_part="frame")}
        return {"frames": InnerModel(checkpoint=str(config.frames_checkpoint), processor_part="frame")}

    @classmethod
    def build(cls, config: VideoModelConfig, num_labels: int, processor: Processor | None = None,
              inner: Mapping[str, ModerationModel] | None = None) -> VideoModel:
        if not isinstance(processor, VideoProcessor):
            raise ConfigError("model video scores sampled frames: its processor is video")
        frames = (inner or {})["frames"]
        config.frame_model = frames.checkpoint_config()
        return cls(config, num_labels, frames)

    def forward(self, frame_rows: torch.Tensor, with_parts: bool = False, **frame_batch: torch.Tensor):
        """Video logits ``[videos, C]``; ``with_parts``: also the frame logits ``[frames, C]`` and
        the video of each frame."""
        frame_logits, frame_rows = self.part_logits(frame_rows=frame_rows, **frame_batch)
        pooled = self.pool_parts(frame_logits, frame_rows)
        return (pooled, frame_logits, frame_rows) if with_parts else pooled

    def part_logits(self, frame_rows: torch.Tensor, **frame_batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.score_frames(frame_batch), frame_rows

    def pool_parts(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Frame logits -> video logits, by the configured aggregation: pooled once all of a
        video's frames are in, it gives what one batch of all of them would."""
        return pool_frames(logits, rows, self.config.aggregation, self.config.topk, self.alpha)

    @classmethod
    def minimum_parameters(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> int | None:
        return stored_minimum_parameters(config.get("frame_model"), num_labels, getattr(processor, "frame", None))

    def checkpoint_config(self) -> dict[str, Any]:
        return {"name": self.registry_name, "frame_model": self.frames.checkpoint_config(),
                "aggregation": self.config.aggregation, "topk": self.config.topk}

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> ModerationModel:
        parsed = from_dict(VideoModelConfig, config, where="config.json: model")
        if not parsed.frame_model or not isinstance(processor, VideoProcessor):
            raise ConfigError("model.frame_model: a video checkpoint stores its frame model and a video processor")
        member = dict(parsed.frame_model)
        frames = get_model_class(str(member.pop("name", ""))).from_checkpoint(member, num_labels, processor.frame)
        return cls(parsed, num_labels, frames)


def video_classifier(frames_checkpoint: str | Path, sampler: dict[str, Any] | None = None,
                     segments: dict[str, Any] | None = None, aggregation: Aggregation = "max", topk: int = 3,
                     **load_options: Any):
    """A :class:`~modelkit.Classifier` for videos from a trained image checkpoint, untrained further:
    its frame scores, thresholds and temperatures are the image model's, and with ``max`` pooling a
    video is flagged when one frame is.

    >>> clf = video_classifier("runs/image-nsfw", sampler={"fps": 2, "max_frames": 120})
    >>> clf.predict(["clip.mp4"])[0].segments
    """
    from ..checkpoint import load_checkpoint
    from ..classifier import Classifier

    image = load_checkpoint(frames_checkpoint)
    config = from_dict(VideoProcessorConfig, {"frame": image.processor.to_config(), "sampler": sampler or {},
                                              "segments": segments or {}}, where="video_classifier")
    processor = VideoProcessor(config, {"frame": image.processor})
    model_config = VideoModelConfig(frame_model=image.model.checkpoint_config(), aggregation=aggregation, topk=topk)
    model = VideoModel(model_config, image.model.num_labels, image.model)
    return Classifier(model, processor, image.policy, metrics=image.metrics, calibration=image.calibration,
                      **load_options)
