"""Records: read tables through Hugging Face ``datasets`` and encode labels against a taxonomy.

A row has one input field per modality (``data.inputs: {text: title, image: cover}``;
``data.input_field: title`` is the shorthand for one text), an optional id, and labels given as
* a list of category ids per row (``labels: [abuse, violence]``; ``[]``: no violation),
* a single category id per row (``label: abuse``),
* one 0/1 column per category (``label_columns``), or
* the dataset's own values mapped to category ids by ``label_map`` (``{1: [abuse], 0: []}``).
A missing label (null, NaN, an empty CSV cell) or a value that is neither a category nor in the
map is an error naming file, row, column and value, unless ``data.drop_invalid_labels`` leaves
such rows out (counted in the run log).

Inputs of a modality that reads files (images, videos) are paths relative to the table that
lists them; a path that leads out of the table's folder is refused. Such data can also be a
``datasets`` Image column, or what a modality registers a reader for (:func:`register_reader`;
the image package reads folder trees, one sub-folder per category plus ``clean/``, and IDX file
pairs as MNIST and Fashion-MNIST ship).
CSV cells are read as text, exactly as written (``007`` stays ``007``, ``NA`` stays ``NA``),
unless ``data.column_types`` converts a column.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from ..errors import DataError
from ..processing import check_input, get_modality
from ..plugins import Registry
from ..taxonomy import Taxonomy

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_CONVERTERS = {"int": int, "float": float, "bool": lambda v: {"true": True, "false": False, "1": True, "0": False}[v.lower()]}


def convert_cell(kind: str, value: str) -> Any:
    """A CSV cell (text) as ``kind`` (int, float or bool); KeyError or ValueError when it is not."""
    return _CONVERTERS[kind](value)



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
    # Few-shot training: keep this many seeded rows of each label set of the train file (rows
    # with no category count as one set) before dev is split off from them.
    per_class: int | None = None
    # A column of timed labels per row, [{category, start_s, end_s}] (where in a video each
    # category is seen); used when present, by models that score parts of inputs.
    segments_field: str | None = "segments"
    # Training data whose files are missing or cannot be decoded: an error naming the file
    # (false), or a warning, and the rows left out with their count in the run log (true).
    skip_bad_files: bool = False
    # Rows whose labels are missing (null, NaN, an empty cell) or unknown: an error naming file,
    # row and column (false), or left out with their count in the run log (true).
    drop_invalid_labels: bool = False

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
        if self.per_class is not None and self.per_class < 1:
            raise ValueError(f"data.per_class must be >= 1 (or unset for all rows), got {self.per_class}")

    @property
    def input_columns(self) -> dict[str, str]:
        """modality -> column name."""
        return dict(self.inputs) if self.inputs else {"text": self.input_field or "text"}


_FOREIGN_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32-LE"), (codecs.BOM_UTF32_BE, "UTF-32-BE"),
                  (codecs.BOM_UTF16_LE, "UTF-16-LE"), (codecs.BOM_UTF16_BE, "UTF-16-BE"))


def utf8_start(path: Path) -> int:
    """How many bytes a UTF-8 text table starts with that are not text (a byte-order mark: 3,
    else 0). A file in UTF-16 or UTF-32 is refused with its encoding named: read as UTF-8 it
    would be garbage, a row per accidental newline byte."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    for bom, encoding in _FOREIGN_BOMS:  # UTF-32-LE's mark begins with UTF-16-LE's: longest first
        if head.startswith(bom):
            raise DataError(f"{path}: the file is encoded as {encoding} (it starts with a byte-order mark); "
                            "re-encode it as UTF-8")
    if head.count(b"\x00") > len(head) // 4:
        raise DataError(f"{path}: the file looks like UTF-16 or UTF-32 text (NUL bytes between the characters); "
                        "re-encode it as UTF-8")
    return len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0


def starts_with_array(path: Path) -> bool:
    """A .json file that holds one array of rows rather than a row per line."""
    with open(path, "rb") as handle:
        handle.seek(utf8_start(path))
        return handle.read(4096).lstrip()[:1] == b"["


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

    with open(path, newline="", encoding="utf-8-sig") as handle:
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
                converted.append(convert_cell(kind, value))
            except (KeyError, ValueError):
                raise DataError(f"{path}, row {row}: column {column!r} is not {kind}: {value!r}") from None
        table = table.remove_columns(column).add_column(column, converted)
    return table


@dataclass(frozen=True)
class TableReader:
    """A way to read data the core has no format for, from a modality (the image package reads
    folder trees of files and IDX files): ``accepts(path)`` says whether it reads ``path``,
    ``read(path, file_field)`` returns its rows as a ``datasets.Dataset``."""

    accepts: Callable[[Path], bool]
    read: Callable[[Path, str | None], Any]


_READERS: Registry[TableReader] = Registry("data reader", "data.format")


def register_reader(name: str, reader: TableReader) -> None:
    """Let :func:`load_table` read the paths ``reader`` accepts (tried in name order)."""
    _READERS.add(name, reader)


def load_table(source: Any, format: str | None = None, column_types: dict[str, str] | None = None,
               file_field: str | None = None):
    """Load a jsonl/csv/parquet file, or what a modality's reader accepts (:func:`register_reader`:
    a folder tree of pictures, an IDX file; ``file_field`` names the column of file paths such a
    reader makes); a ``datasets.Dataset`` passes through."""
    import datasets

    if isinstance(source, datasets.Dataset):
        return source
    path = Path(source)
    if path.is_dir() or (format is None and path.suffix.lower() not in FORMATS):
        for name in _READERS.names():
            reader = _READERS.get(name)
            if reader.accepts(path):
                return reader.read(path, file_field)
        if path.is_dir():
            raise DataError(f"{path}: is a folder, and no installed modality reads folders as data; give a jsonl, "
                            "csv or parquet file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    builder = format or FORMATS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; use .jsonl, .csv or .parquet or set data.format")
    if builder in ("json", "csv"):
        utf8_start(path)
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


def row_name(table, row: int, id_field: str | None) -> str:
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
    # row -> why its input cannot be used (a path leading out of the manifest's folder).
    problems: dict[int, str] = field(default_factory=dict)
    # What was left out under data.skip_bad_files and data.drop_invalid_labels: "<where>: <why>" per
    # row. Reported once: a split made from these rows (dev split off, folds) does not copy them.
    skipped: list[str] = field(default_factory=list)
    dropped_labels: list[str] = field(default_factory=list)

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
        if row in self.problems:
            return self.problems[row]
        for modality, values in self.columns.items():
            problem = check_input(modality, values[row])
            if problem is not None:
                return f"{modality} input: {problem}"
        return None


# Linux limits: a name of 255 bytes, a path of 4,096.
_NAME_BYTES, _PATH_BYTES = 255, 4095


def file_name_problem(value: str) -> str | None:
    """Why no file system could hold the path ``value`` (a NUL, a lone surrogate, a name too
    long), or None. Asked before the path is used, where the OS would raise instead."""
    if "\x00" in value:
        return f"path {value!r} contains a NUL character, which no file name can hold"
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        return f"path {value!r} is not a usable file name (it is not valid Unicode text)"
    if len(encoded) > _PATH_BYTES or any(len(part) > _NAME_BYTES for part in encoded.split(b"/")):
        return f"path {value[:40]!r}... is not a usable file name (longer than file systems allow)"
    return None


def resolve_path(value: str, base: Path | None) -> tuple[str, str | None]:
    """A file input as an absolute path inside ``base`` (the manifest's folder), and the reason
    it cannot be used (no file system can hold it, or it leads out of that folder), or None."""
    problem = file_name_problem(value)
    if problem is not None or base is None:
        return value, problem
    try:
        path = (base / value).resolve()
    except (OSError, ValueError) as err:
        return value, f"path {value!r} is not a usable file name ({err})"
    if base not in path.parents:
        return str(path), f"path {value!r} leads out of the manifest's folder {base}"
    return str(path), None


def _resolve_paths(values: list[Any], base: Path | None, problems: dict[int, str], modality: str) -> list[Any]:
    """File inputs as absolute paths inside ``base`` (the manifest's folder); others unchanged."""
    resolved = []
    for row, value in enumerate(values):
        if isinstance(value, str) and value:
            value, problem = resolve_path(value, base)
            if problem:
                problems.setdefault(row, f"{modality} input: {problem}")
        resolved.append(value)
    return resolved


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

    def encode(self, table, source: str) -> tuple[np.ndarray, dict[int, str]]:
        """Multi-hot labels ``[rows, categories]``, and row -> what is wrong with its labels
        (missing, or a value the taxonomy and label map do not know); such rows are all zeros."""
        cfg = self.config
        out = np.zeros((len(table), len(self.taxonomy)), dtype=np.float32)
        problems: dict[int, str] = {}

        def bad(row: int, name: str, problem: str) -> None:
            problems.setdefault(row, f"{source}, {row_name(table, row, cfg.id_field)}: column {name!r}: {problem}")

        if cfg.label_columns:
            for name in cfg.label_columns:
                j = self.taxonomy.index(name)
                for row, value in enumerate(column(table, name, source, "data.label_columns")):
                    if _missing(value):
                        bad(row, name, f"label is missing ({_describe_missing(value)}); write 0 or 1")
                    elif value in (0, 1, True, False, "0", "1"):
                        out[row, j] = float(int(value))
                    else:
                        bad(row, name, f"must be 0 or 1, got {value!r}")
            out[list(problems)] = 0.0
            return out, problems
        field = cfg.label_field
        if not field:
            raise DataError(f"{source}: no labels; set data.label_field or data.label_columns")
        cache: dict[Any, list[int] | str] = {}
        for row, value in enumerate(column(table, field, source, "data.label_field or data.label_columns")):
            key = tuple(value) if isinstance(value, list) else value
            try:
                columns = cache[key]
            except KeyError:
                columns = cache[key] = self._columns_for(value)
            except TypeError:  # unhashable (a dict): report it
                columns = self._columns_for(value)
            if isinstance(columns, str):
                bad(row, field, columns)
            else:
                out[row, columns] = 1.0
        return out, problems

    def _columns_for(self, value: Any) -> list[int] | str:
        """The category columns of one row's label value, or what is wrong with it."""
        if _missing(value):
            return (f"label is missing ({_describe_missing(value)}); write [] for a row with no category"
                    + (" or map a value to [] in data.label_map" if self.label_map is not None else ""))
        columns = []
        for item in value if isinstance(value, list) else [value]:
            if _missing(item):
                return f"the label list holds a missing value ({_describe_missing(item)})"
            if isinstance(item, float) and item.is_integer():  # JSON ints turn float beside a NaN
                item = int(item)
            if self.label_map is not None:
                targets = self.label_map.get(str(item))
                if targets is None:
                    return f"label {item!r} is not in data.label_map (keys: {', '.join(self.label_map)})"
            elif isinstance(item, str) and item in self.taxonomy:
                targets = [item]
            else:
                return (f"label {item!r} is not a category of the taxonomy ({', '.join(self.taxonomy.ids)}); "
                        "add a data.label_map to translate it")
            columns.extend(self.taxonomy.index(t) for t in targets)
        return columns


def _missing(value: Any) -> bool:
    """A label cell with nothing in it: null, NaN (how pandas and Arrow write a missing number) or
    blank text (an empty CSV cell). Never read as "no category": that is written as []."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or \
        (isinstance(value, str) and not value.strip())


def _describe_missing(value: Any) -> str:
    return "null" if value is None else "NaN" if isinstance(value, float) else "an empty cell"


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
    file_fields = [f for m, f in config.input_columns.items() if get_modality(m).files]
    table = load_table(source, config.format, config.column_types, file_field=file_fields[0] if file_fields else None)
    name = str(source) if not hasattr(source, "column_names") else "<dataset>"
    table = undecoded_files(table, file_fields)
    setting = "data.inputs" if config.inputs else "data.input_field"
    columns = {modality: column(table, field, name, setting) for modality, field in config.input_columns.items()}
    base = Path(source).resolve() if isinstance(source, (str, Path)) else None
    base = base if base is None or base.is_dir() else base.parent
    problems: dict[int, str] = {}
    for modality in columns:
        if get_modality(modality).files:
            columns[modality] = _resolve_paths(list(columns[modality]), base, problems, modality)
    labels, label_problems = None, {}
    if taxonomy is not None:
        encoder = LabelEncoder(taxonomy, config)
        if require_labels or encoder.has_labels(table):
            labels, label_problems = encoder.encode(table, name)
    ids = table[config.id_field] if config.id_field and config.id_field in table.column_names else list(range(len(table)))
    records = Records({m: list(v) for m, v in columns.items()}, labels, list(ids), table, name, problems)
    if label_problems and not config.drop_invalid_labels:
        first = label_problems[min(label_problems)]
        more = f" (and {len(label_problems) - 1} more rows)" if len(label_problems) > 1 else ""
        raise DataError(f"{first}{more}; data.drop_invalid_labels: true leaves such rows out")
    if not require_labels and not label_problems:
        return records

    def why(row: int) -> str | None:
        if row in problems:
            return problems[row]
        for modality, values in records.columns.items():
            problem = check_input(modality, values[row])
            if problem is not None:
                return f"field {config.input_columns[modality]!r} ({modality} input): {problem}"
        return None

    bad = [(row, problem) for row in range(len(records))
           if row not in label_problems and require_labels and (problem := why(row)) is not None]
    if not bad and not label_problems:
        return records
    messages = [f"{name}, {row_name(table, row, config.id_field)}: {problem}" for row, problem in bad]
    if bad and not config.skip_bad_files:
        raise DataError(f"{messages[0]}" + (f" (and {len(bad) - 1} more rows)" if len(bad) > 1 else "")
                        + ("; in a recipe, data.skip_bad_files: true leaves such rows out" if file_fields else ""))
    keep = sorted(set(range(len(records))) - {row for row, _ in bad} - set(label_problems))
    if not keep:
        raise DataError(f"{name}: every row has a bad input or label ({(messages or list(label_problems.values()))[0]})")
    kept = take_rows(records, keep)
    kept.source, kept.skipped = name, messages
    kept.dropped_labels = [label_problems[row] for row in sorted(label_problems)]
    return kept


def undecoded_files(table, fields: list[str]):
    """A ``datasets`` Image or Video column as {bytes, path} dicts: decoding waits for the
    processor (``datasets`` would decode videos with torchcodec, which needs system FFmpeg)."""
    import datasets

    for name in fields:
        feature = table.features.get(name) if name in table.column_names else None
        for kind in (datasets.Image, getattr(datasets, "Video", None)):
            if kind is not None and isinstance(feature, kind) and feature.decode:
                table = table.cast_column(name, kind(decode=False))
    return table


def sample_per_class(records: Records, per_class: int, seed: int) -> Records:
    """``per_class`` seeded rows of each label set (all of a set that has fewer)."""
    assert records.labels is not None
    rng = np.random.default_rng(seed)
    groups: dict[bytes, list[int]] = {}
    for row, labels in enumerate(records.labels):
        groups.setdefault(labels.astype(bool).tobytes(), []).append(row)
    chosen = [row for rows in groups.values() for row in rng.permutation(rows)[:per_class]]
    return _keeping_reports(records, take_rows(records, sorted(chosen)))


def split_records(records: Records, fraction: float, seed: int) -> tuple[Records, Records]:
    """Random train/dev split of ``records`` (used when a recipe has no dev file)."""
    order = np.random.default_rng(seed).permutation(len(records))
    cut = max(1, int(round(len(records) * fraction)))
    return _keeping_reports(records, take_rows(records, np.sort(order[cut:]))), take_rows(records, np.sort(order[:cut]))


def fold_records(records: Records, folds: int, fold: int, seed: int) -> tuple[Records, Records]:
    """(the other folds, fold ``fold``) of a seeded ``folds``-way split: cross-validation."""
    parts = np.array_split(np.random.default_rng(seed).permutation(len(records)), folds)
    held_out = np.sort(parts[fold])
    rest = np.sort(np.concatenate([p for i, p in enumerate(parts) if i != fold]))
    return _keeping_reports(records, take_rows(records, rest)), take_rows(records, held_out)


def _keeping_reports(source: Records, part: Records) -> Records:
    """``part`` with what reading ``source`` left out, so that it is reported once (with the
    training part), not once per split made from it."""
    part.skipped, part.dropped_labels = list(source.skipped), list(source.dropped_labels)
    return part


def take_rows(records: Records, index: Sequence[int]) -> Records:
    """The rows ``index`` of ``records``, in that order."""
    index = list(map(int, index))
    position = {row: i for i, row in enumerate(index)}
    return Records(
        {m: [values[i] for i in index] for m, values in records.columns.items()},
        None if records.labels is None else records.labels[index],
        [records.ids[i] for i in index],
        None if records.table is None else records.table.select(index),
        f"{records.source}[split]",
        {position[row]: problem for row, problem in records.problems.items() if row in position},
    )
