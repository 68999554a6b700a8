"""Text classifiers: a fast hashed n-gram model and any ``transformers`` encoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

import torch
from torch import nn

from ..config import ConfigError
from ..models.base import ModerationModel, MultiLabelHead, pool_windows, whole_numbers
from ..models.registry import register_model
from ..processing import Processor
from .features import NgramFeatureConfig
from .pretrained import resolve_backbone
from .processors import TOKENIZER_FOLDER, NgramProcessor


# --------------------------------------------------------------------------------------------
# ngram: hashed character + word n-grams -> EmbeddingBag -> head
# --------------------------------------------------------------------------------------------
@dataclass
class NgramConfig:
    embed_dim: int = 64
    hidden_dim: int = 0
    dropout: float = 0.0
    # sqrt (default): sum / sqrt(n), so one abusive sentence in a long post is not averaged away;
    # mean: plain average of the n-gram vectors.
    pooling: Literal["mean", "sqrt"] = "sqrt"
    # Fraction of a text's n-grams dropped at random in training: keeps the model from leaning
    # on rare n-grams that identify single training rows.
    ngram_dropout: float = 0.0
    # Rows of the embedding table: the processor's features.num_buckets (unset: taken from it).
    num_buckets: int | None = None

    def __post_init__(self) -> None:
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {self.embed_dim}")
        for name in ("dropout", "ngram_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


@register_model("ngram")
class NgramTextModel(ModerationModel):
    """fastText-style classifier: pooled hashed n-gram embeddings, then a multi-label head.

    Trains in minutes on a CPU and needs no tokenizer files; character n-grams make it work on
    Chinese without word segmentation.
    """

    config_class = NgramConfig
    default_processor = "text_ngram"
    has_sparse_gradients = True
    pools_windows = True

    def __init__(self, config: NgramConfig, num_labels: int) -> None:
        super().__init__(config, num_labels)
        buckets = config.num_buckets or NgramFeatureConfig().num_buckets
        self.embedding = nn.EmbeddingBag(buckets, config.embed_dim, mode="sum", sparse=True)
        nn.init.uniform_(self.embedding.weight, -0.5 / config.embed_dim, 0.5 / config.embed_dim)
        self.head = MultiLabelHead(config.embed_dim, num_labels, config.hidden_dim, config.dropout)

    @classmethod
    def build(cls, config: NgramConfig, num_labels: int, processor: Processor | None = None,
              inner: Mapping[str, ModerationModel] | None = None) -> NgramTextModel:
        if processor is not None:
            if not isinstance(processor, NgramProcessor):
                raise ConfigError(f"model ngram reads hashed n-grams (processor text_ngram), not {processor.name!r}")
            if config.num_buckets is None:
                config.num_buckets = processor.num_buckets
            elif config.num_buckets != processor.num_buckets:
                raise ConfigError(f"model.num_buckets {config.num_buckets} differs from the processor's "
                                  f"features.num_buckets {processor.num_buckets}")
        return cls(config, num_labels)

    def forward(self, input_ids: torch.Tensor, offsets: torch.Tensor, window_rows: torch.Tensor) -> torch.Tensor:
        return pool_windows(*self.part_logits(input_ids=input_ids, offsets=offsets, window_rows=window_rows))

    def part_logits(self, input_ids: torch.Tensor, offsets: torch.Tensor,
                    window_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Pooling as a weighted sum: each kept n-gram weighs 1/n (mean) or 1/sqrt(n) of its bag.
        counts = torch.diff(offsets, append=offsets.new_tensor([input_ids.numel()]))
        bag = torch.repeat_interleave(torch.arange(counts.numel(), device=offsets.device), counts)
        keep = torch.ones(input_ids.shape, dtype=torch.float32, device=input_ids.device)
        if self.training and self.config.ngram_dropout:
            keep = (torch.rand_like(keep) >= self.config.ngram_dropout).float()
        kept = torch.zeros(counts.numel(), device=keep.device).index_add_(0, bag, keep).clamp_(min=1.0)
        norm = kept if self.config.pooling == "mean" else kept.sqrt()
        weights = keep / norm[bag]
        return self.head(self.embedding(input_ids, offsets, per_sample_weights=weights)), window_rows

    def window_logits(self, input_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        # forward's pooling in operations ONNX has (no EmbeddingBag, diff or repeat_interleave);
        # every bag holds at least its text's start and end markers, so no bag is empty.
        starts = torch.zeros_like(input_ids).scatter(0, offsets, torch.ones_like(offsets))
        bag = torch.cumsum(starts, 0) - 1
        counts = torch.zeros_like(offsets).scatter_add(0, bag, torch.ones_like(bag)).float()
        norm = counts if self.config.pooling == "mean" else counts.sqrt()
        vectors = self.embedding.weight[input_ids] / norm[bag].unsqueeze(1)
        pooled = torch.zeros_like(offsets, dtype=vectors.dtype).unsqueeze(1).repeat(1, vectors.shape[1])
        pooled = pooled.scatter_add(0, bag.unsqueeze(1).expand_as(vectors), vectors)
        return self.head(pooled)

    @classmethod
    def minimum_parameters(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> int | None:
        defaults = {"embed_dim": 64, "hidden_dim": 0, "num_buckets": getattr(processor, "num_buckets", 0)}
        if config.get("num_buckets") is None:
            config = {**config, "num_buckets": defaults["num_buckets"]}
        sizes = whole_numbers(config, "num_buckets", "embed_dim", "hidden_dim", defaults=defaults)
        if sizes is None:
            return None
        buckets, embed, hidden = sizes
        return buckets * embed + (embed * hidden + hidden * num_labels if hidden else embed * num_labels)

    @classmethod
    def split_legacy_config(cls, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        config = dict(config)
        processor = {"name": "text_ngram"}
        for key in ("normalizer", "features"):
            if key in config:
                processor[key] = config.pop(key)
        config["num_buckets"] = (processor.get("features") or {}).get("num_buckets", NgramFeatureConfig().num_buckets)
        return config, processor


# --------------------------------------------------------------------------------------------
# transformer: any AutoModel encoder -> pooling -> head
# --------------------------------------------------------------------------------------------
@dataclass
class TransformerConfig:
    # Hub id or local directory of pretrained weights, read when training starts. A checkpoint
    # keeps it only as a record: it is rebuilt from backbone_config and its own weights.
    backbone: str | None = None
    backbone_config: dict[str, Any] | None = None
    pooling: Literal["cls", "mean"] = "mean"
    freeze_backbone: bool = False
    hidden_dim: int = 0
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.backbone is None and self.backbone_config is None:
            raise ValueError("model.backbone (hub id or local directory) or model.backbone_config is required")
        if self.backbone_config is not None and "model_type" not in self.backbone_config:
            raise ValueError("model.backbone_config needs a 'model_type' (e.g. bert)")


@register_model("transformer")
class TransformerTextModel(ModerationModel):
    """A ``transformers`` encoder (hub id or local directory) with a multi-label head."""

    config_class = TransformerConfig
    default_processor = "text_tokenizer"
    # PyTorch stays the CPU default: ONNX Runtime is only 3 % faster on MiniLM (COLD dev, 2 cores:
    # 112.5 against 108.9 texts/s, scripts/benchmark_inference.py) and tracing the encoder on the
    # first batch costs 5-10 s. For long runs: modelkit export, or backend="onnx".
    pools_windows = True

    def __init__(self, config: TransformerConfig, num_labels: int) -> None:
        super().__init__(config, num_labels)
        from transformers import AutoConfig, AutoModel

        if config.backbone_config is not None:
            backbone_config = AutoConfig.for_model(**config.backbone_config)
            self.backbone = AutoModel.from_config(backbone_config)
        else:
            self.backbone = AutoModel.from_pretrained(resolve_backbone(config.backbone))
        if config.freeze_backbone:
            self.backbone.requires_grad_(False)
        hidden = self.backbone.config.hidden_size
        self.head = MultiLabelHead(hidden, num_labels, config.hidden_dim, config.dropout)

    @classmethod
    def processor_defaults(cls, model_config: dict[str, Any]) -> dict[str, Any]:
        # The tokenizer that belongs to the backbone, unless the recipe names another.
        return {"name": cls.default_processor, "tokenizer": model_config.get("backbone")}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, window_rows: torch.Tensor) -> torch.Tensor:
        return pool_windows(self.window_logits(input_ids, attention_mask), window_rows)

    def window_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.config.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)

    def checkpoint_config(self) -> dict[str, Any]:
        # The stored architecture rebuilds the backbone without touching the hub or any folder.
        return {**super().checkpoint_config(), "backbone_config": self.backbone.config.to_dict()}

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> ModerationModel:
        if not isinstance(config.get("backbone_config"), dict):
            raise ConfigError("model.backbone_config: missing; a checkpoint must store its backbone architecture "
                              "(its weights are in model.safetensors, never read from model.backbone)")
        return super().from_checkpoint(config, num_labels, processor)

    @classmethod
    def minimum_parameters(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> int | None:
        backbone = config.get("backbone_config")
        if not isinstance(backbone, dict):
            return None
        sizes = whole_numbers(backbone, "vocab_size", "hidden_size", "num_hidden_layers",
                              defaults={"num_hidden_layers": 0})
        if sizes is None:
            return None
        vocabulary, hidden, layers = sizes
        # Token embeddings, and at least one hidden x hidden matrix per layer (ALBERT shares its
        # layers, so their count costs time, not weights).
        shared = backbone.get("model_type") == "albert"
        return vocabulary * hidden + (0 if shared else layers * hidden * hidden) + hidden * num_labels

    @classmethod
    def split_legacy_config(cls, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        config = dict(config)
        processor = {"name": "text_tokenizer", "tokenizer": config.pop("tokenizer", None) or TOKENIZER_FOLDER}
        for key in ("normalizer", "max_length"):
            if key in config:
                processor[key] = config.pop(key)
        return config, processor
