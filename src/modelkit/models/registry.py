"""Model registry: a name -> model class table, like timm's ``create_model``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ..config import ConfigError, from_dict
from ..plugins import Registry
from ..taxonomy import Taxonomy
from .base import InnerModel, ModerationModel

if TYPE_CHECKING:
    from ..processing import Processor

_MODELS: Registry[type[ModerationModel]] = Registry("model", "model.name")
M = TypeVar("M", bound=type[ModerationModel])


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator that makes a model available to configs as ``model: {name: ...}``."""
    return _MODELS.decorator(name, "registry_name")


def list_models() -> list[str]:
    """The names of the registered models (the installed modalities' included), sorted."""
    return _MODELS.names()


def get_model_class(name: str) -> type[ModerationModel]:
    return _MODELS.get(name)


def stored_minimum_parameters(stored: Any, num_labels: int, processor: Processor | None) -> int | None:
    """The lower bound on the weights of a stored model config (``name`` + fields): a composite's
    member, or None when the config is not one."""
    if not isinstance(stored, dict):
        return None
    config = {key: value for key, value in stored.items() if key != "name"}
    return get_model_class(str(stored.get("name", ""))).minimum_parameters(config, num_labels, processor)


# Resolves an inner model that is a checkpoint or a recipe: (where, num_labels, processor) -> model.
InnerLoader = Callable[[InnerModel, int, "Processor | None"], ModerationModel]


def create_model(name: str, taxonomy: Taxonomy | int, processor: Processor | None = None, *,
                 load_inner: InnerLoader | None = None, **config: Any) -> ModerationModel:
    """Build a fresh model scoring every category of ``taxonomy`` (or ``taxonomy`` labels).

    A composite's inner models (:meth:`~ModerationModel.inner_models`) are built here when they
    are model blocks; trained checkpoints and recipes are resolved by ``load_inner`` (the trainer
    passes one that loads checkpoints and reads recipes), which this layer, below both, cannot do.

    >>> model = create_model("ngram", Taxonomy.load().enabled(), embed_dim=32)
    """
    cls = get_model_class(name)
    num_labels = taxonomy if isinstance(taxonomy, int) else len(taxonomy)
    parsed = from_dict(cls.config_class, config, where="model")
    # Models that map outputs of their own onto categories (a peer ONNX model) record the order.
    if isinstance(taxonomy, Taxonomy) and getattr(parsed, "categories", "") is None:
        parsed.categories = list(taxonomy.ids)
    inner = {key: _inner_model(name, source, num_labels, processor, load_inner)
             for key, source in cls.inner_models(parsed).items()}
    return cls.build(parsed, num_labels, processor, inner)


def _inner_model(name: str, source: InnerModel, num_labels: int, processor: Processor | None,
                 load_inner: InnerLoader | None) -> ModerationModel:
    part = getattr(processor, "parts", {}).get(source.processor_part, processor) if source.processor_part else processor
    if source.block is not None:
        block = dict(source.block)
        return create_model(str(block.pop("name", "")), num_labels, part, load_inner=load_inner, **block)
    if load_inner is None:
        raise ConfigError(f"model {name}: its inner model is {source.checkpoint or source.recipe}, which only a "
                          "builder that reads files resolves (train a recipe, or pass load_inner)")
    return load_inner(source, num_labels, part)
