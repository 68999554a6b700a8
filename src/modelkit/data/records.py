"""Records: read tables through Hugging Face ``datasets`` and encode labels against a taxonomy.

A row has one input field per modality (``data.inputs: {text: title, image: cover}``;
``data.input_field: title`` is the shorthand for one text), an optional id, and labels given as
* a list of category ids per row (``labels: [abuse, violence]``),
* a single category id per row (``label: abuse``; empty/None = no violation),
* one 0/1 column per category (``label_columns``), or
* the dataset's own values mapped to category ids by ``label_map`` (``{1: [abuse], 0: []}``).
A value that is neither a category nor in the map is an error naming file, row and value.
CSV cells are read as text, exactly as written (``007`` stays ``007``, ``NA`` stays ``NA``),
unless ``data.column_types`` converts a column.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from ..processing import check_input
from ..taxonomy import Taxonomy

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_CONVERTERS = {"int": int, "float": float, "bool": lambda v: {"true": True, "false": False, "1": True, "0": False}[v.lower()]}


class DataError(ValueError):
    """Input data is missing, malformed or has labels outside the taxonomy."""


@dataclass
class DataConfig:
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    format: Literal["json", "csv", "parquet"] | None = None
    # The input field of each modality a model may read: {text: title, image: cover_path}.
    inputs: dict[str, str] | None = None
    # Shorthand for inputs: {text: <input_field>}; the default when neither is set is "text".
    input_field: str | None = None
    id_field: str | None = "id"
    label_field: str | None = "labels"
    label_columns: list[str] | None = None
    label_map: dict[str, list[str] | str] | None = None
    # CSV columns to convert from text (every CSV cell is read as text otherwise).
    column_types: dict[str, Literal["int", "float", "bool"]] | None = None
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
        if self.inputs is not None and self.input_field is not None:
            raise ValueError("data.input_field is the shorthand for data.inputs: {text: FIELD}; set one of them")
        if self.inputs is not None and not self.inputs:
            raise ValueError("data.inputs: name at least one field, e.g. {text: text}")

    @property
    def input_columns(self) -> dict[str, str]:
        """modality -> column name."""
        return dict(self.inputs) if self.inputs else {"text": self.input_field or "text"}


def _check_utf8(path: Path) -> None:
    """Name the first line that is not UTF-8 (datasets would only say 'codec can't decode')."""
    with open(path, "rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}, line {line_number}: not UTF-8 text ({err.reason} at byte {err.start} "
                                "of the line); re-encode the file as UTF-8") from None


def _read_csv(path: Path, column_types: dict[str, str] | None):
    import datasets

    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise DataError(f"{path}: empty CSV file (no header row)")
    features = datasets.Features({name: datasets.Value("string") for name in header})
    table = datasets.load_dataset("csv", data_files=str(path), split="train", features=features,
                                  keep_default_na=False, na_filter=False)
    for column, kind in (column_types or {}).items():
        if column not in table.column_names:
            raise DataError(f"{path}: data.column_types.{column}: no such column; columns: {', '.join(header)}")
        converted = []
        for row, value in enumerate(table[column]):
            try:
                converted.append(_CONVERTERS[kind](value))
            except (KeyError, ValueError):
                raise DataError(f"{path}, row {row}: column {column!r} is not {kind}: {value!r}") from None
        table = table.remove_columns(column).add_column(column, converted)
    return table


def load_table(source: Any, format: str | None = None, column_types: dict[str, str] | None = None):
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
    if builder in ("json", "csv"):
        _check_utf8(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    try:
        if builder == "csv":
            table = _read_csv(path, column_types)
        else:
            table = datasets.load_dataset(builder, data_files=str(path), split="train")
    except DataError:
        raise
    except Exception as err:  # datasets wraps parser errors in several exception types
        if builder == "json":
            _find_bad_json_line(path)
        raise DataError(f"{path}: cannot read as {builder}: {err}") from None
    if len(table) == 0:
        raise DataError(f"{path}: no rows")
    return table


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


def column(table, field: str, source: str, setting: str = "data.input_field") -> list[Any]:
    """The values of ``field``, or a DataError listing the columns there are."""
    if field not in table.column_names:
        raise DataError(f"{source}: no column {field!r} (set {setting}); columns: {', '.join(table.column_names)}")
    return table[field]


@dataclass
class Records:
    """Input fields, multi-hot labels and ids of one split, plus the table for slicing by fields."""

    columns: dict[str, list[Any]]  # modality -> its value per row
    labels: np.ndarray | None
    ids: list[Any]
    table: Any
    source: str

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def inputs(self) -> list[Any]:
        """What a processor reads per row: the value for one modality, else a dict of them."""
        if len(self.columns) == 1:
            return next(iter(self.columns.values()))
        return [dict(zip(self.columns, values)) for values in zip(*self.columns.values())]

    def problem(self, row: int) -> str | None:
        """Why row ``row`` cannot be scored (its first invalid input), or None."""
        for modality, values in self.columns.items():
            problem = check_input(modality, values[row])
            if problem is not None:
                return f"{modality} input: {problem}"
        return None


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
        for label_column in config.label_columns or []:
            if label_column not in taxonomy:
                raise DataError(f"data.label_columns: {label_column!r} is not a category of the taxonomy")

    def has_labels(self, table) -> bool:
        cfg = self.config
        if cfg.label_columns:
            return all(c in table.column_names for c in cfg.label_columns)
        return bool(cfg.label_field) and cfg.label_field in table.column_names

    def encode(self, table, source: str) -> np.ndarray:
        cfg = self.config
        out = np.zeros((len(table), len(self.taxonomy)), dtype=np.float32)
        if cfg.label_columns:
            for name in cfg.label_columns:
                j = self.taxonomy.index(name)
                for row, value in enumerate(column(table, name, source, "data.label_columns")):
                    if value in (0, 1, True, False, "0", "1"):
                        out[row, j] = float(int(value))
                    else:
                        where = _row_name(table, row, cfg.id_field)
                        raise DataError(f"{source}, {where}: column {name!r} must be 0 or 1, got {value!r}")
            return out
        field = cfg.label_field
        if not field:
            raise DataError(f"{source}: no labels; set data.label_field or data.label_columns")
        cache: dict[Any, list[int]] = {}
        for row, value in enumerate(column(table, field, source, "data.label_field or data.label_columns")):
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
            if isinstance(item, float) and math.isnan(item):
                where = _row_name(table, row, self.config.id_field)
                raise DataError(f"{source}, {where}: label is NaN (a missing value); write null or [] for "
                                "a row with no category")
            if isinstance(item, float) and item.is_integer():  # JSON ints turn float beside a NaN
                item = int(item)
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
    """Load one split: find the input fields, encode labels (when present or required).

    With ``require_labels`` (training and evaluation) every input must be valid; otherwise
    (inference) invalid rows are kept, and :meth:`Records.problem` says what is wrong with each.
    """
    table = load_table(source, config.format, config.column_types)
    name = str(source) if not hasattr(source, "column_names") else "<dataset>"
    setting = "data.inputs" if config.inputs else "data.input_field"
    columns = {modality: column(table, field, name, setting) for modality, field in config.input_columns.items()}
    labels = None
    if taxonomy is not None:
        encoder = LabelEncoder(taxonomy, config)
        if require_labels or encoder.has_labels(table):
            labels = encoder.encode(table, name)
    ids = table[config.id_field] if config.id_field and config.id_field in table.column_names else list(range(len(table)))
    records = Records({m: list(v) for m, v in columns.items()}, labels, list(ids), table, name)
    if require_labels:
        for modality, values in records.columns.items():
            for row, value in enumerate(values):
                problem = check_input(modality, value)
                if problem is not None:
                    field = config.input_columns[modality]
                    raise DataError(f"{name}, {_row_name(table, row, config.id_field)}: field {field!r} "
                                    f"({modality} input): {problem}")
    return records


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
        {m: [values[i] for i in index] for m, values in records.columns.items()},
        None if records.labels is None else records.labels[index],
        [records.ids[i] for i in index],
        records.table.select(index),
        f"{records.source}[split]",
    )
