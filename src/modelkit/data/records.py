"""Records: read tables through Hugging Face ``datasets`` and encode labels against a taxonomy.

Labels can be given as
* a list of category ids per row (``labels: [abuse, violence]``),
* a single category id per row (``label: abuse``; empty/None = no violation),
* one 0/1 column per category (``label_columns``), or
* the dataset's own values mapped to category ids by ``label_map`` (``{1: [abuse], 0: []}``).
A value that is neither a category nor in the map is an error naming file, row and value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from ..taxonomy import Taxonomy

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class DataError(ValueError):
    """Input data is missing, malformed or has labels outside the taxonomy."""


@dataclass
class DataConfig:
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    format: Literal["json", "csv", "parquet"] | None = None
    input_field: str = "text"
    id_field: str | None = "id"
    label_field: str | None = "labels"
    label_columns: list[str] | None = None
    label_map: dict[str, list[str] | str] | None = None
    dev_fraction: float = 0.1
    # k-fold cross-validation (modelkit train --cv K sets these): the seeded fold ``fold`` of
    # ``folds`` is held out as the test split; dev for early stopping comes from the rest.
    folds: int = 0
    fold: int = 0
    # Seed of the dev split and of the folds; unset, train.seed decides. Ensemble members get
    # the ensemble's value, so members with their own training seeds still share every split.
    split_seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.dev_fraction < 1.0:
            raise ValueError(f"data.dev_fraction must be in [0, 1), got {self.dev_fraction}")
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"data.folds must be 0 (off) or >= 2, got {self.folds}")
        if self.folds and not 0 <= self.fold < self.folds:
            raise ValueError(f"data.fold must be in [0, {self.folds}), got {self.fold}")


def load_table(source: Any, format: str | None = None):
    """Load a jsonl/csv/parquet file (or pass through a ``datasets.Dataset``)."""
    import datasets

    if isinstance(source, datasets.Dataset):
        return source
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    builder = format or FORMATS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; use .jsonl, .csv or .parquet or set data.format")
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as err:  # datasets wraps parser errors in several exception types
        if builder == "json":
            _find_bad_json_line(path)
        raise DataError(f"{path}: cannot read as {builder}: {err}") from None


def _find_bad_json_line(path: Path) -> None:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}, line {line_number}: malformed JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {line_number}: expected a JSON object, got {type(row).__name__}")


def _row_name(table, row: int, id_field: str | None) -> str:
    if id_field and id_field in table.column_names:
        return f"row {row} (id {table[row][id_field]!r})"
    return f"row {row}"


@dataclass
class Records:
    """Inputs, multi-hot labels and ids of one split, plus the table for slicing by fields."""

    inputs: list[Any]
    labels: np.ndarray | None
    ids: list[Any]
    table: Any
    source: str

    def __len__(self) -> int:
        return len(self.inputs)


class LabelEncoder:
    """Row labels -> multi-hot float32 vectors in taxonomy order."""

    def __init__(self, taxonomy: Taxonomy, config: DataConfig) -> None:
        self.taxonomy = taxonomy
        self.config = config
        self.label_map: dict[str, list[str]] | None = None
        if config.label_map is not None:
            self.label_map = {}
            for raw, mapped in config.label_map.items():
                targets = [mapped] if isinstance(mapped, str) else list(mapped)
                unknown = [t for t in targets if t not in taxonomy]
                if unknown:
                    raise DataError(
                        f"data.label_map.{raw}: {unknown[0]!r} is not a category of the taxonomy "
                        f"({', '.join(taxonomy.ids)})"
                    )
                self.label_map[str(raw)] = targets
        for column in config.label_columns or []:
            if column not in taxonomy:
                raise DataError(f"data.label_columns: {column!r} is not a category of the taxonomy")

    def has_labels(self, table) -> bool:
        cfg = self.config
        if cfg.label_columns:
            return all(c in table.column_names for c in cfg.label_columns)
        return bool(cfg.label_field) and cfg.label_field in table.column_names

    def encode(self, table, source: str) -> np.ndarray:
        cfg = self.config
        out = np.zeros((len(table), len(self.taxonomy)), dtype=np.float32)
        if cfg.label_columns:
            for column in cfg.label_columns:
                if column not in table.column_names:
                    raise DataError(f"{source}: no label column {column!r}; columns: {', '.join(table.column_names)}")
                j = self.taxonomy.index(column)
                for row, value in enumerate(table[column]):
                    if value in (0, 1, True, False, "0", "1"):
                        out[row, j] = float(int(value))
                    else:
                        where = _row_name(table, row, cfg.id_field)
                        raise DataError(f"{source}, {where}: column {column!r} must be 0 or 1, got {value!r}")
            return out
        field = cfg.label_field
        if not field or field not in table.column_names:
            raise DataError(
                f"{source}: no label column {field!r}; columns: {', '.join(table.column_names)}; "
                "set data.label_field or data.label_columns"
            )
        cache: dict[Any, list[int]] = {}
        for row, value in enumerate(table[field]):
            key = tuple(value) if isinstance(value, list) else value
            try:
                columns = cache[key]
            except KeyError:
                columns = cache[key] = self._columns_for(value, table, row, source)
            except TypeError:  # unhashable (a dict): report it
                columns = self._columns_for(value, table, row, source)
            out[row, columns] = 1.0
        return out

    def _columns_for(self, value: Any, table, row: int, source: str) -> list[int]:
        items = value if isinstance(value, list) else ([] if value is None or value == "" else [value])
        columns = []
        for item in items:
            if self.label_map is not None:
                targets = self.label_map.get(str(item))
                if targets is None:
                    where = _row_name(table, row, self.config.id_field)
                    raise DataError(
                        f"{source}, {where}: label {item!r} is not in data.label_map "
                        f"(keys: {', '.join(self.label_map)})"
                    )
            elif isinstance(item, str) and item in self.taxonomy:
                targets = [item]
            else:
                where = _row_name(table, row, self.config.id_field)
                raise DataError(
                    f"{source}, {where}: label {item!r} is not a category of the taxonomy "
                    f"({', '.join(self.taxonomy.ids)}); add a data.label_map to translate it"
                )
            columns.extend(self.taxonomy.index(t) for t in targets)
        return columns


def read_records(
    source: Any,
    config: DataConfig,
    taxonomy: Taxonomy | None,
    require_labels: bool = True,
) -> Records:
    """Load one split: check the input column and encode labels (when present or required)."""
    table = load_table(source, config.format)
    name = str(source) if not hasattr(source, "column_names") else "<dataset>"
    field = config.input_field
    if field not in table.column_names:
        raise DataError(
            f"{name}: no input column {field!r}; columns: {', '.join(table.column_names)}; set data.input_field"
        )
    inputs = table[field]
    labels = None
    if taxonomy is not None:
        encoder = LabelEncoder(taxonomy, config)
        if require_labels or encoder.has_labels(table):
            labels = encoder.encode(table, name)
    if require_labels:
        for row, value in enumerate(inputs):
            if not isinstance(value, str):
                where = _row_name(table, row, config.id_field)
                raise DataError(f"{name}, {where}: field {field!r} must be a string, got {value!r}")
    ids = table[config.id_field] if config.id_field and config.id_field in table.column_names else list(range(len(table)))
    return Records(list(inputs), labels, list(ids), table, name)


def split_records(records: Records, fraction: float, seed: int) -> tuple[Records, Records]:
    """Random train/dev split of ``records`` (used when a recipe has no dev file)."""
    order = np.random.default_rng(seed).permutation(len(records))
    cut = max(1, int(round(len(records) * fraction)))
    return _take(records, np.sort(order[cut:])), _take(records, np.sort(order[:cut]))


def fold_records(records: Records, folds: int, fold: int, seed: int) -> tuple[Records, Records]:
    """(the other folds, fold ``fold``) of a seeded ``folds``-way split: cross-validation."""
    parts = np.array_split(np.random.default_rng(seed).permutation(len(records)), folds)
    held_out = np.sort(parts[fold])
    rest = np.sort(np.concatenate([p for i, p in enumerate(parts) if i != fold]))
    return _take(records, rest), _take(records, held_out)


def _take(records: Records, index: Sequence[int]) -> Records:
    index = list(map(int, index))
    return Records(
        [records.inputs[i] for i in index],
        None if records.labels is None else records.labels[index],
        [records.ids[i] for i in index],
        records.table.select(index),
        f"{records.source}[split]",
    )
