"""Checkpoint directories: ``config.json`` + ``model.safetensors`` (+ tokenizer files).

``config.json`` is written last and lists the SHA-256 of every other file, so a directory that
was half-written, truncated or edited is refused with a clear :class:`CheckpointError` instead
of loading mismatched pieces. Nothing here unpickles: weights are safetensors, metadata JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .config import ConfigError
from .models.base import ModerationModel
from .models.registry import get_model_class
from .taxonomy import Taxonomy

FORMAT = "modelkit-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, incomplete, altered or incompatible."""


@dataclass
class Checkpoint:
    """Everything a checkpoint directory holds, in memory."""

    model: ModerationModel
    taxonomy: Taxonomy
    thresholds: dict[str, float]
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # Set by ``modelkit calibrate``: per-category temperatures and how thresholds were fitted.
    calibration: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def save_checkpoint(directory: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` into ``directory`` (created if needed), replacing any previous one.

    Files are first written to a staging folder beside ``directory`` and moved in one by one,
    ``config.json`` last; readers check the recorded hashes, so they see either the old or the
    new checkpoint, never a mix.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.staging-"))
    try:
        model = checkpoint.model
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(staging / WEIGHTS), metadata={"format": "pt"})
        files = [WEIGHTS, *model.save_assets(staging)]
        if checkpoint.metrics:
            write_json(staging / "metrics.json", checkpoint.metrics)
            files.append("metrics.json")
        taxonomy = checkpoint.taxonomy
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "modelkit_version": __version__,
            "torch_version": torch.__version__,
            "modality": model.modality,
            "problem_type": "multi_label_classification",
            "activation": "sigmoid",
            "id2label": {str(i): c for i, c in enumerate(taxonomy.ids)},
            "label2id": {c: i for i, c in enumerate(taxonomy.ids)},
            "model": model.checkpoint_config(),
            "taxonomy": taxonomy.to_dict(),
            "thresholds": {c: float(checkpoint.thresholds[c]) for c in taxonomy.ids},
            "calibration": checkpoint.calibration,
            "extra": checkpoint.extra,
            "files": {name: _sha256(staging / name) for name in files},
        }
        write_json(staging / CONFIG, config)
        (staging / "README.md").write_text(_model_card(config, checkpoint.metrics), encoding="utf-8")
        for name in [*files, "README.md", CONFIG]:
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    """Parse and sanity-check ``config.json`` of a checkpoint directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory (it does not exist)")
    path = directory / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{directory}: no {CONFIG}; is this a modelkit checkpoint directory?")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a modelkit checkpoint config (missing format: {FORMAT})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {config['format_version']} is newer than this modelkit "
            f"({__version__}) understands; upgrade modelkit"
        )
    for key in ("model", "taxonomy", "thresholds", "files"):
        if not isinstance(config.get(key), dict):
            raise CheckpointError(f"{path}: field '{key}' is missing or not a mapping")
    return config


def verify_files(directory: Path, config: dict[str, Any]) -> None:
    for name, expected in config["files"].items():
        path = (directory / name).resolve()
        if directory.resolve() not in path.parents:
            raise CheckpointError(f"{directory}/{CONFIG}: file entry {name!r} points outside the checkpoint")
        if not path.is_file():
            raise CheckpointError(f"{directory}: file {name} is missing (listed in {CONFIG})")
        if _sha256(path) != expected:
            raise CheckpointError(
                f"{directory}: {name} does not match the hash recorded in {CONFIG}; "
                "the file was altered or only partly written"
            )


def load_checkpoint(directory: str | Path) -> Checkpoint:
    """Load a checkpoint directory written by :func:`save_checkpoint` (no unpickling)."""
    directory = Path(directory)
    config = read_config(directory)
    verify_files(directory, config)
    try:
        taxonomy = Taxonomy.from_dict(config["taxonomy"], where=f"{directory}/{CONFIG}: taxonomy")
        model_config = dict(config["model"])
        model_class = get_model_class(str(model_config.pop("name", "")))
        model = model_class.from_checkpoint(model_config, len(taxonomy), directory)
    except ConfigError as err:
        raise CheckpointError(f"{directory}: {err}") from None
    try:
        state = load_file(str(directory / WEIGHTS))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{directory}/{WEIGHTS}: cannot read weights ({err})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        raise CheckpointError(
            f"{directory}/{WEIGHTS}: weights do not fit the architecture in {CONFIG} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong_shape[:3]})"
        )
    model.load_state_dict(state)
    model.eval()
    thresholds = {c: _number(config["thresholds"].get(c, 0.5), f"thresholds.{c}", directory) for c in taxonomy.ids}
    calibration = dict(config.get("calibration") or {})
    temperature = calibration.get("temperature") or {}
    if not isinstance(temperature, dict):
        raise CheckpointError(f"{directory}/{CONFIG}: calibration.temperature must map categories to numbers")
    for category, value in temperature.items():
        if category not in taxonomy or not _number(value, f"calibration.temperature.{category}", directory) > 0:
            raise CheckpointError(f"{directory}/{CONFIG}: calibration.temperature.{category}: not a category with T > 0")
    metrics = {}
    if (directory / "metrics.json").is_file():
        metrics = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
    return Checkpoint(model, taxonomy, thresholds, metrics, dict(config.get("extra") or {}), calibration)


def _number(value: Any, name: str, directory: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise CheckpointError(f"{directory}/{CONFIG}: {name} must be a number, got {value!r}")
    return float(value)


def _model_card(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    lines = [
        f"# modelkit {config['modality']} classifier ({config['model'].get('name')})",
        "",
        "Multi-label: one independent sigmoid score per category. Never apply softmax.",
        "",
        "```python",
        "import modelkit",
        "clf = modelkit.load('path/to/this/directory')",
        "clf.predict(['some text'])",
        "```",
        "",
        "| category | English | 中文 | threshold |",
        "| --- | --- | --- | --- |",
    ]
    for cat in config["taxonomy"]["categories"]:
        lines.append(f"| {cat['id']} | {cat['name_en']} | {cat['name_zh']} | {config['thresholds'][cat['id']]:.3f} |")
    if config.get("calibration"):
        lines += ["", "## Calibration", "", "```json", json.dumps(config["calibration"], indent=2, ensure_ascii=False), "```"]
    if metrics:
        lines += ["", "## Metrics", "", "```json", json.dumps(metrics, indent=2, ensure_ascii=False)[:4000], "```"]
    lines += ["", f"modelkit {config['modelkit_version']}, torch {config['torch_version']}", ""]
    return "\n".join(lines)
