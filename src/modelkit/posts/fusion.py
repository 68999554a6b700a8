"""Fusion: a post's part scores -> one score per category.

``max`` (a post violates when one part does) and ``noisy_or`` (independent parts, each a chance
of a violation: ``1 - prod(1 - s)``) need no training. ``learned`` is a late-fusion head trained
from post-level labels on the members' scores, which can flag a caption and a picture that are
each below their threshold but together a violation. It is an ordinary modelkit model
(``late_fusion``) reading the ``part_scores`` input, so the common trainer, recipes, threshold
tuning, checkpoints and ``modelkit evaluate`` serve it unchanged.

A post's ``part_scores`` are one row per slot (the moderator's members: ``text``, ``image``,
``ocr_text``, ``video``, ``text.<field>``), one column per category: the slot's highest score
over the post's parts it read, or ``null`` where the post has no such part or the member does
not score the category. Absent is an explicit mask in the model, never a zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..config import ConfigError
from ..evaluation.sections import Block, ReportSection, register_report_section
from ..models.base import ModerationModel
from ..models.registry import register_model
from ..processing import Processor, register_modality, register_processor

if TYPE_CHECKING:
    from ..data.records import Records
    from ..outputs import Outputs

FusionRule = Literal["max", "noisy_or", "learned"]
MODALITY = "part_scores"


def fuse(rule: FusionRule, scores: np.ndarray, posts: np.ndarray, count: int) -> np.ndarray:
    """Part scores ``[parts, categories]`` (NaN: absent) of the posts ``posts[i]`` ->
    ``[count, categories]`` by ``max`` or ``noisy_or``; a category no part of a post scored
    stays NaN (nothing read is no score, never a zero)."""
    scores, posts = np.asarray(scores, dtype=np.float64), np.asarray(posts, dtype=np.int64)
    seen = np.zeros((count, scores.shape[1]))
    np.add.at(seen, posts, ~np.isnan(scores))
    if rule == "max":
        fused = np.full(seen.shape, -np.inf)
        np.fmax.at(fused, posts, scores)
    elif rule == "noisy_or":
        kept = np.ones(seen.shape)
        np.multiply.at(kept, posts, 1.0 - np.nan_to_num(scores, nan=0.0))
        fused = 1.0 - kept
    else:
        raise ValueError(f"fusion rule {rule!r} is not a fixed rule; use max or noisy_or")
    fused[seen == 0] = np.nan
    return fused


def check_part_scores(value: Any) -> str | None:
    """A ``part_scores`` input: a list of rows (slots) of equal length, each a number in [0, 1]
    or null (absent)."""
    if not isinstance(value, list) or not value:
        return f"expected a non-empty list of rows of scores, got {type(value).__name__}"
    width = None
    for i, row in enumerate(value):
        if not isinstance(row, list) or (width is not None and len(row) != width):
            return f"row {i}: expected a list of {width or 'some'} scores"
        width = len(row)
        for score in row:
            if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                      or not math.isfinite(score) or not 0.0 <= score <= 1.0):
                return f"row {i}: scores must be numbers in [0, 1] or null, got {score!r}"
    return None


register_modality(MODALITY, check_part_scores)


@dataclass
class PartScoresConfig:
    # The rows of a post's part_scores, in order: the members' names.
    slots: list[str] = field(default_factory=list)
    # member name -> fingerprint of the checkpoint whose scores the head was trained on: a post
    # checkpoint refuses to run on other members (their scores would mean something else).
    members: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.slots:
            raise ValueError("slots: name the members whose scores are the rows (e.g. [text, image])")
        unknown = sorted(set(self.members) - set(self.slots))
        if unknown:
            raise ValueError(f"members: {', '.join(unknown)} are not slots ({', '.join(self.slots)})")


@register_processor("part_scores")
class PartScoresProcessor(Processor):
    """``part_scores`` rows -> ``scores`` and ``mask`` tensors ``[posts, slots, categories]``."""

    modality = MODALITY
    config_class = PartScoresConfig

    def decode_value(self, value: Any, labels: np.ndarray | None, rng: Any) -> tuple[np.ndarray, np.ndarray]:
        if len(value) != len(self.config.slots):
            raise ValueError(f"part_scores has {len(value)} rows; this head reads {len(self.config.slots)} "
                             f"({', '.join(self.config.slots)})")
        scores = np.array([[np.nan if s is None else s for s in row] for row in value], dtype=np.float32)
        return np.nan_to_num(scores, nan=0.5), (~np.isnan(scores)).astype(np.float32)

    def collate(self, items: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
        return {"scores": torch.from_numpy(np.stack([s for s, _ in items])),
                "mask": torch.from_numpy(np.stack([m for _, m in items]))}

    def example_inputs(self) -> list[Any]:
        return [[[0.5] for _ in self.config.slots]]


@dataclass
class LateFusionConfig:
    # Scores are read as logits, clipped this far from 0 and 1 so that a saturated member does not
    # outweigh every other.
    clip: float = 1e-4

    def __post_init__(self) -> None:
        if not 0.0 < self.clip < 0.5:
            raise ValueError(f"clip must be in (0, 0.5), got {self.clip}")


@register_model("late_fusion")
class LateFusionModel(ModerationModel):
    """Per category, a weighted sum of the slots' score logits (a learned weight per slot and
    category, and a learned term for a slot that is absent) plus a bias: logistic regression on
    the members' opinions, which can add two doubts into a conviction."""

    config_class = LateFusionConfig
    default_processor = "part_scores"

    def __init__(self, config: LateFusionConfig, num_labels: int, slots: int = 1) -> None:
        super().__init__(config, num_labels)
        # Start as "the mean of the logits": a sensible fusion before any training.
        self.weight = nn.Parameter(torch.full((slots, num_labels), 1.0 / slots))
        self.absent = nn.Parameter(torch.zeros(slots, num_labels))
        self.bias = nn.Parameter(torch.zeros(num_labels))

    @classmethod
    def build(cls, config: LateFusionConfig, num_labels: int, processor: Processor | None = None,
              inner: Mapping[str, ModerationModel] | None = None) -> LateFusionModel:
        if not isinstance(processor, PartScoresProcessor):
            raise ConfigError("model late_fusion reads part scores (processor part_scores with its slots)")
        return cls(config, num_labels, len(processor.config.slots))

    def forward(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        clip = self.config.clip
        logits = torch.logit(scores.clamp(clip, 1 - clip))
        return (mask * logits * self.weight + (1 - mask) * self.absent).sum(dim=1) + self.bias

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        # A handful of weights that must be free to grow: no decay.
        return [{"params": [p for p in self.parameters() if p.requires_grad], "weight_decay": 0.0}]


def _action_section(outputs: Outputs, records: Records) -> dict[str, Any] | None:
    """Per-action confusion of a post checkpoint's run: the action its labels call for (the most
    severe taxonomy action of a post's true categories, else pass) against the action taken by
    the default post policy (each category's action at its threshold)."""
    if MODALITY not in records.columns or outputs.policy is None or records.labels is None:
        return None
    from .policy import ACTIONS, PostPolicy

    taxonomy = outputs.policy.taxonomy
    policy = PostPolicy.from_config(taxonomy, outputs.policy.thresholds)
    rank = np.array([ACTIONS.index(c.action) for c in taxonomy])
    truth = [ACTIONS[int((rank * row).max(initial=0))] for row in np.asarray(records.labels) > 0]
    taken = [action for action, _ in policy.decide(outputs.scores)]
    confusion = {t: {p: 0 for p in ACTIONS} for t in ACTIONS}
    for t, p in zip(truth, taken):
        confusion[t][p] += 1
    return {"confusion": confusion, "accuracy": float(np.mean([t == p for t, p in zip(truth, taken)])),
            "posts": len(truth)}


def _action_blocks(section: dict[str, Any]) -> list[Block]:
    from .policy import ACTIONS

    rows = [[f"true {t}", *(str(section["confusion"][t][p]) for p in ACTIONS)] for t in ACTIONS]
    return [("heading", 2, "Actions (post level)"),
            ("text", f"{section['posts']} posts; the action taken equals the action the labels call for in "
                     f"{100 * section['accuracy']:.1f} % of them (the default post policy: each category's "
                     "taxonomy action at its threshold)."),
            ("table", ["", *(f"taken {p}" for p in ACTIONS)], rows)]


register_report_section(ReportSection("post_actions", _action_section, _action_blocks))
