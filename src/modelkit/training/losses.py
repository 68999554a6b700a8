"""Losses for multi-label training."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


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

    def __init__(self, pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("pos_weight", pos_weight, persistent=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=self.pos_weight)
