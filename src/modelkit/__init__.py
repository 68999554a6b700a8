"""modelkit: trainable multi-label content-moderation classifiers.

Public API::

    import modelkit
    clf = modelkit.load("runs/text-cold")
    clf.predict(["你这个人真恶心"])          # -> [Prediction(scores={...}, labels=[...])]
    modelkit.train("configs/text/cold.yaml", data_root="../shared/data")
    modelkit.distill("runs/text-cold-ensemble", "configs/text/cold_distilled.yaml", data_root="../shared/data")
    modelkit.evaluate("runs/text-cold", "dev.jsonl", output_dir="runs/text-cold/eval")  # report.html ...
    modelkit.calibrate("runs/text-cold", "dev.jsonl", objective="precision@0.95")
    modelkit.predict_files(clf, "big.parquet", "out/")  # resumable shards; modelkit.read_predictions("out/")

Modalities (``modelkit.text``, ``modelkit.image``, ``modelkit.video``) plug in through the
registries: ``register_modality``, ``register_processor`` and ``register_model``.

Every name is imported on first use (PEP 562), so ``import modelkit`` costs almost nothing and
pays for torch, scikit-learn or Arrow only when something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "CheckpointError": "errors", "ConfigError": "errors", "DataError": "errors", "EvaluationError": "errors",
    "InputError": "errors",
    "Classifier": "classifier", "load": "classifier",
    "Prediction": "outputs",
    "load_processor": "checkpoint",
    "calibrate": "evaluation.calibrate",
    "compare_reports": "evaluation.compare",
    "evaluate": "evaluation.evaluate",
    "ScoredData": "evaluation.report", "build_report": "evaluation.report", "write_report": "evaluation.report",
    "load_from_hub": "hub", "push_to_hub": "hub",
    "RunSummary": "batch.engine", "predict_files": "batch.engine",
    "read_predictions": "batch.shards",
    "ModerationModel": "models", "create_model": "models", "list_models": "models", "register_model": "models",
    "Policy": "policy",
    "Decision": "posts.moderator", "Moderator": "posts.moderator", "load_moderator": "posts.moderator",
    "Post": "posts.post", "PostPolicy": "posts.policy", "moderate_files": "posts.run", "read_decisions": "posts.run",
    "explain": "explain", "register_explainer": "explain",
    "Processor": "processing", "create_processor": "processing", "list_processors": "processing",
    "register_modality": "processing", "register_processor": "processing",
    "Category": "taxonomy", "Taxonomy": "taxonomy",
    "RunConfig": "training.recipe", "load_run_config": "training.recipe",
    "train": "training.api",
    "distill": "training.distill",
}

__all__ = [
    "Category", "CheckpointError", "Classifier", "ConfigError", "DataError", "Decision", "EvaluationError",
    "InputError", "ModerationModel", "Moderator", "Policy", "Post", "PostPolicy", "Prediction", "Processor",
    "RunConfig", "RunSummary", "ScoredData", "Taxonomy", "build_report", "calibrate", "compare_reports",
    "create_model", "create_processor", "distill", "evaluate", "explain", "list_models", "list_processors", "load",
    "load_from_hub", "load_moderator", "load_processor", "load_run_config", "moderate_files", "predict_files",
    "push_to_hub", "read_decisions", "read_predictions", "register_explainer", "register_modality",
    "register_model", "register_processor", "train", "write_report", "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # what type checkers and IDEs see
    from .batch.engine import RunSummary, predict_files
    from .batch.shards import read_predictions
    from .checkpoint import load_processor
    from .classifier import Classifier, load
    from .errors import CheckpointError, ConfigError, DataError, EvaluationError, InputError
    from .evaluation.calibrate import calibrate
    from .evaluation.compare import compare_reports
    from .evaluation.evaluate import evaluate
    from .evaluation.report import ScoredData, build_report, write_report
    from .hub import load_from_hub, push_to_hub
    from .models import ModerationModel, create_model, list_models, register_model
    from .outputs import Prediction
    from .explain import explain, register_explainer
    from .policy import Policy
    from .posts.moderator import Decision, Moderator, load_moderator
    from .posts.policy import PostPolicy
    from .posts.post import Post
    from .posts.run import moderate_files, read_decisions
    from .processing import Processor, create_processor, list_processors, register_modality, register_processor
    from .taxonomy import Category, Taxonomy
    from .training.api import train
    from .training.distill import distill
    from .training.recipe import RunConfig, load_run_config
