"""Score ensembles: several trained models of one modality, logits averaged with fixed weights.

Members keep their own preprocessing (an ``ngram`` model and a ``transformer`` see the same
texts through different normalisers and tokenisers); the ensemble's preprocessor runs each and
namespaces the tensors, so an ensemble is an ordinary model for the classifier, the evaluation
code and the checkpoint format. Members are trained one by one (``ensemble:`` in a recipe, see
``modelkit.training.ensemble``) and assembled afterwards; they are never trained jointly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..config import ConfigError, from_dict
from .base import ModerationModel
from .registry import get_model_class, register_model

_SEPARATOR = "."


@dataclass
class EnsembleConfig:
    # Each member's stored model config (``name`` + its parameters), as in a checkpoint.
    members: list[dict[str, Any]] = field(default_factory=list)
    # Weights of the member logits in the average (default: equal); normalised to sum to 1.
    weights: list[float] | None = None

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ValueError(f"members: an ensemble needs at least 2 members, got {len(self.members)}")
        for index, member in enumerate(self.members):
            if not member.get("name"):
                raise ValueError(f"members[{index}]: missing the model 'name'")
            if member["name"] == "ensemble":
                raise ValueError(f"members[{index}]: ensembles cannot be nested")
        if self.weights is not None:
            if len(self.weights) != len(self.members):
                raise ValueError(f"weights: {len(self.weights)} weights for {len(self.members)} members")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(f"weights: must be >= 0 with a positive sum, got {self.weights}")

    def normalised_weights(self) -> list[float]:
        weights = self.weights or [1.0] * len(self.members)
        return [w / sum(weights) for w in weights]


class EnsemblePreprocessor:
    """Runs every member's preprocessor; tensor names get a ``"<member index>."`` prefix."""

    def __init__(self, members: Sequence[ModerationModel]) -> None:
        self.members = list(members)

    def check(self, inputs: Sequence[Any]) -> list[Any]:
        checked = list(inputs)
        for member in self.members:
            checked = member.preprocessor.check(checked)
        return checked

    def __call__(self, inputs: Sequence[Any]) -> dict[str, torch.Tensor]:
        batch = {}
        for index, member in enumerate(self.members):
            batch.update({f"{index}{_SEPARATOR}{k}": v for k, v in member.preprocessor(inputs).items()})
        return batch


@register_model("ensemble")
class EnsembleModel(ModerationModel):
    """Weighted mean of member logits; build it with :meth:`from_members` or load a checkpoint."""

    config_class = EnsembleConfig
    modality = "text"

    def __init__(self, config: EnsembleConfig, num_labels: int, members: Sequence[ModerationModel] | None = None):
        super().__init__(config, num_labels)
        if members is None:
            raise ConfigError(
                "model.name: ensemble is assembled from trained members; use an 'ensemble:' block "
                "in the recipe (members are trained one by one), or EnsembleModel.from_members"
            )
        modalities = {m.modality for m in members}
        if len(modalities) != 1:
            raise ConfigError(f"ensemble: members mix modalities {sorted(modalities)}")
        if any(m.num_labels != num_labels for m in members):
            raise ConfigError("ensemble: every member must score the same categories")
        self.modality = modalities.pop()
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor(config.normalised_weights(), dtype=torch.float32), persistent=False)
        self.preprocessor = EnsemblePreprocessor(members)

    @classmethod
    def from_members(cls, members: Sequence[ModerationModel], weights: Sequence[float] | None = None) -> EnsembleModel:
        config = EnsembleConfig([m.checkpoint_config() for m in members], list(weights) if weights else None)
        return cls(config, members[0].num_labels, members)

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        logits = []
        for index, member in enumerate(self.members):
            prefix = f"{index}{_SEPARATOR}"
            logits.append(member(**{k[len(prefix):]: v for k, v in batch.items() if k.startswith(prefix)}).float())
        return torch.einsum("m,mbc->bc", self.weights, torch.stack(logits))

    def checkpoint_config(self) -> dict[str, Any]:
        return {
            "name": self.registry_name,
            "members": [m.checkpoint_config() for m in self.members],
            "weights": self.config.normalised_weights(),
        }

    def save_assets(self, directory: Path) -> list[str]:
        # Each member's files (a tokenizer) live in their own folder so their names cannot clash.
        saved = []
        for index, member in enumerate(self.members):
            folder = directory / _member_folder(index)
            folder.mkdir(parents=True, exist_ok=True)
            saved += [f"{_member_folder(index)}/{name}" for name in member.save_assets(folder)]
        return saved

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], num_labels: int, directory: Path) -> ModerationModel:
        parsed = from_dict(EnsembleConfig, config, where="config.json: model")
        members = []
        for index, member_config in enumerate(parsed.members):
            member_config = dict(member_config)
            member_class = get_model_class(str(member_config.pop("name")))
            folder = directory / _member_folder(index)
            members.append(member_class.from_checkpoint(member_config, num_labels, folder))
        return cls(parsed, num_labels, members)


def _member_folder(index: int) -> str:
    return f"member-{index}"
