"""Model registry, the shared model base and the modality-free ensemble and exported models."""

from . import ensemble, exported  # noqa: F401  (register the "ensemble" and "exported_onnx" models)
from .base import ModerationModel, MultiLabelHead, pool_windows
from .registry import create_model, get_model_class, list_models, register_model

__all__ = ["ModerationModel", "MultiLabelHead", "create_model", "get_model_class", "list_models", "pool_windows",
           "register_model"]
