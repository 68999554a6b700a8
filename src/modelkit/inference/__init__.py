"""Inference below the classifier: the runner (device, batches, workers, autocast, ONNX Runtime)
and ONNX export. The batch engine, which drives a classifier, is :mod:`modelkit.batch`."""

from .runner import Runner, accelerator_available, select_device

__all__ = ["Runner", "accelerator_available", "select_device"]
