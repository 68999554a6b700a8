"""Inference execution: device choice and batched scoring (the batch engine grows here)."""

from .runner import Runner, accelerator_available, select_device

__all__ = ["Runner", "accelerator_available", "select_device"]
