"""Checkpoints on the Hugging Face Hub: a checkpoint directory is a Hub model repository as is
(``README.md`` is its model card, with the Hub's YAML metadata).

``push_to_hub`` uploads one after checking that it loads; ``load_from_hub`` downloads (or finds
in the Hub cache) and loads it, trusting nothing in it (see :mod:`modelkit.checkpoint`). Both
take ``local_dir`` to use a folder in place of the Hub: ``local_dir / repo_id`` is the repository.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint
from .config import ConfigError


def _repository(local_dir: str | Path, repo_id: str) -> Path:
    if repo_id.count("/") != 1 or any(part in ("", ".", "..") for part in repo_id.split("/")):
        raise ConfigError(f"repo_id {repo_id!r}: expected 'owner/name'")
    return Path(local_dir) / repo_id


def push_to_hub(checkpoint: str | Path, repo_id: str, *, local_dir: str | Path | None = None,
                token: str | None = None, private: bool = False, commit_message: str | None = None) -> str:
    """Upload the checkpoint directory to the model repository ``repo_id`` (created if missing);
    returns the repository's address (or folder, with ``local_dir``)."""
    checkpoint = Path(checkpoint)
    load_checkpoint(checkpoint)  # never publish a directory that would not load
    files = [path for path in checkpoint.rglob("*") if path.is_file() and "last" not in path.relative_to(checkpoint).parts]
    if local_dir is not None:
        target = _repository(local_dir, repo_id)
        if target.exists():
            shutil.rmtree(target)
        for path in files:
            destination = target / path.relative_to(checkpoint)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
        return str(target)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(checkpoint), repo_type="model", ignore_patterns=["last/*"],
                      commit_message=commit_message or "Upload modelkit checkpoint")
    return f"https://huggingface.co/{repo_id}"


def load_from_hub(repo_id: str, *, revision: str | None = None, local_dir: str | Path | None = None,
                  **load_options: Any):
    """A :class:`~modelkit.Classifier` from the Hub repository ``repo_id`` (through the Hub cache;
    offline with ``HF_HUB_OFFLINE=1`` once downloaded), or from ``local_dir / repo_id``."""
    from .classifier import load

    if local_dir is not None:
        directory = _repository(local_dir, repo_id)
        if not directory.is_dir():
            raise ConfigError(f"repo_id {repo_id!r}: no repository at {directory}")
        return load(directory, **load_options)
    from huggingface_hub import snapshot_download

    return load(snapshot_download(repo_id, revision=revision, repo_type="model"), **load_options)
