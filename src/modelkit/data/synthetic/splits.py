"""Writing generated rows as JSONL, whole or cut into train / dev / test."""

from __future__ import annotations

import json
from pathlib import Path


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
