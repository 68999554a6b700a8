"""modelkit: trainable multi-label content-moderation classifiers.

Public API::

    import modelkit
    clf = modelkit.load("runs/text-cold")
    clf.predict(["你这个人真恶心"])          # -> [Prediction(scores={...}, labels=[...])]
    modelkit.train("configs/text/cold.yaml", data_root="../shared/data")
    modelkit.distill("runs/text-cold-ensemble", "configs/text/cold_distilled.yaml", data_root="../shared/data")
    modelkit.evaluate("runs/text-cold", "dev.jsonl", output_dir="runs/text-cold/eval")  # report.html ...
    modelkit.calibrate("runs/text-cold", "dev.jsonl", objective="precision@0.95")

Modalities (``modelkit.text`` today) plug in through the registries: ``register_modality``,
``register_processor`` and ``register_model``.
"""

from ._version import __version__

from .checkpoint import CheckpointError, load_processor
from .classifier import Classifier, Prediction, load
from .config import ConfigError
from .data.records import DataError
from .evaluation.calibrate import calibrate
from .evaluation.compare import compare_reports
from .evaluation.evaluate import evaluate
from .evaluation.report import EvaluationError, ScoredData, build_report, write_report
from .hub import load_from_hub, push_to_hub
from .batch.engine import RunSummary, predict_files
from .batch.shards import read_predictions
from .models import ModerationModel, create_model, list_models, register_model
from .policy import Policy
from .processing import InputError, Processor, create_processor, list_processors, register_modality, register_processor
from .taxonomy import Category, Taxonomy
from .training.recipe import RunConfig, load_run_config
from .training.api import train
from .training.distill import distill

__all__ = [
    "Category",
    "CheckpointError",
    "Classifier",
    "ConfigError",
    "DataError",
    "EvaluationError",
    "InputError",
    "ModerationModel",
    "Policy",
    "Prediction",
    "Processor",
    "RunConfig",
    "RunSummary",
    "ScoredData",
    "Taxonomy",
    "__version__",
    "build_report",
    "calibrate",
    "compare_reports",
    "create_model",
    "create_processor",
    "distill",
    "evaluate",
    "list_models",
    "list_processors",
    "load",
    "load_processor",
    "load_from_hub",
    "load_run_config",
    "predict_files",
    "push_to_hub",
    "read_predictions",
    "register_modality",
    "register_model",
    "register_processor",
    "train",
    "write_report",
]
