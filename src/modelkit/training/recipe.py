"""Run configs ("recipes"): the YAML a user passes to ``modelkit train``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..config import ConfigError, apply_overrides, from_dict, read_yaml, to_dict
from ..data.augment import AugmentConfig
from ..data.records import DataConfig
from ..models.registry import get_model_class
from ..taxonomy import Taxonomy


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    eval_batch_size: int = 512
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    grad_accum_steps: int = 1
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    max_grad_norm: float | None = 1.0
    # Up-weights positives of rare categories in the loss: balanced = n_neg / n_pos, sqrt = its root.
    pos_weight: Literal["none", "balanced", "sqrt"] = "none"
    max_pos_weight: float = 20.0
    early_stopping_patience: int = 3
    # Fit per-category F1-maximising thresholds on dev; otherwise every threshold is 0.5.
    tune_thresholds: bool = False
    seed: int = 0
    # Batch training rows of similar length (text): far less padding for transformer models.
    group_by_length: bool = False
    num_workers: int = 0
    log_every: int = 50

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "grad_accum_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"train.learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.early_stopping_patience < 0:
            raise ValueError("train.early_stopping_patience must be >= 0 (0 turns it off)")


@dataclass
class RunConfig:
    data: DataConfig
    model: dict[str, Any] = field(default_factory=lambda: {"name": "ngram"})
    train: TrainConfig = field(default_factory=TrainConfig)
    # Training-time evasion attacks on text inputs (modelkit.data.augment); off by default.
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    output_dir: str = "runs/default"
    # "default", a YAML path, or the taxonomy itself inline.
    taxonomy: str | dict[str, Any] = "default"
    # Categories to train (default: the taxonomy's enabled ones), in output order.
    categories: list[str] | None = None

    def build_taxonomy(self) -> Taxonomy:
        if isinstance(self.taxonomy, dict):
            base = Taxonomy.from_dict(self.taxonomy, where="taxonomy")
        else:
            base = Taxonomy.load(self.taxonomy)
        return base.subset(self.categories) if self.categories else base.enabled()

    def model_kwargs(self) -> tuple[str, dict[str, Any]]:
        params = dict(self.model)
        return str(params.pop("name", "ngram")), params

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_run_config(
    source: str | Path | dict[str, Any],
    overrides: list[str] | None = None,
    data_root: str | Path | None = None,
) -> RunConfig:
    """Read a recipe, apply ``--set`` overrides, validate every block and resolve data paths.

    Relative data paths are taken from ``data_root`` when given. A relative taxonomy path is
    looked up beside the recipe file when it does not exist from the working directory.
    """
    if isinstance(source, dict):
        raw, where, base_dir = dict(source), "config", None
    else:
        raw, where, base_dir = read_yaml(source), str(source), Path(source).parent
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping at the top level")
    apply_overrides(raw, overrides or [])
    config = from_dict(RunConfig, raw, where=f"{where}: ")
    name, params = config.model_kwargs()
    try:
        model_class = get_model_class(name)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    from_dict(model_class.config_class, params, where=f"{where}: model")
    if isinstance(config.taxonomy, str) and config.taxonomy != "default" and base_dir is not None:
        candidate = Path(config.taxonomy)
        if not candidate.exists() and (base_dir / candidate).exists():
            config.taxonomy = str(base_dir / candidate)
    if data_root is not None:
        for split in ("train", "dev", "test"):
            value = getattr(config.data, split)
            if value and not Path(value).is_absolute():
                setattr(config.data, split, str(Path(data_root) / value))
    try:
        config.build_taxonomy()
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return config


def dump_run_config(config: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), allow_unicode=True, sort_keys=False), encoding="utf-8")
