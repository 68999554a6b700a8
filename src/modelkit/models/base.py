"""What every modelkit model shares: a multi-label head and the checkpoint hooks.

A model owns its preprocessing (``model.preprocessor``), so training, evaluation and inference
all turn raw inputs into tensors through the same object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, Sequence

import torch
from torch import nn

from ..config import from_dict, to_dict


class Preprocessor(Protocol):
    """Raw inputs (texts, image paths, ...) -> a batch of tensors for ``model(**batch)``."""

    def check(self, inputs: Sequence[Any]) -> list[Any]:
        """Validate a whole input list up front; errors name the position in it."""
        ...

    def __call__(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]: ...


class MultiLabelHead(nn.Module):
    """Pooled features -> one logit per category (sigmoid, never softmax)."""

    def __init__(self, in_features: int, num_labels: int, hidden_dim: int = 0, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
        if hidden_dim:
            layers += [nn.Linear(in_features, hidden_dim), nn.GELU()]
            layers += [nn.Dropout(dropout)] if dropout else []
            in_features = hidden_dim
        layers.append(nn.Linear(in_features, num_labels))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class ModerationModel(nn.Module):
    """Base class for registered models.

    Subclasses set ``config_class`` (a dataclass) and ``modality``, build their layers and
    ``self.preprocessor`` in ``__init__(config, num_labels)``, and return logits from
    ``forward(**batch)``. Models with files beside the weights (a tokenizer) override
    :meth:`save_assets` and :meth:`from_checkpoint`.
    """

    config_class: ClassVar[type]
    modality: ClassVar[str]
    registry_name: ClassVar[str] = ""
    # True for models whose embedding tables produce sparse gradients (see training/optim.py).
    has_sparse_gradients: ClassVar[bool] = False
    preprocessor: Preprocessor

    def __init__(self, config: Any, num_labels: int) -> None:
        super().__init__()
        self.config = config
        self.num_labels = num_labels

    def checkpoint_config(self) -> dict[str, Any]:
        """The config to store in ``config.json``: enough to rebuild the model offline."""
        return {"name": self.registry_name, **to_dict(self.config)}

    def save_assets(self, directory: Path) -> list[str]:
        """Write files other than the weights; return their names relative to ``directory``."""
        return []

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], num_labels: int, directory: Path) -> ModerationModel:
        """Build an untrained model of the stored architecture (weights are loaded after)."""
        return cls(from_dict(cls.config_class, config, where="config.json: model"), num_labels)

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: no decay on biases, norms and embeddings."""
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            skip = param.ndim < 2 or "norm" in name.lower() or "embedding" in name.lower()
            (no_decay if skip else decay).append(param)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
