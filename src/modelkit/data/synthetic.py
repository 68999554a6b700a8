"""Small deterministic data sets for demos and tests, made by the modality packages.

Each modality registers a writer of its synthetic splits (``text``: bilingual rows, ``image``:
pictures with category motifs, ``video``: clips with timed motifs; see ``modelkit.<modality>.synthetic``),
so ``modelkit demo`` finds them without the core importing a modality. Not real moderation data.
Modalities also register a *planter*: one part of a post with a category's signal planted in it,
and where (synthetic posts, :mod:`modelkit.posts.synthetic`). Here too: writing generated rows as
JSONL, whole or cut into train / dev / test.
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
# planter(rng, category or None (clean), borderline, path (for a file part), **options) ->
# {"value": the text or the file's path, "location": where the signal is ({"start", "end"} in a
# text, {"box"} of a picture, {"t0", "t1"} of a video) or None}. A borderline part carries a weak
# form of the signal: its label is uncertain alone (see the modalities' synthetic modules).
Planter = Callable[..., dict[str, Any]]
_PLANTERS: Registry[Planter | str] = Registry("synthetic part planter", "modality")


def register_synthetic(modality: str, writer: SplitWriter | str) -> None:
    """Make ``writer`` the synthetic data set of ``modality`` (what ``modelkit demo`` trains on):
    a function, or ``"module:function"`` to import only when it is used."""
    _WRITERS.add(modality, writer)


def write_synthetic(modality: str, directory: Path, **options: Any) -> dict[str, Path]:
    """The registered synthetic splits of ``modality``, written into ``directory``."""
    return _resolved(_WRITERS.get(modality))(directory, **options)


def _resolved(entry: Any) -> Any:
    if isinstance(entry, str):
        module, name = entry.split(":")
        return getattr(importlib.import_module(module), name)
    return entry


def register_planter(modality: str, planter: Planter | str) -> None:
    """Make ``planter`` (or ``"module:function"``) the maker of ``modality`` parts of synthetic posts."""
    _PLANTERS.add(modality, planter)


def plant(modality: str, rng: Any, category: str | None, borderline: bool = False, path: Path | None = None,
          **options: Any) -> dict[str, Any]:
    """One synthetic ``modality`` part with ``category``'s signal (None: clean); see :data:`Planter`."""
    return _resolved(_PLANTERS.get(modality))(rng, category, borderline, path, **options)


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
