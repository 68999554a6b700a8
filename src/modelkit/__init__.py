"""modelkit: trainable multi-label content-moderation classifiers.

Public API::

    import modelkit
    clf = modelkit.load("runs/text-cold")
    clf.predict(["你这个人真恶心"])          # -> [Prediction(scores={...}, labels=[...])]
    modelkit.train("configs/text/cold.yaml", data_root="../shared/data")
    modelkit.evaluate("runs/text-cold", "dev.jsonl", output_dir="runs/text-cold/eval")  # report.html ...
    modelkit.calibrate("runs/text-cold", "dev.jsonl", objective="precision@0.95")
"""

__version__ = "0.1.0"

from .checkpoint import CheckpointError
from .classifier import Classifier, Prediction, load
from .config import ConfigError
from .data.records import DataError
from .evaluation.calibrate import calibrate
from .evaluation.compare import compare_reports
from .evaluation.evaluate import evaluate
from .evaluation.report import EvaluationError, ScoredData, build_report, write_report
from .models import create_model, list_models, register_model
from .taxonomy import Category, Taxonomy
from .training.recipe import RunConfig, load_run_config
from .training.trainer import train

__all__ = [
    "Category",
    "CheckpointError",
    "Classifier",
    "ConfigError",
    "DataError",
    "EvaluationError",
    "Prediction",
    "RunConfig",
    "ScoredData",
    "Taxonomy",
    "__version__",
    "build_report",
    "calibrate",
    "compare_reports",
    "create_model",
    "evaluate",
    "list_models",
    "load",
    "load_run_config",
    "register_model",
    "train",
    "write_report",
]
