"""Run configs ("recipes"): the YAML a user passes to ``modelkit train``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..config import ConfigError, from_dict, read_mapping, to_dict
from ..data.records import DataConfig
from ..checkpoint import load_checkpoint
from ..models.base import InnerModel, ModerationModel
from ..models.registry import create_model, get_model_class
from ..processing import Processor, get_processor_class, list_modalities
from ..recipes import find_recipe
from ..taxonomy import Taxonomy

# What train.select_metric may name: a dev metric to maximise, or the dev loss to minimise.
# classes_*: the one-class-per-row view of data sets whose labels are exclusive ('none' a class).
SELECT_METRICS = ("macro_f1", "micro_f1", "weighted_f1", "accuracy", "macro_roc_auc", "macro_average_precision",
                  "classes_macro_f1", "classes_accuracy", "loss")


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
    # bce: one sigmoid per category (multi-label). exclusive: a softmax over the categories and
    # 'none', for data with one category per row at most.
    loss: Literal["bce", "exclusive"] = "bce"
    # Pulls targets towards 1/2 (bce) or the uniform distribution (exclusive) by this share.
    label_smoothing: float = 0.0
    early_stopping_patience: int = 3
    # Fit per-category F1-maximising thresholds on dev; otherwise every threshold is 0.5.
    tune_thresholds: bool = False
    seed: int = 0
    # > 0: every training input is seen twice per batch, as decoded in eval mode and as the
    # processor augments it in train mode, and this weight times the divergence of the
    # augmented copy's scores from the original's is added to the loss. Doubles the compute.
    consistency: float = 0.0
    # The dev figure that picks the best epoch (and early stopping): a metric, maximised, or
    # "loss", minimised. A dev split without any positive label falls back to the loss.
    # Unset: classes_macro_f1 under loss: exclusive (the argmax decision is what gets used;
    # several categories passing 0.5 at once sinks the multi-label macro-F1 of an epoch that
    # decides well), else macro_f1.
    select_metric: str | None = None
    # Batch training rows of similar size (text length) together: far less padding for
    # transformer models. Needs a processor that knows input sizes.
    group_by_length: bool = False
    num_workers: int = 0
    log_every: int = 50
    # Models that score parts of inputs (video frames), data with timed labels (data.segments_field):
    # this weight times the part-level loss (frames inside a labelled segment are positives, the
    # rest of a labelled video negatives) is added to the input-level loss. 0: input labels only.
    part_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "grad_accum_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"train.learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"train.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.loss == "exclusive" and self.pos_weight != "none":
            raise ValueError("train.pos_weight only applies to loss: bce")
        if self.early_stopping_patience < 0:
            raise ValueError("train.early_stopping_patience must be >= 0 (0 turns it off)")
        if self.part_loss_weight < 0:
            raise ValueError(f"train.part_loss_weight must be >= 0, got {self.part_loss_weight}")
        if self.consistency < 0:
            raise ValueError(f"train.consistency must be >= 0, got {self.consistency}")
        if self.num_workers < 0:
            raise ValueError(f"train.num_workers must be >= 0, got {self.num_workers}")
        if self.select_metric is None:
            self.select_metric = "classes_macro_f1" if self.loss == "exclusive" else "macro_f1"
        if self.select_metric not in SELECT_METRICS:
            raise ValueError(f"train.select_metric must be one of {', '.join(SELECT_METRICS)}, got {self.select_metric!r}")


@dataclass
class EnsembleMember:
    """One member: a recipe file plus ``--set``-style overrides (``[train.seed=1]``)."""

    recipe: str
    set: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.recipe).stem


@dataclass
class EnsembleRecipe:
    """``ensemble:`` block: train each member recipe on this recipe's data, then average logits."""

    # Member recipe files, or {recipe: FILE, set: [KEY=VALUE, ...]} (relative paths are looked
    # up beside this recipe). Each member brings its model, processor and train blocks; data,
    # taxonomy and categories come from the ensemble recipe, and so does the seed of the dev
    # split and folds: every member sees the same splits.
    members: list[str | EnsembleMember]
    weights: list[float] | None = None

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ValueError(f"ensemble.members: need at least 2 member recipes, got {len(self.members)}")
        if self.weights is not None and len(self.weights) != len(self.members):
            raise ValueError(f"ensemble.weights: {len(self.weights)} weights for {len(self.members)} members")
        self.members = [EnsembleMember(m) if isinstance(m, str) else m for m in self.members]


@dataclass
class DistillRecipe:
    """``distill:`` block, read by ``modelkit distill TEACHER RECIPE``: the model learns a teacher
    checkpoint's scores over the training rows and over unlabelled inputs."""

    # Files of inputs without labels, read with data.inputs (relative paths from --data-root);
    # the teacher's scores are their only targets. ``modelkit distill --unlabelled`` adds more.
    unlabelled: list[str] = field(default_factory=list)
    # A labelled training row learns gold_weight x its label + (1 - gold_weight) x the teacher.
    gold_weight: float = 0.5
    # The teacher's logits are divided by this before they become targets (> 1 softens them).
    temperature: float = 1.0
    # Keep at most this many unlabelled rows (a seeded sample); None keeps them all.
    max_unlabelled: int | None = None
    # Perturbed copies of each labelled training row added to the transfer set, made by the
    # processor (``transfer_copy``: for text, span sampling and character dropout). The teacher
    # scores them, so they carry what it knows beyond the labels it was trained on.
    copies: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.gold_weight <= 1.0:
            raise ValueError(f"distill.gold_weight must be in [0, 1], got {self.gold_weight}")
        if self.temperature <= 0:
            raise ValueError(f"distill.temperature must be > 0, got {self.temperature}")
        if self.max_unlabelled is not None and self.max_unlabelled < 0:
            raise ValueError(f"distill.max_unlabelled must be >= 0, got {self.max_unlabelled}")
        if self.copies < 0:
            raise ValueError(f"distill.copies must be >= 0, got {self.copies}")


@dataclass
class RunConfig:
    data: DataConfig
    model: dict[str, Any] = field(default_factory=lambda: {"name": "ngram"})
    # How raw inputs become batches (normaliser, features, tokenizer, augmentation ...). The
    # model names its default processor (``name``) and any defaults that follow from the model
    # (a transformer's tokenizer is its backbone's); these keys are laid over them.
    processor: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = "runs/default"
    # "default", a YAML path, or the taxonomy itself inline.
    taxonomy: str | dict[str, Any] = "default"
    # Categories to train (default: the taxonomy's enabled ones), in output order.
    categories: list[str] | None = None
    # Instead of ``model``: an ensemble of member recipes (see :class:`EnsembleRecipe`).
    ensemble: EnsembleRecipe | None = None
    # How ``modelkit distill`` trains this recipe from a teacher (ignored by ``modelkit train``).
    distill: DistillRecipe = field(default_factory=DistillRecipe)

    def build_taxonomy(self) -> Taxonomy:
        if isinstance(self.taxonomy, dict):
            base = Taxonomy.from_dict(self.taxonomy, where="taxonomy")
        else:
            base = Taxonomy.load(self.taxonomy)
        return base.subset(self.categories) if self.categories else base.enabled()

    @property
    def split_seed(self) -> int:
        """Seed of the dev split and the folds: data.split_seed, else train.seed."""
        return self.train.seed if self.data.split_seed is None else self.data.split_seed

    def model_kwargs(self) -> tuple[str, dict[str, Any]]:
        params = dict(self.model)
        return str(params.pop("name", "ngram")), params

    def processor_kwargs(self) -> tuple[str, dict[str, Any]]:
        """The processor's name and config: the model's defaults with this recipe's block on top."""
        name, model_params = self.model_kwargs()
        params = merge_blocks(get_model_class(name).processor_defaults(model_params), self.processor)
        return str(params.pop("name")), params

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def _shipped_or_given(source: str | Path | dict[str, Any]) -> str | Path | dict[str, Any]:
    """A shipped recipe's file for a name such as ``text/cold`` that is not a file here; else ``source``."""
    if isinstance(source, dict) or Path(source).is_file():
        return source
    shipped = find_recipe(str(source))
    if shipped is not None:
        return shipped
    if not Path(source).exists():
        raise ConfigError(f"{source}: no such recipe file, nor a recipe that ships with modelkit "
                          "(modelkit recipes lists them, e.g. text/cold)")
    return source


def load_run_config(
    source: str | Path | dict[str, Any],
    overrides: list[str] | None = None,
    data_root: str | Path | None = None,
) -> RunConfig:
    """Read a recipe, apply ``--set`` overrides, validate every block and resolve data paths.

    Relative data paths are taken from ``data_root`` when given. A relative taxonomy path is
    looked up beside the recipe file when it does not exist from the working directory.
    """
    raw, where, base_dir = read_mapping(_shipped_or_given(source), overrides)
    if "augment" in raw:
        raise ConfigError(f"{where}: augment: moved into the processor: write processor.augment (its "
                          "'consistency' weight is now train.consistency)")
    if raw.get("ensemble") is not None and "model" in raw:
        raise ConfigError(f"{where}: ensemble: a recipe has either a model block or an ensemble block, not both")
    config = from_dict(RunConfig, raw, where=f"{where}: ")
    if config.model.get("name") == "ensemble" and config.ensemble is None:
        raise ConfigError(f"{where}: model.name: ensembles are trained from member recipes; write an "
                          "'ensemble: {members: [a.yaml, b.yaml]}' block instead of a model block")
    if config.ensemble is not None:
        config.ensemble.members = [_member_recipe(m, base_dir, where) for m in config.ensemble.members]
        config.model = {"name": "ensemble"}
    else:
        _resolve_model_paths(config, base_dir)
        _check_model_and_processor(config, where)
    if isinstance(config.taxonomy, str) and config.taxonomy != "default" and base_dir is not None:
        candidate = Path(config.taxonomy)
        if not candidate.exists() and (base_dir / candidate).exists():
            config.taxonomy = str(base_dir / candidate)
    if data_root is not None:
        for split in ("train", "dev", "test"):
            value = getattr(config.data, split)
            if value and not Path(value).is_absolute():
                setattr(config.data, split, str(Path(data_root) / value))
        config.distill.unlabelled = [value if Path(value).is_absolute() else str(Path(data_root) / value)
                                     for value in config.distill.unlabelled]
    try:
        config.build_taxonomy()
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return config


def _resolve_model_paths(config: RunConfig, base_dir: Path | None) -> None:
    """Relative file paths in the model block (weights, member recipes) are looked up beside the
    recipe when they do not exist from the working directory."""
    if base_dir is not None:
        _resolve_block_paths(config.model, base_dir, default_name="ngram")


def _resolve_block_paths(block: dict[str, Any], base_dir: Path, default_name: str | None = None) -> None:
    """One model block's path fields, and those of model blocks nested in it (a video model's
    frame model)."""
    try:
        fields = get_model_class(str(block.get("name", default_name))).path_fields
    except ConfigError:
        return  # reported with its context by _check_model_and_processor
    for key, value in block.items():
        if key in fields and isinstance(value, str) and not Path(value).exists() and (base_dir / value).exists():
            block[key] = str(base_dir / value)
        elif isinstance(value, dict) and "name" in value:
            _resolve_block_paths(value, base_dir)


def merge_blocks(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` laid over ``defaults``, nested mappings merged key by key (so a recipe can set
    one field of a nested block, such as ``processor.frame.resize``, and keep the rest)."""
    merged = dict(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_blocks(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_model_and_processor(config: RunConfig, where: str) -> None:
    """Validate the model and processor blocks, and that the data has what the processor reads."""
    name, params = config.model_kwargs()
    try:
        model_class = get_model_class(name)
        processor_name, processor_params = config.processor_kwargs()
        processor_class = get_processor_class(processor_name)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    processor_fields = set(processor_class.config_class.__dataclass_fields__)
    model_fields = set(model_class.config_class.__dataclass_fields__)
    misplaced = sorted(k for k in params if k in processor_fields and k not in model_fields)
    if misplaced:
        raise ConfigError(f"{where}: model.{misplaced[0]}: configures how inputs are processed; move it to "
                          f"processor.{misplaced[0]} (processors are configured apart from models)")
    from_dict(model_class.config_class, params, where=f"{where}: model")
    from_dict(processor_class.config_class, processor_params, where=f"{where}: processor")
    fields = config.data.input_columns
    known = list_modalities()
    for modality in fields:
        if modality not in known:
            raise ConfigError(f"{where}: data.inputs.{modality}: unknown modality; known: {', '.join(known)}")
    if processor_class.modality not in fields:
        raise ConfigError(f"{where}: processor {processor_name} reads {processor_class.modality!r} inputs but "
                          f"data.inputs names only {', '.join(fields)}; add {processor_class.modality}: FIELD")


def _member_recipe(member: EnsembleMember, base_dir: Path | None, where: str) -> EnsembleMember:
    """Resolve a member's recipe path and check that it makes a valid, non-ensemble recipe."""
    candidate = Path(member.recipe)
    if not candidate.exists() and base_dir is not None and (base_dir / candidate).exists():
        candidate = base_dir / candidate
    if not candidate.is_file():
        raise ConfigError(f"{where}: ensemble.members: recipe {member.recipe!r} not found")
    resolved = EnsembleMember(str(candidate), list(member.set))
    try:
        loaded = load_member(resolved)
    except ConfigError as err:
        raise ConfigError(f"{where}: ensemble.members: {err}") from None
    if loaded.ensemble is not None:
        raise ConfigError(f"{where}: ensemble.members: {member.recipe} is itself an ensemble; ensembles cannot be nested")
    return resolved


def load_member(member: EnsembleMember) -> RunConfig:
    """A member recipe with its ``--set`` overrides applied."""
    return load_run_config(member.recipe, overrides=member.set)


def dump_run_config(config: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), allow_unicode=True, sort_keys=False), encoding="utf-8")


def load_inner_model(source: InnerModel, num_labels: int, processor: Processor | None) -> ModerationModel:
    """A composite's inner model from a trained checkpoint (its weights) or a recipe (fresh, built
    from the recipe's model block): what :func:`~modelkit.models.create_model` cannot read itself."""
    if source.checkpoint is not None:
        return load_checkpoint(source.checkpoint).model
    name, params = load_run_config(str(source.recipe)).model_kwargs()
    return create_model(name, num_labels, processor, load_inner=load_inner_model, **params)
