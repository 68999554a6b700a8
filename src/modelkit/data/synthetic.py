"""Small deterministic data sets for demos and tests, made by the modality packages.

Each modality registers a writer of its synthetic splits (``text``: bilingual rows, ``image``:
pictures with category motifs, ``video``: clips with timed motifs; see ``modelkit.<modality>.synthetic``),
so ``modelkit demo`` finds them without the core importing a modality. Not real moderation data.
Here too: writing generated rows as JSONL, whole or cut into train / dev / test.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Callable

from ..plugins import Registry

# writer(directory, **options) -> {"train": path, "dev": path, "test": path}
SplitWriter = Callable[..., dict[str, Path]]
_WRITERS: Registry[SplitWriter | str] = Registry("synthetic data writer", "modality")


def register_synthetic(modality: str, writer: SplitWriter | str) -> None:
    """Make ``writer`` the synthetic data set of ``modality`` (what ``modelkit demo`` trains on):
    a function, or ``"module:function"`` to import only when it is used."""
    _WRITERS.add(modality, writer)


def write_synthetic(modality: str, directory: Path, **options: Any) -> dict[str, Path]:
    """The registered synthetic splits of ``modality``, written into ``directory``."""
    writer = _WRITERS.get(modality)
    if isinstance(writer, str):
        module, name = writer.split(":")
        writer = getattr(importlib.import_module(module), name)
    return writer(directory, **options)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return path


def write_splits(directory: Path, rows: list[dict]) -> dict[str, Path]:
    """``train.jsonl``, ``dev.jsonl`` and ``test.jsonl`` (70/15/15) of rows already in a seeded random order."""
    directory.mkdir(parents=True, exist_ok=True)
    n = len(rows)
    cuts = {"train": rows[: int(0.7 * n)], "dev": rows[int(0.7 * n) : int(0.85 * n)], "test": rows[int(0.85 * n) :]}
    return {split: write_jsonl(directory / f"{split}.jsonl", part) for split, part in cuts.items()}
