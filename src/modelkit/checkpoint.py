"""Checkpoint directories: ``config.json`` + ``model.safetensors`` + ``processor_config.json`` (+ assets).

``config.json`` is written last and lists the SHA-256 of every other file, so a directory that
was half-written, truncated or edited is refused with a clear :class:`CheckpointError` instead
of loading mismatched pieces. Loading trusts nothing in the directory: the manifest must cover
the weights and the processor, the taxonomy must agree with ``id2label``, thresholds and
temperatures must be in range, every path must stay inside the directory, nothing is
unpickled and nothing is fetched from a hub.

Format 2 (this version) keeps the processor apart from the model. Format-1 directories
(modelkit 0.1, preprocessing inside the model config) still load, converted in memory;
``modelkit convert DIR`` rewrites them as format 2.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import CheckpointError
from ._version import __version__
from .config import ConfigError
from .models.base import ModerationModel
from .models.registry import get_model_class
from .policy import Policy
from .processing import PROCESSOR_CONFIG, Processor, get_modality, processor_from_config
from .taxonomy import Taxonomy

FORMAT = "modelkit-checkpoint"
FORMAT_VERSION = 2
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
logger = logging.getLogger(__name__)



@dataclass
class Checkpoint:
    """Everything a checkpoint directory holds, in memory."""

    model: ModerationModel
    processor: Processor
    policy: Policy
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # Set by ``modelkit calibrate``: how the thresholds and temperatures were fitted.
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def taxonomy(self) -> Taxonomy:
        return self.policy.taxonomy


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _readable(path: str | Path) -> None:
    """Files are staged as temporary files (mode 0600); a checkpoint is shared, so 0644."""
    os.chmod(path, 0o644)


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, indent=2)
            handle.write("\n")
        _readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The model's state dict as safetensors (contiguous CPU tensors)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    try:
        save_file(state, str(path), metadata={"format": "pt"})
    except SafetensorError as err:  # its I/O errors carry the OS error number in the text only
        code = re.search(r"os error (\d+)", str(err))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None
    _readable(path)


def save_checkpoint(directory: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` into ``directory`` (created if needed), replacing any previous one and
    keeping the folder's other files (a training run's log and ``last/``).

    Files are first written to a staging folder beside ``directory`` and moved in one by one,
    ``config.json`` last; readers check the recorded hashes, so a half-replaced checkpoint is
    refused, never loaded as a mix. To replace a folder whole or not at all, see
    :func:`write_checkpoint_folder`. A write that fails (a full disk) raises an ``OSError`` that
    says how much the checkpoint needs.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.staging-"))
    except OSError as err:
        raise _with_size(err, directory, checkpoint) from None
    try:
        _write(staging, checkpoint)
        for name in [*json.loads((staging / CONFIG).read_text(encoding="utf-8"))["files"], "README.md", CONFIG]:
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target)
    except OSError as err:
        raise _with_size(err, directory, checkpoint) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _write(folder: Path, checkpoint: Checkpoint) -> None:
    """The checkpoint's files in ``folder`` (which exists), ``config.json`` with their hashes last."""
    model, processor, policy = checkpoint.model, checkpoint.processor, checkpoint.policy
    save_weights(model, folder / WEIGHTS)
    write_json(folder / PROCESSOR_CONFIG, processor.to_config())
    files = [WEIGHTS, PROCESSOR_CONFIG, *processor.save_assets(folder)]
    if checkpoint.metrics:
        write_json(folder / METRICS, checkpoint.metrics)
        files.append(METRICS)
    taxonomy = policy.taxonomy
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "modelkit_version": __version__,
        "torch_version": torch.__version__,
        "modality": processor.modality,
        "problem_type": "multi_label_classification",
        "activation": "sigmoid",
        "id2label": {str(i): c for i, c in enumerate(taxonomy.ids)},
        "label2id": {c: i for i, c in enumerate(taxonomy.ids)},
        "model": model.checkpoint_config(),
        "taxonomy": taxonomy.to_dict(),
        "thresholds": dict(policy.thresholds),
        "calibration": _calibration(checkpoint.calibration, policy),
        "extra": checkpoint.extra,
        "files": {name: sha256_file(folder / name) for name in files},
    }
    (folder / "README.md").write_text(_model_card(config, processor, checkpoint.metrics), encoding="utf-8")
    write_json(folder / CONFIG, config)


def _with_size(err: OSError, directory: Path, checkpoint: Checkpoint) -> OSError:
    """``err`` naming the checkpoint folder and the space its weights need."""
    needed = sum(t.numel() * t.element_size() for t in checkpoint.model.state_dict().values())
    reason = err.strerror or str(err)
    return OSError(err.errno, f"{reason} (the checkpoint needs about {max(needed / 2**20, 0.1):.1f} MB)",
                   str(err.filename or directory))


def write_checkpoint_folder(directory: str | Path | None, checkpoint: Checkpoint, *,
                            source: str | Path | None = None, overwrite: bool = False) -> Path:
    """Write ``checkpoint`` as the whole folder ``directory``, or leave it as it was.

    The files are written into a temporary folder beside it, which replaces it by a rename once
    complete: an interrupted or failed write (Ctrl-C, a full disk) leaves the old folder intact.
    A folder that is not empty is refused unless ``overwrite``, and so is ``source`` (the
    checkpoint the new one was made from). ``directory=None`` rewrites ``source`` in place,
    keeping its other files (a training run's log, ``last/``).
    """
    in_place = directory is None
    if in_place:
        if source is None:
            raise ValueError("write_checkpoint_folder: give a directory, or the source to rewrite in place")
        directory = Path(source)
    directory = Path(directory)
    if not in_place and source is not None and directory.resolve() == Path(source).resolve():
        raise ConfigError(f"{directory}: is the checkpoint itself; give a new folder (or no output folder, to "
                          "rewrite it in place where the command can)")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory}: a file, not a folder; give a folder to write the checkpoint into")
    if directory.is_dir() and not in_place and any(directory.iterdir()) and not overwrite:
        holds = "a checkpoint" if (directory / CONFIG).is_file() else "other files"
        raise ConfigError(f"{directory}: the folder is not empty (it holds {holds}); give a new folder, or pass "
                          "--overwrite to replace it")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.writing-"))
    except OSError as err:
        raise _with_size(err, directory, checkpoint) from None
    try:
        _write(staging, checkpoint)
        if in_place:
            _link_others(directory, staging)
        _swap_in(staging, directory)
    except OSError as err:
        raise _with_size(err, directory, checkpoint) from None
    finally:  # also on KeyboardInterrupt: the old folder stays, the half-written one goes
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _link_others(directory: Path, staging: Path) -> None:
    """Files of ``directory`` the new checkpoint does not write, hard-linked into ``staging``
    (links themselves, never what they point to)."""
    for root, folders, files in os.walk(directory):
        for name in [*files, *(f for f in folders if os.path.islink(os.path.join(root, f)))]:
            path = Path(root, name)
            target = staging / path.relative_to(directory)
            if target.exists() or target.is_symlink():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target, follow_symlinks=False)
            except OSError:  # another file system, or no hard links: a copy
                shutil.copy2(path, target, follow_symlinks=False)


def _swap_in(staging: Path, directory: Path) -> None:
    """``staging`` renamed to ``directory``; an existing ``directory`` is removed only after."""
    if not directory.exists():
        os.rename(staging, directory)
        return
    retired = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.old-"))
    os.rmdir(retired)
    os.rename(directory, retired)
    try:
        os.rename(staging, directory)
    except BaseException:
        os.rename(retired, directory)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _calibration(record: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """The calibration record with the policy's temperatures (the ones in use) in it."""
    record = {k: v for k, v in record.items() if k != "temperature"}
    temperatures = {c: t for c, t in policy.temperatures.items() if t != 1.0}
    return {**record, "temperature": temperatures} if temperatures else record


# -- reading ----------------------------------------------------------------------------------
def read_config(directory: str | Path) -> dict[str, Any]:
    """Parse and check ``config.json`` of a checkpoint directory (format 1 converted to 2).

    Checks the structure only; :func:`verify_files` checks the files it lists.
    """
    directory = Path(directory)
    if directory.is_file():
        raise CheckpointError(f"{directory}: a file, not a checkpoint directory; give its folder")
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory (it does not exist)")
    path = directory / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{directory}: no {CONFIG}; is this a modelkit checkpoint directory?")
    config = _read_json(path)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a modelkit checkpoint config (missing format: {FORMAT})")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {version} is newer than this modelkit ({__version__}) "
                              "understands; upgrade modelkit")
    for key in ("model", "taxonomy", "thresholds", "files"):
        if not isinstance(config.get(key), dict):
            raise CheckpointError(f"{path}: field '{key}' is missing or not a mapping")
    files = config["files"]
    if not files:
        raise CheckpointError(f"{path}: the 'files' manifest is empty; without hashes nothing can be verified")
    required = [WEIGHTS] if version == 1 else [WEIGHTS, PROCESSOR_CONFIG]
    for name in required:
        if name not in files:
            raise CheckpointError(f"{path}: the 'files' manifest does not list {name}")
    for name, digest in files.items():
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise CheckpointError(f"{path}: files.{name}: expected a SHA-256 hex digest, got {digest!r}")
    if version == 1:
        return _convert_format_1(config, path)
    if "processor" in config:
        raise CheckpointError(f"{path}: unexpected field 'processor' (format 2 keeps it in {PROCESSOR_CONFIG})")
    return config


def _convert_format_1(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """Format 1 kept preprocessing in the model config; split it into model + processor."""
    model = dict(config["model"])
    name = str(model.pop("name", ""))
    try:
        model, processor = get_model_class(name).split_legacy_config(model)
    except (ConfigError, NotImplementedError) as err:
        raise CheckpointError(f"{path}: format 1 checkpoint that cannot be converted ({err})") from None
    logger.warning("%s: written by modelkit 0.1 (checkpoint format 1); converted in memory. "
                   "Rewrite it once with: modelkit convert %s", path, path.parent)
    return {**config, "format_version": FORMAT_VERSION, "converted_from": 1, "model": {"name": name, **model},
            "processor": processor}


def verify_files(directory: str | Path, config: dict[str, Any]) -> None:
    """Every file the manifest lists exists inside ``directory`` with its recorded hash."""
    directory = Path(directory)
    root = directory.resolve()
    for name, expected in config["files"].items():
        path = (directory / name).resolve()
        if root not in path.parents:
            raise CheckpointError(f"{directory}/{CONFIG}: file entry {name!r} points outside the checkpoint")
        if not path.is_file():
            raise CheckpointError(f"{directory}: file {name} is missing (listed in {CONFIG})")
        if sha256_file(path) != expected:
            raise CheckpointError(
                f"{directory}: {name} does not match the hash recorded in {CONFIG}; "
                "the file was altered or only partly written"
            )


def _taxonomy(config: dict[str, Any], directory: Path) -> Taxonomy:
    """The stored taxonomy, which must agree with ``id2label`` / ``label2id`` (output columns)."""
    where = f"{directory}/{CONFIG}"
    taxonomy = Taxonomy.from_dict(config["taxonomy"], where=f"{where}: taxonomy")
    expected = {str(i): c for i, c in enumerate(taxonomy.ids)}
    id2label = config.get("id2label")
    if id2label != expected:
        raise CheckpointError(f"{where}: id2label {id2label!r} does not match the taxonomy's category order "
                              f"{taxonomy.ids}; the output columns would be mislabelled")
    label2id = config.get("label2id")
    if label2id is not None and label2id != {c: i for i, c in enumerate(taxonomy.ids)}:
        raise CheckpointError(f"{where}: label2id {label2id!r} does not match the taxonomy's category order")
    return taxonomy


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: JSON nested too deeply to be a checkpoint file") from None


def _open(directory: str | Path) -> tuple[Path, dict[str, Any], Processor]:
    """Checked config and the processor of a checkpoint directory."""
    directory = Path(directory)
    config = read_config(directory)
    verify_files(directory, config)
    stored = config["processor"] if "processor" in config else _read_json(directory / PROCESSOR_CONFIG)
    try:
        processor = processor_from_config(stored, directory)
    except ConfigError as err:
        raise CheckpointError(f"{directory}: {err}") from None
    return directory, config, processor


def _weight_shapes(directory: Path) -> dict[str, list[int]]:
    """Name -> shape of every tensor in the weights file, from its header (nothing is loaded)."""
    try:
        with safe_open(str(directory / WEIGHTS), framework="pt") as handle:
            return {name: handle.get_slice(name).get_shape() for name in handle.keys()}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{directory}/{WEIGHTS}: cannot read weights ({err})") from None


def load_processor(directory: str | Path) -> Processor:
    """The processor of a checkpoint directory, without building the model (eval mode)."""
    return _open(directory)[2]


def load_checkpoint(directory: str | Path) -> Checkpoint:
    """Load a checkpoint directory written by :func:`save_checkpoint` (no unpickling, no network)."""
    directory, config, processor = _open(directory)
    stored = sum(math.prod(shape) for shape in _weight_shapes(directory).values())
    try:
        taxonomy = _taxonomy(config, directory)
        model_config = dict(config["model"])
        model_class = get_model_class(str(model_config.pop("name", "")))
        # Sizes come from a file anyone may have edited: compare them with the weights before
        # building what they say (embed_dim: 1000000000 would allocate, 100000 layers would hang).
        bound = model_class.minimum_parameters(model_config, len(taxonomy), processor)
        if bound is not None and bound > stored:
            raise CheckpointError(f"{directory}/{CONFIG}: model: the config describes at least {bound:,} parameters, "
                                  f"but {WEIGHTS} holds {stored:,}; refusing to build it")
        model = model_class.from_checkpoint(model_config, len(taxonomy), processor)
        calibration = config.get("calibration") or {}
        if not isinstance(calibration, dict):
            raise ConfigError("calibration: expected a mapping")
        policy = Policy(taxonomy, config["thresholds"], calibration.get("temperature") or {})
    except ConfigError as err:
        raise CheckpointError(f"{directory}/{CONFIG}: {err}") from None
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
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{directory}/{WEIGHTS}: tensor {name} holds non-finite values (NaN or infinity); "
                                  "weights like these score inputs at random or not at all")
    try:
        model.load_state_dict(state)
    except ConfigError as err:  # a model that checks what it loaded (a stored ONNX graph)
        raise CheckpointError(f"{directory}/{WEIGHTS}: {err}") from None
    model.eval()
    metrics = _read_json(directory / METRICS) if METRICS in config["files"] else {}
    return Checkpoint(model, processor, policy, metrics, dict(config.get("extra") or {}), dict(calibration))


def _card_metadata(config: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The YAML block a Hugging Face model card starts with: library, task, tags, languages, base
    model and, from the dev metrics, a ``model-index``."""
    model = config["model"]
    modality = config["modality"]
    try:  # what the modality tells the Hub: its task (pipeline_tag) and languages
        declared = get_modality(modality)
    except ConfigError:
        declared = None
    task = declared.hub_task if declared is not None else None
    metadata: dict[str, Any] = {
        "library_name": "modelkit",
        "tags": ["modelkit", "content-moderation", "multi-label-classification", modality, model.get("name")],
    }
    if task:
        metadata["pipeline_tag"] = task
    if declared is not None and declared.languages:
        metadata["language"] = list(declared.languages)
    if isinstance(model.get("backbone"), str):
        metadata["base_model"] = model["backbone"]
    if (config.get("extra") or {}).get("distilled_from"):
        metadata["tags"].append("distillation")
    dev = metrics.get("dev") if isinstance(metrics.get("dev"), dict) else None
    if dev:
        scalars = [{"type": name, "name": f"dev {name.replace('_', ' ')}", "value": round(float(value), 4)}
                   for name, value in dev.items()
                   if name in ("accuracy", "macro_f1", "micro_f1", "macro_roc_auc") and isinstance(value, (int, float))]
        if scalars:
            metadata["model-index"] = [{"name": f"modelkit-{modality}-{model.get('name')}", "results": [{
                "task": {"type": task or "classification", "name": "multi-label moderation"},
                "dataset": {"type": "custom", "name": "dev split of the training recipe"},
                "metrics": scalars}]}]
    return metadata


def _inert(text: Any) -> str:
    """Config text as a model card shows it: HTML escaped (a category named ``<script>`` is shown,
    never run, by a Hub page or any Markdown viewer), pipes escaped so it stays in its table
    cell, on one line."""
    return html.escape(" ".join(str(text).split())).replace("|", "\\|")


def _json_block(data: Any) -> list[str]:
    """A fenced JSON block whose content cannot close its fence or open a tag: ``<``, ``>``, ``&``
    and backticks are written as JSON escapes, which any JSON reader turns back."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    for char in "<>&`":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return ["```json", text, "```"]


def _model_card(config: dict[str, Any], processor: Processor, metrics: dict[str, Any]) -> str:
    import yaml

    front = yaml.safe_dump(_card_metadata(config, metrics), allow_unicode=True, sort_keys=False).strip()
    modality = _inert(config["modality"])
    lines = [
        "---",
        front,
        "---",
        "",
        f"# modelkit {modality} classifier ({_inert(config['model'].get('name'))}, processor {_inert(processor.name)})",
        "",
        "Multi-label: one independent sigmoid score per category. Never apply softmax.",
        "",
        "```python",
        "import modelkit",
        "clf = modelkit.load('path/to/this/directory')   # or modelkit.load_from_hub('org/name')",
        f"clf.predict([...])   # {modality} inputs",
        "```",
        "",
        "| category | English | 中文 | threshold |",
        "| --- | --- | --- | --- |",
    ]
    for cat in config["taxonomy"]["categories"]:
        lines.append(f"| {_inert(cat['id'])} | {_inert(cat['name_en'])} | {_inert(cat['name_zh'])} | "
                     f"{config['thresholds'][cat['id']]:.3f} |")
    distilled = (config.get("extra") or {}).get("distilled_from")
    if distilled:
        teacher_dev = ", ".join(f"{_inert(k)} {v:.4f}" for k, v in distilled.get("teacher_dev", {}).items())
        lines += ["", "## Distillation", "", f"Trained on the scores of the teacher `{_inert(distilled['teacher'])}` (a "
                  f"`{_inert(distilled['teacher_model'])}` model; on this model's dev split: {teacher_dev}) over "
                  f"{distilled['labelled_rows']} labelled rows (gold weight {distilled['gold_weight']}) and "
                  f"{distilled['unlabelled_rows']} unlabelled rows, with {distilled.get('copies', 0)} perturbed "
                  f"copies of each labelled row, temperature {distilled['temperature']}."]
    exported = (config.get("extra") or {}).get("exported_from")
    if exported:
        lines += ["", "## Export", "", f"ONNX (opset {exported['onnx_opset']}) export of a `{_inert(exported['model'])}` "
                  f"model; largest logit difference from PyTorch at export: {exported['max_abs_logit_gap']:.2g}."]
    if config.get("calibration"):
        lines += ["", "## Calibration", "", *_json_block(config["calibration"])]
    if metrics:
        lines += ["", "## Metrics", "", *_json_block(metrics)]
    lines += ["", f"modelkit {_inert(config['modelkit_version'])}, torch {_inert(config['torch_version'])}", ""]
    return "\n".join(lines)
