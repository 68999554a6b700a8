"""``modelkit.train``: a recipe in, a checkpoint directory out (one model, or an ensemble)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .ensemble import train_ensemble
from .recipe import RunConfig, load_run_config
from .trainer import Trainer


def train(config: str | Path | dict[str, Any] | RunConfig, overrides: list[str] | None = None,
          data_root: str | Path | None = None, resume: bool = False) -> Path:
    """Train from a recipe (path, mapping or :class:`RunConfig`); return the checkpoint directory."""
    if not isinstance(config, RunConfig):
        config = load_run_config(config, overrides, data_root)
    if config.ensemble is not None:
        return train_ensemble(config, resume=resume)
    return Trainer(config, resume=resume).fit()
