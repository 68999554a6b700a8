"""Model registry: a name -> model class table, like timm's ``create_model``."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from ..config import ConfigError, from_dict
from ..taxonomy import Taxonomy
from .base import ModerationModel

_MODELS: dict[str, type[ModerationModel]] = {}
M = TypeVar("M", bound=type[ModerationModel])


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator that makes a model available to configs as ``model: {name: ...}``."""

    def decorate(cls: M) -> M:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_MODELS[name].__name__}")
        cls.registry_name = name
        _MODELS[name] = cls
        return cls

    return decorate


def list_models() -> list[str]:
    return sorted(_MODELS)


def get_model_class(name: str) -> type[ModerationModel]:
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(f"model.name: unknown model {name!r}; available: {', '.join(list_models())}") from None


def create_model(name: str, taxonomy: Taxonomy | int, **config: Any) -> ModerationModel:
    """Build a fresh model scoring every category of ``taxonomy`` (or ``taxonomy`` labels).

    >>> model = create_model("ngram", Taxonomy.load().enabled(), embed_dim=32)
    """
    cls = get_model_class(name)
    num_labels = taxonomy if isinstance(taxonomy, int) else len(taxonomy)
    return cls(from_dict(cls.config_class, config, where="model"), num_labels)
