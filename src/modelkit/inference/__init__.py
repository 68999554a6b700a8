"""Inference: the runner (device, batches, workers, autocast, ONNX Runtime), the batch engine
(streamed sources, resumable sharded output, a Ray driver) and ONNX export."""

from .engine import RunSummary, predict_files
from .runner import Runner, accelerator_available, select_device
from .shards import read_predictions

__all__ = ["RunSummary", "Runner", "accelerator_available", "predict_files", "read_predictions", "select_device"]
