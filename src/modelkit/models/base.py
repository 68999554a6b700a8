"""What every modelkit model shares: a multi-label head, window pooling and checkpoint hooks.

A model maps a processor's batch to one logit per category; it does not preprocess. Models
are built from their config dataclass, and those sized by their processor (an n-gram model's
hash buckets) read it in :meth:`ModerationModel.build`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from ..config import from_dict, to_dict

if TYPE_CHECKING:
    from ..processing import Processor

# How the runner runs a composite's inner model: (inner model, its batch) -> a scoring callable or None.
InnerBackend = Callable[["ModerationModel", dict[str, torch.Tensor]], Callable[[dict[str, torch.Tensor]], torch.Tensor] | None]


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


def whole_numbers(config: dict[str, Any], *names: str, defaults: dict[str, int] | None = None) -> list[int] | None:
    """``config``'s values of ``names`` (``defaults`` where missing) when every one is a whole
    number >= 0; None otherwise (the config's own validation reports what is wrong)."""
    values = [config.get(name, (defaults or {}).get(name)) for name in names]
    if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        return values
    return None


def pool_windows(logits: torch.Tensor, window_rows: torch.Tensor) -> torch.Tensor:
    """Per-input logits as the maximum over that input's windows.

    Processors cut long inputs into windows (``window_rows[w]`` is the input window ``w`` came
    from, ascending, every input with at least one window); taking the max means benign padding
    around a violation cannot dilute it, whichever side the padding is on.
    """
    rows = int(window_rows[-1]) + 1 if window_rows.numel() else 0
    if rows == window_rows.numel():  # one window per input: nothing to pool
        return logits
    pooled = logits.new_full((rows, logits.shape[1]), float("-inf"))
    return pooled.scatter_reduce(0, window_rows[:, None].expand_as(logits), logits, reduce="amax")


@dataclass(frozen=True)
class InnerModel:
    """Where one inner model of a composite (a video model's frame model) comes from: a model
    block (``name`` + fields) built here, or a trained checkpoint or a recipe, which the builder
    above the models resolves (:func:`~modelkit.models.create_model`'s ``load_inner``; the
    trainer passes one). ``processor_part`` names the part of the composite's processor that
    feeds it (:class:`~modelkit.processing.CompositeProcessor`)."""

    block: Mapping[str, Any] | None = None
    checkpoint: str | None = None
    recipe: str | None = None
    processor_part: str | None = None


class ModerationModel(nn.Module):
    """Base class for registered models.

    Subclasses set ``config_class`` (a dataclass) and ``default_processor`` (the registered
    processor a recipe gets unless it names another), build their layers in
    ``__init__(config, num_labels)`` and return logits ``[batch, num_labels]`` from
    ``forward(**batch)``. Models whose processor places the parts of an input and labels them
    (a video's frames: :meth:`~modelkit.processing.Processor.part_targets`) also take
    ``forward(**batch, with_parts=True)`` and then return (logits, part logits, the input of each
    part); the trainer asks for them only when a batch carries part labels.
    """

    config_class: ClassVar[type]
    registry_name: ClassVar[str] = ""
    default_processor: ClassVar[str] = ""
    # True for models whose embedding tables produce sparse gradients (see training/optim.py).
    has_sparse_gradients: ClassVar[bool] = False
    # True for models that run faster in ONNX Runtime than in eager PyTorch on a CPU (CNNs):
    # inference then exports them (inference/onnx.py) unless told otherwise.
    onnx_on_cpu: ClassVar[bool] = False
    # True for models whose forward is ``pool_windows(window_logits(...), window_rows)``: an
    # ONNX export holds :meth:`window_logits`, and the pooling over an input's windows (a
    # data-dependent shape) happens outside the graph.
    pools_windows: ClassVar[bool] = False
    # False for models that `modelkit export` cannot turn into one ONNX graph (a composite whose
    # members are exported instead: a video model's frame model, an ensemble's members).
    exportable: ClassVar[bool] = True
    # Config keys that name files (pretrained weights, a member recipe): a recipe's relative
    # path is looked up beside the recipe when it does not exist from the working directory.
    path_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any, num_labels: int) -> None:
        super().__init__()
        self.config = config
        self.num_labels = num_labels

    @classmethod
    def inner_models(cls, config: Any) -> dict[str, InnerModel]:
        """A composite's inner models, by the name :meth:`build` receives them under ({} for a
        model that has none). A composite never builds or loads them itself."""
        return {}

    @classmethod
    def build(cls, config: Any, num_labels: int, processor: Processor | None = None,
              inner: Mapping[str, ModerationModel] | None = None) -> ModerationModel:
        """A fresh model of ``config`` for batches of ``processor``; ``inner``: the built
        :meth:`inner_models`."""
        return cls(config, num_labels)

    def use_inner_backend(self, backend: InnerBackend | None) -> None:
        """The runner's choice of how inner models run in inference (a composite's): ``backend(inner,
        batch)`` gives a callable that scores ``batch`` for ``inner`` in another runtime (ONNX Runtime
        on a CPU), or None to keep PyTorch; ``backend`` None: PyTorch throughout. Whole-model
        export is :attr:`onnx_on_cpu`'s business."""

    def part_logits(self, **batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the parts the model scores, ``[parts, num_labels]``, and the batch input each
        part belongs to (grouped, ascending): a text's windows, a video's frames; one part per
        input for most models. ``forward`` is :meth:`pool_parts` of these; inference scores the
        pieces of a long input a batch at a time and pools their parts once all are in."""
        if self.pools_windows:
            rows = batch.pop("window_rows")
            return self.window_logits(**batch), rows
        logits = self(**batch)
        return logits, torch.arange(len(logits), device=logits.device)

    def pool_parts(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Part logits -> one row per input: the maximum over an input's parts (a violation in any
        part of it is a violation of the input)."""
        return pool_windows(logits, rows)

    def window_logits(self, **batch: torch.Tensor) -> torch.Tensor:
        """Logits per window ``[windows, num_labels]`` from the batch without ``window_rows``, in
        operations an ONNX exporter knows (models with :attr:`pools_windows`)."""
        raise NotImplementedError(f"model {self.registry_name!r} does not score windows")

    @classmethod
    def processor_defaults(cls, model_config: dict[str, Any]) -> dict[str, Any]:
        """The processor config a recipe starts from (its ``processor:`` block is laid over it)."""
        return {"name": cls.default_processor}

    def checkpoint_config(self) -> dict[str, Any]:
        """The config to store in ``config.json``: enough to rebuild the model offline."""
        return {"name": self.registry_name, **to_dict(self.config)}

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> ModerationModel:
        """An untrained model of a stored architecture (weights are loaded after). Never reads
        any file: everything it needs is in ``config``."""
        return cls.build(from_dict(cls.config_class, config, where="config.json: model"), num_labels, processor)

    @classmethod
    def minimum_parameters(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> int | None:
        """A lower bound on the number of weights a stored ``config`` builds (None: no bound known).

        Checked against the weights file before the model is built, so that a config edited to say
        ``embed_dim: 1000000000`` is refused instead of allocating what it says. A bound, not an
        estimate: it must never exceed what an honest config builds."""
        return None

    @classmethod
    def split_legacy_config(cls, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A format-1 checkpoint's model config (preprocessing inside) -> (model, processor) configs."""
        raise NotImplementedError(f"model {cls.registry_name!r} has no format-1 checkpoints to convert")

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
