"""Score ensembles: several trained models of one modality, logits averaged with fixed weights.

Members keep their own processors (an ``ngram`` model and a ``transformer`` see the same texts
through different normalisers and tokenisers): the ensemble's processor runs each and
namespaces the tensors, so an ensemble is an ordinary model + processor pair for the
classifier, the evaluation code and the checkpoint format, whatever the modality. Members are
trained one by one (``ensemble:`` in a recipe, see ``modelkit.training.ensemble``) and
assembled afterwards; they are never trained jointly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..config import ConfigError, from_dict
from ..processing import CompositeProcessor, Processor, register_processor
from .base import ModerationModel
from .registry import get_model_class, register_model, stored_minimum_parameters

_SEPARATOR = "."


def _member_folder(index: int) -> str:
    return f"member-{index}"


@dataclass
class EnsembleProcessorConfig:
    # Each member's stored processor config (``name`` + its fields), as in a checkpoint.
    members: list[dict[str, Any]] = field(default_factory=list)


@register_processor("ensemble")
class EnsembleProcessor(CompositeProcessor):
    """Runs every member's processor; tensor names get a ``"<member index>."`` prefix."""

    config_class = EnsembleProcessorConfig

    @classmethod
    def part_configs(cls, config: EnsembleProcessorConfig) -> dict[str, dict[str, Any]]:
        return {_member_folder(index): member for index, member in enumerate(config.members)}

    def check_parts(self) -> None:
        if len(self.parts) < 2:
            raise ConfigError(f"processor.members: an ensemble needs at least 2 member processors, got {len(self.parts)}")
        modalities = {m.modality for m in self.members}
        if len(modalities) != 1:
            raise ConfigError(f"ensemble: members read different modalities {sorted(modalities)}")
        self.modality = modalities.pop()

    @property
    def members(self) -> list[Processor]:
        return list(self.parts.values())

    @classmethod
    def from_members(cls, members: Sequence[Processor]) -> EnsembleProcessor:
        return cls(EnsembleProcessorConfig([m.to_config() for m in members]),
                   {_member_folder(index): member for index, member in enumerate(members)})

    def decode(self, raw: Any, labels: np.ndarray | None = None, rng: random.Random | None = None) -> tuple:
        return tuple(member.decode(raw, labels, rng) for member in self.members)

    def collate(self, items: Sequence[tuple]) -> dict[str, torch.Tensor]:
        batch = {}
        for index, member in enumerate(self.members):
            member_batch = member.collate([item[index] for item in items])
            batch.update({f"{index}{_SEPARATOR}{k}": v for k, v in member_batch.items()})
        return batch

    def length(self, raw: Any) -> int | None:
        return self.members[0].length(raw)

    def evidence(self, item: tuple) -> dict[str, Any] | None:
        return next((evidence for member, part in zip(self.members, item)
                     if (evidence := member.evidence(part)) is not None), None)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "members": [m.to_config() for m in self.members]}


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


@register_model("ensemble")
class EnsembleModel(ModerationModel):
    """Weighted mean of member logits; build it with :meth:`from_members` or load a checkpoint."""

    config_class = EnsembleConfig
    default_processor = "ensemble"
    exportable = False

    def __init__(self, config: EnsembleConfig, num_labels: int, members: Sequence[ModerationModel] | None = None):
        super().__init__(config, num_labels)
        if members is None:
            raise ConfigError(
                "model.name: ensemble is assembled from trained members; use an 'ensemble:' block "
                "in the recipe (members are trained one by one), or EnsembleModel.from_members"
            )
        if any(m.num_labels != num_labels for m in members):
            raise ConfigError("ensemble: every member must score the same categories")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor(config.normalised_weights(), dtype=torch.float32), persistent=False)

    @classmethod
    def from_members(cls, members: Sequence[ModerationModel], processors: Sequence[Processor],
                     weights: Sequence[float] | None = None) -> tuple[EnsembleModel, EnsembleProcessor]:
        """The ensemble of trained ``members`` and its processor (one member processor each)."""
        config = EnsembleConfig([m.checkpoint_config() for m in members], list(weights) if weights else None)
        return cls(config, members[0].num_labels, members), EnsembleProcessor.from_members(processors)

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

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> ModerationModel:
        parsed = from_dict(EnsembleConfig, config, where="config.json: model")
        if not isinstance(processor, EnsembleProcessor) or len(processor.members) != len(parsed.members):
            raise ConfigError(f"model.members: {len(parsed.members)} members need an ensemble processor with as many")
        members = []
        for member_config, member_processor in zip(parsed.members, processor.members):
            member_config = dict(member_config)
            member_class = get_model_class(str(member_config.pop("name")))
            members.append(member_class.from_checkpoint(member_config, num_labels, member_processor))
        return cls(parsed, num_labels, members)

    @classmethod
    def minimum_parameters(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> int | None:
        members = config.get("members")
        if not isinstance(members, list) or not isinstance(processor, EnsembleProcessor) or \
                len(members) != len(processor.members):
            return None
        return sum(stored_minimum_parameters(member, num_labels, member_processor) or 0
                   for member, member_processor in zip(members, processor.members))

    @classmethod
    def split_legacy_config(cls, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        models, processors = [], []
        for member in config.get("members") or []:
            member = dict(member)
            name = str(member.pop("name", ""))
            model, processor = get_model_class(name).split_legacy_config(member)
            models.append({"name": name, **model})
            processors.append(processor)
        return {"members": models, "weights": config.get("weights")}, {"name": "ensemble", "members": processors}
