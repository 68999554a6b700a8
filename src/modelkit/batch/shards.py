"""The output folder of a batch run: shards written atomically, and a manifest.

``part-00000.parquet`` (or ``.jsonl``) holds rows ``[0, shard_size)`` of the input, the next
part the next rows, and so on. A part is written under a temporary name and renamed when it is
complete and synced, so a part that exists is whole: a crash loses at most the shards being
written, and a rerun writes exactly those. ``manifest.json`` records what the folder is the
output of (input and checkpoint fingerprints, shard size, format); a run that does not match
is refused. When the last shard is in, the manifest gains the totals and ``complete: true``.

Parquet parts have one column per category (``score_<category>``), ``labels`` (a list),
``evidence`` and each of the modality's output fields (JSON text; a video's ``segments``), and
``error``; ids are text. JSON-lines parts hold the rows as :meth:`Prediction.to_dict` writes them,
with ``id`` first. :func:`read_predictions` reads either back as those dicts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence

import numpy as np

from ..config import ConfigError

if TYPE_CHECKING:
    from ..outputs import Outputs

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
OutputFormat = Literal["parquet", "jsonl"]
_BASE_COLUMNS = ("id", "labels", "evidence", "error")
_PART = re.compile(r"^part-(\d{5,})\.(parquet|jsonl)$")


class OutputFolderError(ConfigError):
    """The output folder belongs to another run, or cannot hold this one."""


def part_name(shard: int, output_format: str) -> str:
    return f"part-{shard:05d}.{output_format}"


def _sync_rename(temporary: Path, final: Path) -> None:
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_json_atomically(path: Path, data: Any) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _sync_rename(temporary, path)


def finished_shards(output: Path, output_format: str) -> dict[int, Path]:
    found = {}
    for path in output.iterdir() if output.is_dir() else ():
        match = _PART.match(path.name)
        if match and match.group(2) == output_format:
            found[int(match.group(1))] = path
    return found


@dataclass
class RunIdentity:
    """What an output folder is the output of; two runs may share a folder only if these agree."""

    input: str
    input_fingerprint: str | None
    checkpoint_fingerprint: str
    shard_size: int
    output_format: str
    fields: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"version": MANIFEST_VERSION, "input": self.input, "input_fingerprint": self.input_fingerprint,
                "checkpoint_fingerprint": self.checkpoint_fingerprint, "shard_size": self.shard_size,
                "format": self.output_format, "fields": self.fields}


def claim_output(output: Path, identity: RunIdentity, overwrite: bool, notes: dict[str, Any] | None = None,
                 extra: Sequence[str] = ()) -> dict[str, Any]:
    """Create ``output``'s manifest (with ``notes`` about the input, such as duplicate ids), or
    check that the one there is this run's; returns it.

    Refused: a folder with other files and no manifest, a manifest of another input, checkpoint,
    shard size or format, and continuing the output of an input whose content cannot be known
    (a Python iterable). ``overwrite`` first removes what an earlier run wrote there, the files
    and folders named in ``extra`` included (what a job writes beside its shards: a page).
    """
    manifest_path = output / MANIFEST
    if output.exists() and not output.is_dir():
        raise OutputFolderError(f"output {output}: is a file; the output is a folder of shards (give a new folder name)")
    if overwrite and manifest_path.is_file():
        for path in output.iterdir():
            if path.name in extra and path.is_dir():
                shutil.rmtree(path)
            elif _PART.match(path.name) or path.name in (MANIFEST, *extra) or path.name.endswith(".tmp"):
                path.unlink()
    wanted = identity.as_dict()
    if manifest_path.is_file():
        try:
            stored = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise OutputFolderError(f"output {output}: unreadable {MANIFEST} ({err}); use another folder") from None
        differences = [key for key in ("input_fingerprint", "checkpoint_fingerprint", "shard_size", "format", "fields")
                       if stored.get(key) != wanted[key]]
        if identity.input_fingerprint is None:
            differences.insert(0, "input (a Python iterable cannot be checked to be the same)")
        if differences:
            raise OutputFolderError(
                f"output {output} holds predictions of another run (differs in: {', '.join(differences)}; "
                f"that run read {stored.get('input')!r}); use another output folder, or overwrite it "
                "(--overwrite) to start again")
        return stored
    if output.is_dir() and any(not path.name.startswith(".") and path.name not in extra for path in output.iterdir()):
        raise OutputFolderError(f"output {output}: the folder has other files and no {MANIFEST}; give a new or "
                                "empty folder")
    output.mkdir(parents=True, exist_ok=True)
    manifest = {**wanted, **(notes or {}), "complete": False}
    try:  # several processes (one per GPU) may start at once: the first one's manifest wins
        temporary = output / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
        temporary.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.link(temporary, manifest_path)
    except FileExistsError:
        return claim_output(output, identity, overwrite=False, notes=notes, extra=extra)
    finally:
        temporary.unlink(missing_ok=True)
    return manifest


def remove_stale_parts(output: Path, shards: set[int], output_format: str) -> None:
    """Temporary files of ``shards`` left by a run that was killed while writing them."""
    for path in output.glob(f".part-*.{output_format}.*.tmp"):
        match = re.match(r"^\.part-(\d+)\.", path.name)
        if match and int(match.group(1)) in shards:
            path.unlink(missing_ok=True)


class ShardSchema:
    """What a shard's rows are: the parquet columns and the JSON rows of a chunk of results."""

    def arrow_fields(self) -> list[Any]:
        raise NotImplementedError

    def columns(self, ids: list[str | None], chunk: Any) -> dict[str, Any]:
        raise NotImplementedError

    def records(self, ids: list[str | None], chunk: Any) -> Iterator[dict[str, Any]]:
        return chunk.records(ids)


def json_column(values: Sequence[Any]) -> list[str | None]:
    return [None if value is None else json.dumps(value, ensure_ascii=False) for value in values]


class PredictionSchema(ShardSchema):
    """Rows of :class:`~modelkit.outputs.Outputs`: a score column per category, labels, evidence,
    the modality's output fields and the error (see the module docstring)."""

    def __init__(self, categories: Sequence[str], output_fields: Sequence[str] = ()) -> None:
        self.categories, self.output_fields = list(categories), tuple(output_fields)

    def arrow_fields(self) -> list[Any]:
        import pyarrow as pa

        fields = [pa.field("id", pa.string())]
        fields += [pa.field(f"score_{category}", pa.float32()) for category in self.categories]
        fields += [pa.field("labels", pa.list_(pa.string())), pa.field("evidence", pa.string())]
        fields += [pa.field(name, pa.string()) for name in self.output_fields]
        return fields + [pa.field("error", pa.string())]

    def columns(self, ids: list[str | None], chunk: Outputs) -> dict[str, Any]:
        import pyarrow as pa

        columns: dict[str, Any] = {"id": ids}
        for column, category in enumerate(self.categories):
            scores = chunk.scores[:, column]
            columns[f"score_{category}"] = pa.array(scores, mask=np.isnan(scores), type=pa.float32())
        columns["labels"] = chunk.labels
        columns["evidence"] = json_column(chunk.evidence)
        for name in self.output_fields:
            columns[name] = json_column(chunk.fields[name])
        columns["error"] = chunk.errors
        return columns


class ShardWriter:
    """Rows of one shard, appended chunk by chunk to a temporary file, renamed when finished."""

    def __init__(self, output: Path, shard: int, output_format: OutputFormat, schema: ShardSchema) -> None:
        self.shard = shard
        self.final = output / part_name(shard, output_format)
        self.temporary = output / f".{self.final.name}.{uuid.uuid4().hex}.tmp"
        self.output_format = output_format
        self.schema = schema
        self.rows = 0
        self.errors = 0
        self._writer: Any = None
        self._handle: Any = None
        try:
            with self._writing():
                if output_format == "jsonl":
                    self._handle = open(self.temporary, "w", encoding="utf-8")
                else:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    self._arrow_schema = pa.schema(schema.arrow_fields())
                    self._writer = pq.ParquetWriter(self.temporary, self._arrow_schema, compression="zstd")
        except BaseException:
            self.abandon()
            raise

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write (a full disk, a read-only folder) as an error that names the shard and
        says what to do: the finished shards stay, and the same command carries on from them."""
        try:
            yield
        except OSError as err:
            raise OSError(err.errno, f"{err.strerror or err}; the shards finished so far are kept: rerun the same "
                          "command to continue", str(self.final)) from None

    def write(self, ids: list[str | None], chunk: Any) -> None:
        """Append rows ``ids`` (text, None where unknown) with their outputs."""
        self.rows += len(ids)
        self.errors += sum(error is not None for error in chunk.errors)
        with self._writing():
            self._write(ids, chunk)

    def _write(self, ids: list[str | None], chunk: Any) -> None:
        if self.output_format == "jsonl":
            self._handle.write("".join(json.dumps(record, ensure_ascii=False) + "\n"
                                       for record in self.schema.records(ids, chunk)))
            return
        import pyarrow as pa

        self._writer.write_table(pa.table(self.schema.columns(ids, chunk), schema=self._arrow_schema))

    def finish(self) -> Path:
        with self._writing():
            (self._handle or self._writer).close()
            _sync_rename(self.temporary, self.final)
        return self.final

    def abandon(self) -> None:
        """Close and remove the temporary file (after an error: closing may fail again)."""
        try:
            if self._handle is not None or self._writer is not None:
                (self._handle or self._writer).close()
        except OSError:
            pass
        finally:
            self.temporary.unlink(missing_ok=True)


def _json_lines(path: Path) -> Iterator[Any]:
    with open(path, encoding="utf-8") as handle:
        yield from (json.loads(line) for line in handle)


def read_shards(output: str | Path, command: str = "modelkit predict") -> Iterator[tuple[str, Any]]:
    """Each finished shard of a run's output folder, in order: ``("jsonl", its rows, lazily)`` or
    ``("parquet", its pyarrow table)``."""
    output = Path(output)
    manifest_path = output / MANIFEST
    if not manifest_path.is_file():
        raise OutputFolderError(f"{output}: no {MANIFEST}; not the output folder of {command}")
    output_format = json.loads(manifest_path.read_text(encoding="utf-8"))["format"]
    for _, path in sorted(finished_shards(output, output_format).items()):
        if output_format == "jsonl":
            yield "jsonl", _json_lines(path)
            continue
        import pyarrow.parquet as pq

        yield "parquet", pq.read_table(path)


def read_predictions(output: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of a batch run's output folder, in input order, as ``{"id", "scores", "labels",
    <output fields>?, "evidence"?}`` or ``{"id", "error"}`` dicts, whichever the format (parquet
    ids come back as text)."""
    for kind, table in read_shards(output):
        if kind == "jsonl":
            yield from table
            continue
        categories = [name[len("score_"):] for name in table.column_names if name.startswith("score_")]
        output_fields = [name for name in table.column_names
                         if not name.startswith("score_") and name not in _BASE_COLUMNS]
        for row in table.to_pylist():
            if row["error"] is not None:
                yield {"id": row["id"], "error": row["error"]}
                continue
            record = {"id": row["id"], "scores": {c: row[f"score_{c}"] for c in categories}, "labels": row["labels"]}
            record.update((name, json.loads(row[name])) for name in output_fields if row[name] is not None)
            if row["evidence"] is not None:
                record["evidence"] = json.loads(row["evidence"])
            yield record
