"""Inputs of the batch engine, read as a stream of rows: never a whole file in memory.

A source yields *raw rows* (a JSON line's bytes, a parquet row, a file path) cheaply and parses
one only when it is scored, so that a resumed run skips the rows of finished shards without
parsing them, and each process of a multi-GPU run parses only its own shards. Sources also say
how many rows they hold (for progress and ETA) and give a fingerprint, so that an output folder
is never continued with a different input.
"""

from __future__ import annotations

import array
import csv
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..data.records import FORMATS, DataConfig, DataError, resolve_path, starts_with_array, utf8_start
from ..processing import check_input, get_modality

try:  # four times faster than json on JSON lines, which parsing dominates for short texts
    from orjson import loads as _loads
except ImportError:
    _loads = json.loads

# Fingerprints read whole files below this size, and the head, tail and size above it.
_HASH_WHOLE_BYTES = 256 << 20
_HASH_EDGE_BYTES = 16 << 20


class RowError(Exception):
    """A raw row that cannot be parsed (a line that is not JSON); the row becomes an error record."""


class Source:
    """Rows of one input, in a fixed order; row ``i`` is the same row in every run."""

    name: str = "<iterable>"
    # The folder file paths in rows are relative to (a manifest's folder), or None.
    base: Path | None = None

    def count(self) -> int | None:
        """Number of rows, when it is cheap to know."""
        return None

    def fingerprint(self) -> str | None:
        """Identifies the input's content; None when it cannot be known (a Python iterable)."""
        return None

    def raw_rows(self) -> Iterator[Any]:
        raise NotImplementedError

    def parse(self, raw: Any) -> Any:
        return raw


def _hash_file(path: Path, digest: Any) -> None:
    size = path.stat().st_size
    digest.update(f"{size}:".encode())
    with open(path, "rb") as handle:
        if size <= _HASH_WHOLE_BYTES:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(handle.read(_HASH_EDGE_BYTES))
            handle.seek(size - _HASH_EDGE_BYTES)
            digest.update(handle.read(_HASH_EDGE_BYTES))


class _FileSource(Source):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.base = path.resolve().parent

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        _hash_file(self.path, digest)
        return digest.hexdigest()


class JsonlSource(_FileSource):
    """One JSON object per line; a blank or broken line is a row too (an error record)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.start = utf8_start(path)

    def count(self) -> int:
        lines, last = 0, b"\n"
        with open(self.path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                lines += block.count(b"\n")
                last = block[-1:]
        return lines + (last != b"\n")

    def raw_rows(self) -> Iterator[bytes]:
        with open(self.path, "rb") as handle:
            handle.seek(self.start)
            yield from handle

    def parse(self, raw: bytes) -> Any:
        return parse_json_line(raw)


def parse_json_line(raw: bytes) -> Any:
    """One JSON line, or a :class:`RowError` saying why it is not one."""
    if not raw.strip():
        raise RowError("empty line")
    try:
        return _loads(raw)
    except ValueError:
        pass
    # Parse the rare bad line again with the standard library, for its message.
    try:
        return json.loads(raw)
    except UnicodeDecodeError as err:
        raise RowError(f"not UTF-8 text ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise RowError(f"not a JSON line ({err})") from None
    except RecursionError:
        raise RowError("JSON nested too deeply") from None


class JsonArraySource(_FileSource):
    """A .json file holding one array of rows. It is parsed whole (an array has no lines to
    stream), so it must fit in memory; write JSON lines for large inputs."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            rows = json.loads(path.read_bytes()[utf8_start(path):])
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"{path}: not a JSON array of rows ({err})") from None
        except RecursionError:
            raise DataError(f"{path}: JSON nested too deeply") from None
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a JSON array of rows, got {type(rows).__name__}")
        self.rows = rows

    def count(self) -> int:
        return len(self.rows)

    def raw_rows(self) -> Iterator[Any]:
        return iter(self.rows)


class CsvSource(_FileSource):
    """A CSV file with a header row; cells are text unless ``data.column_types`` converts them."""

    def __init__(self, path: Path, column_types: dict[str, str] | None) -> None:
        super().__init__(path)
        utf8_start(path)  # refuses UTF-16 and UTF-32; a UTF-8 mark is skipped by utf-8-sig
        self.column_types = column_types or {}

    def raw_rows(self) -> Iterator[dict[str, str]]:
        with open(self.path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            yield from csv.DictReader(handle)

    def parse(self, raw: dict[str, str]) -> dict[str, Any]:
        from ..data.records import convert_cell

        for column, kind in self.column_types.items():
            if column in raw:
                try:
                    raw[column] = convert_cell(kind, raw[column])
                except (KeyError, ValueError):
                    raise RowError(f"column {column!r} is not {kind}: {raw[column]!r}") from None
        return raw


class ParquetSource(_FileSource):
    def __init__(self, path: Path, columns: list[str]) -> None:
        import pyarrow.parquet as pq

        super().__init__(path)
        try:
            self.file = pq.ParquetFile(path)
        except Exception as err:  # pyarrow raises several types for a file that is not parquet
            raise DataError(f"{path}: cannot read as parquet: {err}") from None
        names = set(self.file.schema_arrow.names)
        self.columns = [column for column in columns if column in names] or None

    def count(self) -> int:
        return self.file.metadata.num_rows

    def raw_rows(self) -> Iterator[dict[str, Any]]:
        for batch in self.file.iter_batches(batch_size=4096, columns=self.columns):
            yield from batch.to_pylist()


class FolderSource(Source):
    """Every file under a folder (hidden ones aside), in sorted order; the id is its relative path."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.name = str(root)
        self.base = self.root
        self.files = sorted(
            path.relative_to(self.root).as_posix() for path in self.root.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(self.root).parts))
        if not self.files:
            raise DataError(f"{root}: no files in this folder")

    def count(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in self.files:
            stat = (self.root / name).stat()
            digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def raw_rows(self) -> Iterator[str]:
        return iter(self.files)

    def parse(self, raw: str) -> dict[str, str]:
        return {"id": raw, "path": raw}


class DatasetSource(Source):
    """A ``datasets.Dataset``; Image and Video columns stay undecoded (the processor decodes)."""

    def __init__(self, dataset: Any, file_fields: list[str]) -> None:
        from ..data.records import undecoded_files

        self.dataset = undecoded_files(dataset, file_fields)
        self.name = "<dataset>"

    def count(self) -> int:
        return len(self.dataset)

    def fingerprint(self) -> str:
        return f"dataset:{self.dataset._fingerprint}"

    def raw_rows(self) -> Iterator[dict[str, Any]]:
        return iter(self.dataset)


class IterableSource(Source):
    """Any Python iterable of rows (dicts) or bare inputs; read once, in order."""

    def __init__(self, rows: Iterable[Any]) -> None:
        self.rows = rows

    def count(self) -> int | None:
        return len(self.rows) if hasattr(self.rows, "__len__") else None

    def raw_rows(self) -> Iterator[Any]:
        return iter(self.rows)


def open_source(source: Any, data: DataConfig, file_input: bool, columns: list[str] | None = None) -> Source:
    """The :class:`Source` for a path (jsonl/csv/parquet file or a folder), a ``datasets``
    Dataset or an iterable. ``file_input``: the model reads files (a folder lists them);
    ``columns``: the columns a row needs (default: ``data``'s input and id fields)."""
    if isinstance(source, Source):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            if not file_input:
                raise DataError(f"{path}: a folder is an input for models that read files (images, videos); "
                                "give this model a jsonl, csv or parquet file")
            return FolderSource(path)
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        kind = data.format or FORMATS.get(path.suffix.lower())
        if kind is None:
            raise DataError(f"{path}: unknown file type {path.suffix!r}; use .jsonl, .csv or .parquet "
                            "(or a folder of files)")
        if kind == "csv":
            return CsvSource(path, data.column_types)
        if kind == "parquet":
            return ParquetSource(path, columns or [*data.input_columns.values(), data.id_field or ""])
        if path.suffix.lower() == ".json" and starts_with_array(path):
            return JsonArraySource(path)
        return JsonlSource(path)
    if hasattr(source, "column_names") and hasattr(source, "_fingerprint"):
        files = [field for modality, field in data.input_columns.items() if get_modality(modality).files]
        return DatasetSource(source, files)
    if isinstance(source, (bytes, Mapping)) or not isinstance(source, Iterable):
        raise TypeError(f"input: expected a file, a folder, a datasets.Dataset or an iterable of rows, "
                        f"got {type(source).__name__}")
    return IterableSource(source)


@dataclass
class Row:
    """One input row as the engine scores it: its id, its input value, or why there is none."""

    id: Any
    value: Any = None
    problem: str | None = None


def id_text(value: Any) -> tuple[str | None, str | None]:
    """A row's id as the text written to the output (``1`` and ``"1"`` are the same id), or why
    the row has no usable id."""
    if value is None:
        return None, "id is missing (null)"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None, f"id must be a string or a number, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return None, f"id must be a string or a finite number, got {value}"
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None, "id is not valid Unicode text"
    return text, None


class RowReader:
    """Raw rows -> :class:`Row`: the id, the model's input field(s) with file paths resolved
    against the source's folder, and the reason a row cannot be scored. A row without the id
    field is known by its position (as text, like every id); a row whose id cannot be written
    (null, an object) or that cannot be parsed is an error row without an id."""

    def __init__(self, source: Source, data: DataConfig,
                 parse: Callable[[Mapping[str, Any], str, Path | None], Any] | None = None) -> None:
        self.source = source
        self.columns = data.input_columns
        self.id_field = data.id_field
        # Instead of taking the input fields: the whole row -> the value to score (a post), raising
        # DataError naming what is wrong.
        self.parse = parse
        if isinstance(source, FolderSource):  # a folder is one file per row, whatever the training field
            self.columns = {modality: "path" for modality in self.columns}
            self.id_field = "id"

    def _id(self, index: int, row: Any) -> tuple[str | None, str | None]:
        if not isinstance(row, Mapping) or not self.id_field or self.id_field not in row:
            return str(index), None
        return id_text(row[self.id_field])

    def id_of(self, index: int, raw: Any) -> str | None:
        """Just the id of a raw row (None when it has none), for the duplicate check."""
        try:
            return self._id(index, self.source.parse(raw))[0]
        except RowError:
            return None

    def __call__(self, index: int, raw: Any) -> Row:
        try:
            row = self.source.parse(raw)
        except RowError as err:
            return Row(None, problem=f"row {index}: {err}")
        row_id, problem = self._id(index, row)
        if problem is not None:
            return Row(None, problem=f"row {index}: {problem}")
        if self.parse is not None:
            try:
                return Row(row_id, self.parse(row, row_id, self.source.base))
            except DataError as err:
                return Row(row_id, problem=str(err))
        if not isinstance(row, Mapping):
            if len(self.columns) > 1:
                return Row(row_id, problem=f"row {index}: expected a record with fields "
                                           f"{', '.join(self.columns.values())}, got {type(row).__name__}")
            return self._checked(Row(row_id, {next(iter(self.columns)): row}))
        values = {}
        for modality, field in self.columns.items():
            if field not in row:
                return Row(row_id, problem=f"no field {field!r} (fields: {', '.join(map(str, row)) or 'none'})")
            values[modality] = row[field]
        return self._checked(Row(row_id, values))

    def _checked(self, row: Row) -> Row:
        for modality, value in row.value.items():
            if get_modality(modality).files and isinstance(value, str) and value:
                value, problem = resolve_path(value, self.source.base)
                row.value[modality] = value
                if problem:
                    return Row(row.id, problem=f"{modality} input: {problem}")
            problem = check_input(modality, value)
            if problem is not None:
                field = self.columns[modality]
                return Row(row.id, problem=f"field {field!r} ({modality} input): {problem}")
        if len(row.value) == 1:
            row.value = next(iter(row.value.values()))
        return row


def duplicate_ids(source: Source, reader: RowReader, examples: int = 5) -> tuple[int, list[str]]:
    """How many ids occur on more than one row of ``source``, and the first few of them.

    Ids are held as 8-byte hashes, so a pass over a hundred million rows needs under 1 GB; the
    examples come from a second pass, made only when there are duplicates."""
    hashes = array.array("Q")
    for index, raw in enumerate(source.raw_rows()):
        row_id = reader.id_of(index, raw)
        if row_id is not None:
            hashes.append(_id_hash(row_id))
    values, counts = np.unique(np.frombuffer(hashes, dtype=np.uint64), return_counts=True)
    repeated = set(values[counts > 1].tolist())
    found: list[str] = []
    for index, raw in enumerate(source.raw_rows()) if repeated else ():
        row_id = reader.id_of(index, raw)
        if row_id is not None and row_id not in found and _id_hash(row_id) in repeated:
            found.append(row_id)
            if len(found) == min(examples, len(repeated)):
                break
    return len(repeated), found


def _id_hash(row_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(row_id.encode("utf-8"), digest_size=8).digest(), "little")
