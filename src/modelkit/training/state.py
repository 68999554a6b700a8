"""What ``--resume`` needs: ``OUTPUT_DIR/last`` (weights, optimiser, trainer state) and a
fingerprint of the recipe, so that a run never continues on other data or another model.

The fingerprint covers what the weights depend on: the model and processor configs, the
taxonomy and categories, and the data (file contents by SHA-256, fields, label mapping and
splits). Training settings (epochs, learning rate, ...) may change between runs.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..checkpoint import CheckpointError, save_weights, sha256_file, write_json
from ..config import ConfigError, from_dict, to_dict
from ..taxonomy import Taxonomy
from .recipe import RunConfig

LAST = "last"
STATE = "trainer_state.json"
OPTIMIZER = "optimizer.pt"
WEIGHTS = "model.safetensors"


@dataclass
class TrainState:
    """Progress of a run, saved after every epoch."""

    epoch: int = 0
    global_step: int = 0
    select_metric: str = "macro_f1"
    best_value: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    fingerprint: dict[str, Any] = field(default_factory=dict)
    # The dev loss of the best epoch: it breaks ties of the selection metric (a small dev split
    # often scores a perfect macro-F1 epochs before the model is confident).
    best_loss: float | None = None

    def update(self, epoch: int, value: float, minimise: bool, loss: float | None = None) -> bool:
        """Record epoch ``epoch``'s selection value (and dev loss); True when it is the best so far."""
        self.epoch = epoch
        tie_won = (value == self.best_value and loss is not None and self.best_loss is not None
                   and loss < self.best_loss)
        better = self.best_value is None or tie_won or (value < self.best_value if minimise else value > self.best_value)
        if better:
            self.best_value, self.best_epoch, self.bad_epochs, self.best_loss = value, epoch, 0, loss
        else:
            self.bad_epochs += 1
        return better


def _data_digest(source: Any) -> str | None:
    if source is None:
        return None
    if hasattr(source, "_fingerprint"):  # a datasets.Dataset
        return f"dataset:{source._fingerprint}"
    path = Path(source)
    if path.is_dir():  # a folder tree of files: their names and sizes (hashing every picture is too slow)
        listing = sorted(f"{p.relative_to(path).as_posix()}:{p.stat().st_size}" for p in path.rglob("*") if p.is_file())
        return "folder:" + hashlib.sha256("\n".join(listing).encode()).hexdigest()
    return f"sha256:{sha256_file(path)}" if path.is_file() else f"missing:{path}"


def fingerprint(config: RunConfig, taxonomy: Taxonomy) -> dict[str, Any]:
    """What the trained weights depend on, as plain JSON data."""
    data = config.data
    processor = {} if config.ensemble is not None else dict(zip(("name", "config"), config.processor_kwargs()))
    value = {
        "model": config.model,
        "processor": processor,
        "ensemble": to_dict(config.ensemble) if config.ensemble is not None else None,
        "taxonomy": taxonomy.to_dict(),
        "data": {
            "files": {split: _data_digest(getattr(data, split)) for split in ("train", "dev", "test")},
            "inputs": data.input_columns, "id_field": data.id_field, "label_field": data.label_field,
            "label_columns": data.label_columns, "label_map": data.label_map, "column_types": data.column_types,
            "dev_fraction": data.dev_fraction, "folds": data.folds, "fold": data.fold, "split_seed": config.split_seed,
            "per_class": data.per_class, "skip_bad_files": data.skip_bad_files,
            # Only when set, so runs started before the setting existed still resume.
            **({"drop_invalid_labels": True} if data.drop_invalid_labels else {}),
        },
    }
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def fingerprint_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Readable differences between two fingerprints ("model.embed_dim: 32 -> 64")."""
    before, after = _flatten(stored), _flatten(current)
    changes = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            if key.startswith("data.files."):
                changes.append(f"{key}: the file's content differs")
            else:
                changes.append(f"{key}: {before.get(key, '(unset)')!r} -> {after.get(key, '(unset)')!r}")
    return changes


def save_last(output_dir: Path, model: torch.nn.Module, optimizer, scheduler, state: TrainState) -> None:
    """Write ``output_dir/last`` beside the previous one and swap it in, so an interruption
    while saving leaves the last complete epoch to resume from."""
    last = output_dir / LAST
    staging = output_dir / f".{LAST}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_weights(model, staging / WEIGHTS)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, staging / OPTIMIZER)
    write_json(staging / STATE, to_dict(state))
    previous = output_dir / f".{LAST}.previous"
    if last.exists():
        last.rename(previous)
    staging.rename(last)
    shutil.rmtree(previous, ignore_errors=True)


def read_state(output_dir: Path) -> TrainState | None:
    """The saved trainer state of ``output_dir/last`` (None when there is none)."""
    path = output_dir / LAST / STATE
    if not path.is_file():
        return None
    try:
        return from_dict(TrainState, json.loads(path.read_text(encoding="utf-8")), where=f"{path}: ")
    except (json.JSONDecodeError, UnicodeDecodeError, ConfigError) as err:
        raise CheckpointError(f"{path}: unreadable trainer state ({err}); delete {path.parent} to start over") from None


def check_resumable(state: TrainState, current: dict[str, Any], output_dir: Path) -> None:
    """Refuse to resume a run whose recipe fingerprint differs from the stored one."""
    changes = fingerprint_changes(state.fingerprint, current)
    if changes:
        listed = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
        raise ConfigError(f"--resume: {output_dir / LAST} was trained with a different recipe ({listed}). "
                          "Resume with the recipe it was started with, or train into a new output_dir")


def restore_last(output_dir: Path, model: torch.nn.Module, optimizer, scheduler) -> None:
    """Load ``output_dir/last``'s weights, optimiser and scheduler state into the given objects."""
    last = output_dir / LAST
    try:
        model.load_state_dict(load_file(str(last / WEIGHTS)))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(f"{last / WEIGHTS}: cannot restore the weights ({err}); "
                              f"delete {last} to start over") from None
    try:
        # Our own file; weights_only keeps even a tampered one from running code.
        states = torch.load(last / OPTIMIZER, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(states["optimizer"])
        scheduler.load_state_dict(states["scheduler"])
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as err:
        raise CheckpointError(f"{last / OPTIMIZER}: truncated or corrupt ({type(err).__name__}: {err}); "
                              f"delete {last} to start over") from None
