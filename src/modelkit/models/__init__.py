"""Model registry and the built-in models (importing this registers them)."""

from . import ensemble, text  # noqa: F401  (registers "ngram", "transformer" and "ensemble")
from .base import ModerationModel, MultiLabelHead
from .registry import create_model, get_model_class, list_models, register_model

__all__ = ["ModerationModel", "MultiLabelHead", "create_model", "get_model_class", "list_models", "register_model"]
