"""Training losses: independent sigmoids (multi-label) or one softmax (one category per row)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import ConfigError
from .recipe import TrainConfig


def positive_weights(labels: np.ndarray, mode: str, max_weight: float) -> torch.Tensor | None:
    """Per-category weight for positive examples, from label frequencies in the training set.

    ``balanced`` makes positives and negatives of each category weigh the same in total;
    ``sqrt`` is a gentler version. Capped at ``max_weight`` so that a category with a handful of
    positives cannot dominate the loss.
    """
    if mode == "none":
        return None
    positives = labels.sum(axis=0)
    negatives = len(labels) - positives
    ratio = negatives / np.maximum(positives, 1.0)
    if mode == "sqrt":
        ratio = np.sqrt(ratio)
    return torch.tensor(np.clip(ratio, 1.0 / max_weight, max_weight), dtype=torch.float32)


class MultiLabelLoss(nn.Module):
    """Binary cross-entropy on logits, one independent term per category."""

    def __init__(self, pos_weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("pos_weight", pos_weight, persistent=False)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        targets = labels.float() * (1 - self.label_smoothing) + self.label_smoothing / 2
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=self.pos_weight)


class ExclusiveLoss(nn.Module):
    """Softmax cross-entropy over the categories plus a 'none' class whose logit is fixed at 0.

    For data sets with one category per row at most (ChineseHarm-Bench's six classes): the
    classes compete for the row instead of each being learnt against all others alone. The
    model's score stays ``sigmoid(logit)``, which here is the softmax restricted to {category,
    none}; at threshold 0.5 the decision is the argmax over the categories and 'none'.

    Labels may be soft (a teacher's distribution over the categories, 'none' taking the rest):
    a one-hot row gives the same loss as the class index would.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        with_none = torch.cat([logits, logits.new_zeros(len(logits), 1)], dim=1)
        labels = labels.float()
        target = torch.cat([labels, (1.0 - labels.sum(dim=1, keepdim=True)).clamp_min(0.0)], dim=1)
        return nn.functional.cross_entropy(with_none, target, label_smoothing=self.label_smoothing)


def teacher_targets(scores: np.ndarray, loss: str, temperature: float = 1.0) -> np.ndarray:
    """A teacher's scores (one sigmoid per category) as the targets ``loss`` learns from.

    ``bce``: each category's sigmoid of the tempered logit. ``exclusive``: the softmax over the
    categories and a 'none' logit of 0 (what :class:`ExclusiveLoss` computes), 'none' left implicit.
    """
    scores = np.clip(np.asarray(scores, dtype=np.float64), 1e-7, 1 - 1e-7)
    logits = (np.log(scores) - np.log1p(-scores)) / temperature
    if loss == "exclusive":
        with_none = np.concatenate([logits, np.zeros((len(logits), 1))], axis=1)
        weights = np.exp(with_none - with_none.max(axis=1, keepdims=True))
        return (weights / weights.sum(axis=1, keepdims=True))[:, :-1].astype(np.float32)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def build_loss(config: TrainConfig, labels: np.ndarray) -> nn.Module:
    """The recipe's ``train.loss`` for these training labels."""
    if config.loss == "exclusive":
        rows = np.flatnonzero(labels.sum(axis=1) > 1)
        if rows.size:
            raise ConfigError(
                f"train.loss: exclusive needs at most one category per row; training row {int(rows[0])} "
                f"has {int(labels[rows[0]].sum())} (use loss: bce for multi-label data)"
            )
        return ExclusiveLoss(config.label_smoothing)
    return MultiLabelLoss(positive_weights(labels, config.pos_weight, config.max_pos_weight), config.label_smoothing)
