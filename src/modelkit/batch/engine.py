"""The batch engine: a file, folder, dataset or iterable in; a resumable folder of shards out.

record -> :class:`~.sources.RowReader` (id, input or the reason there is none) -> the
classifier (:meth:`~modelkit.Classifier.stream_outputs`: decode in workers, batches by length,
the model, the one postprocess) -> :class:`~modelkit.outputs.Outputs` -> :class:`~.shards.ShardWriter`. Rows are read, scored and written a chunk at a time, so memory
does not grow with the input. Shard ``k`` is rows ``[k * shard_size, (k + 1) * shard_size)``
and its chunks are the same in every run, so a resumed run writes exactly what an uninterrupted
one would have. Processes of a multi-GPU run (``accelerate launch``, ``torchrun``) each take
the shards ``k % world_size == rank``.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from tqdm.auto import tqdm

from ..data.records import DataConfig, DataError
from ..processing import get_modality
from ..inference.runner import chunked
from .shards import (
    MANIFEST,
    OutputFolderError,
    OutputFormat,
    PredictionSchema,
    RunIdentity,
    ShardSchema,
    ShardWriter,
    claim_output,
    finished_shards,
    remove_stale_parts,
    write_json_atomically,
)
from .sources import FolderSource, RowReader, Source, duplicate_ids, open_source

if TYPE_CHECKING:
    from ..classifier import Classifier

# Rows per shard and per chunk, for inputs held in the table (text) and inputs that are files:
# an inline shard is about a minute of work on two cores, a file shard a few minutes of decoding;
# a chunk is what is held in memory at once.
SHARD_ROWS = {"inline": 200_000, "files": 10_000}
CHUNK_ROWS = {"inline": 8192, "files": 256}
logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a batch run did: rows of the input, rows scored now, errors among them, rows left
    from earlier runs (resumed), and the time it took."""

    output: str
    rows: int
    scored: int
    errors: int
    resumed: int
    seconds: float
    complete: bool
    # Ids found on more than one row of the input: how many, and the first few.
    duplicate_ids: tuple[int, list[str]] = (0, [])

    @property
    def items_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        resumed = f", {self.resumed} done before" if self.resumed else ""
        return (f"{self.output}: {self.rows} rows ({self.scored} scored now{resumed}), {self.errors} errors, "
                f"{self.seconds:.1f} s, {self.items_per_second:,.0f} items/s")


class Job:
    """What a batch run computes for each row: a classifier's predictions (:class:`ClassifierJob`)
    or, above the engine, a moderator's decisions. The engine owns reading, sharding, resuming
    and writing; a job owns turning chunks of row values into a chunk of results (an object with
    ``errors`` and ``placed(rows, where, problems)``, written by :meth:`schema`)."""

    # "files" when rows name files (shard and chunk sizes, folders as inputs), else "inline".
    kind: str = "inline"
    description: str = "predict"
    # What the job writes into the output folder beside the shards (removed by overwrite).
    extra_outputs: tuple[str, ...] = ()

    def data_config(self, input_field: str | None, id_field: str | None) -> DataConfig:
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError

    def folders(self) -> list[Path]:
        """Folders the output must not overlap (the checkpoints)."""
        return []

    def schema(self) -> ShardSchema:
        raise NotImplementedError

    def columns(self, data: DataConfig) -> list[str] | None:
        """The columns a row needs (None: ``data``'s inputs and id)."""
        return None

    # A row -> its value (None: the data config's input fields are the value).
    parse: Callable[[Mapping[str, Any], str, Path | None], Any] | None = None

    def stream(self, chunks: Iterable[list[Any]], batch_size: int, num_workers: int, max_batch_tokens: int | None,
               progress: Callable[[int], None]) -> Iterator[Any]:
        raise NotImplementedError


class ClassifierJob(Job):
    """A classifier's predictions: the rows of :class:`~modelkit.outputs.Outputs`."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self.kind = "files" if get_modality(classifier.processor.modality).files else "inline"

    def data_config(self, input_field: str | None, id_field: str | None) -> DataConfig:
        return self.classifier.data_config(input_field=input_field, id_field=id_field)

    def fingerprint(self) -> str:
        return self.classifier.fingerprint()

    def folders(self) -> list[Path]:
        return [self.classifier.source_dir] if self.classifier.source_dir is not None else []

    def schema(self) -> ShardSchema:
        return PredictionSchema(self.classifier.categories, self.classifier.processor.output_fields)

    def stream(self, chunks: Iterable[list[Any]], batch_size: int, num_workers: int, max_batch_tokens: int | None,
               progress: Callable[[int], None]) -> Iterator[Any]:
        return self.classifier.stream_outputs(chunks, batch_size, num_workers, max_batch_tokens, progress=progress)


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) of this process under ``accelerate launch`` / ``torchrun``; (0, 1) alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _refuse_overlap(source: Any, output: Path, job: Job) -> None:
    """Writing into the input or the checkpoint would destroy it: refuse before anything runs."""
    if not isinstance(source, (str, os.PathLike)):
        return
    source_path, target = Path(source).resolve(), output.resolve()
    if target == source_path or source_path in target.parents:
        raise OutputFolderError(f"output {output}: is the input {source} or inside it; choose another folder")
    if target in source_path.parents:
        raise OutputFolderError(f"output {output}: the input {source} lies inside it; choose another folder")
    for folder in job.folders():
        checkpoint = folder.resolve()
        if target == checkpoint or checkpoint in target.parents or target in checkpoint.parents:
            raise OutputFolderError(f"output {output}: overlaps the checkpoint {folder}")


def predict_files(
    classifier: Classifier,
    source: Any,
    output: str | Path,
    *,
    output_format: OutputFormat = "parquet",
    input_field: str | None = None,
    id_field: str | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    max_batch_tokens: int | None = None,
    shard_size: int | None = None,
    chunk_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
    shards: Sequence[int] | None = None,
) -> RunSummary:
    """Score every row of ``source`` (a jsonl/csv/parquet file, a folder of files, a
    ``datasets.Dataset`` or an iterable of rows) into the folder ``output``, resumably.

    Rows whose input is missing, of the wrong type or unreadable become records with ``error``
    set; every input row appears exactly once. Rerunning the same call after a crash skips the
    shards that were finished. ``shards`` restricts the run to those shard numbers (the Ray
    engine hands them out); ``rank``/``world_size`` default to the launcher's environment.
    """
    run = open_run(classifier, source, output, output_format=output_format, input_field=input_field,
                   id_field=id_field, shard_size=shard_size, chunk_size=chunk_size, overwrite=overwrite,
                   rank=rank, world_size=world_size, shards=shards)
    return run.execute(batch_size, num_workers, max_batch_tokens, progress)


def open_run(job: Classifier | Job, source: Any, output: str | Path, *, output_format: OutputFormat = "parquet",
             input_field: str | None = None, id_field: str | None = None, shard_size: int | None = None,
             chunk_size: int | None = None, overwrite: bool = False, rank: int | None = None,
             world_size: int | None = None, shards: Sequence[int] | None = None,
             refuse_duplicates: bool = False) -> _Run:
    """Check ``output`` against the input and checkpoint, claim it, and return the run to execute.
    ``refuse_duplicates``: an id on two rows is an error naming both (else a warning)."""
    if output_format not in ("parquet", "jsonl"):
        raise ValueError(f"output_format must be 'parquet' or 'jsonl', got {output_format!r}")
    job = job if isinstance(job, Job) else ClassifierJob(job)
    output = Path(output)
    _refuse_overlap(source, output, job)
    data = job.data_config(input_field, id_field)
    files = job.kind == "files"
    shard_size = shard_size or SHARD_ROWS[job.kind]
    chunk_size = min(chunk_size or CHUNK_ROWS[job.kind], shard_size)
    if shard_size < 1 or chunk_size < 1:
        raise ValueError(f"shard_size and chunk_size must be >= 1, got {shard_size} and {chunk_size}")
    default_rank, default_world = distributed_rank()
    rank = default_rank if rank is None else rank
    world_size = default_world if world_size is None else world_size
    reader_source = open_source(source, data, files, job.columns(data))
    total = reader_source.count()
    if total == 0:
        raise DataError(f"{reader_source.name}: no rows")
    reader = RowReader(reader_source, data, job.parse)
    duplicates = (0, [])
    # A folder's ids are its file paths, unique; a Python iterable can be read only once.
    if reader_source.fingerprint() is not None and not isinstance(reader_source, FolderSource):
        duplicates = duplicate_ids(reader_source, reader)
        if duplicates[0] and refuse_duplicates:
            first = duplicates[1][0]
            rows = [index for index, raw in enumerate(reader_source.raw_rows()) if reader.id_of(index, raw) == first][:2]
            raise DataError(f"{reader_source.name}: id {first!r} is on rows {rows[0]} and {rows[1]} "
                            f"({duplicates[0]} ids repeat); every row needs its own id")
        if duplicates[0]:
            logger.warning("%s: %d ids occur on more than one row (first: %s); every row is scored and written "
                           "in input order", reader_source.name, duplicates[0], ", ".join(map(repr, duplicates[1])))
    identity = RunIdentity(
        input=reader_source.name, input_fingerprint=reader_source.fingerprint(),
        checkpoint_fingerprint=job.fingerprint(), shard_size=shard_size,
        output_format=output_format,
        fields={"inputs": data.input_columns, "id": data.id_field})
    claim_output(output, identity, overwrite and rank == 0,
                 notes={"duplicate_ids": {"count": duplicates[0], "examples": duplicates[1]}} if duplicates[0] else {},
                 extra=job.extra_outputs)
    return _Run(job, reader_source, total, reader, output, output_format, shard_size, chunk_size, rank,
                world_size, None if shards is None else set(shards), duplicates)


class _Run:
    def __init__(self, job: Job, source: Source, total: int | None, reader: RowReader, output: Path,
                 output_format: OutputFormat, shard_size: int, chunk_size: int, rank: int, world_size: int,
                 only: set[int] | None, duplicates: tuple[int, list[str]] = (0, [])) -> None:
        self.job, self.source, self.reader, self.output = job, source, reader, output
        self.total = total  # rows of the input, when the source can tell without reading it
        self.output_format, self.shard_size, self.chunk_size = output_format, shard_size, chunk_size
        self.rank, self.world_size, self.only = rank, world_size, only
        self.duplicates = duplicates
        self.done = set(finished_shards(output, output_format))
        self.rows = 0

    def pending_shards(self) -> list[int]:
        """Shards of the input that no run has finished (counts the rows when the source cannot)."""
        total = self.total if self.total is not None else sum(1 for _ in self.source.raw_rows())
        self.rows = total
        return [shard for shard in range(-(-total // self.shard_size)) if shard not in self.done]

    def mine(self, shard: int) -> bool:
        if self.only is not None:
            return shard in self.only
        return shard % self.world_size == self.rank

    def chunks(self, pending: deque) -> Iterator[list[Any]]:
        """Input values of each chunk to score; ``pending`` gets (shard, rows) for each chunk."""
        for shard, rows in itertools.groupby(enumerate(self.source.raw_rows()), lambda pair: pair[0] // self.shard_size):
            if shard in self.done or not self.mine(shard):
                self.rows = sum(1 for _ in rows) + shard * self.shard_size
                continue
            for chunk in chunked(rows, self.chunk_size):
                parsed = [self.reader(index, raw) for index, raw in chunk]
                self.rows = chunk[-1][0] + 1
                pending.append((shard, parsed))
                yield [row.value for row in parsed if row.problem is None]

    def execute(self, batch_size: int, num_workers: int, max_batch_tokens: int | None, progress: bool) -> RunSummary:
        job = self.job
        total = self.total
        bound = -(-total // self.shard_size) if total is not None else max(self.done, default=-1) + 2
        remove_stale_parts(self.output, {shard for shard in range(bound) if self.mine(shard)}, self.output_format)
        # An input whose size is unknown (an iterable) never resumes: claim_output refuses that.
        resumed = 0 if total is None else sum(min(self.shard_size, total - shard * self.shard_size)
                                              for shard in self.done if self.mine(shard))
        # What is loaded by now (models, tokenizer and pinyin dictionaries: millions of objects) lives
        # as long as the run; out of the cycle collector's sight, the collections that the run's
        # short-lived rows set off no longer scan it (they took a fifth of a text-only run).
        gc.freeze()
        started = time.perf_counter()
        scored = errors = 0
        writer: ShardWriter | None = None
        pending: deque = deque()
        bar = tqdm(total=total, initial=resumed, unit="item", desc=job.description, disable=not progress,
                   smoothing=0.1)
        results = job.stream(self.chunks(pending), batch_size, num_workers, max_batch_tokens, bar.update)
        try:
            for outputs in results:
                shard, rows = pending.popleft()
                if writer is not None and writer.shard != shard:
                    writer.finish()
                    writer = None
                if writer is None:
                    writer = ShardWriter(self.output, shard, self.output_format, job.schema())
                readable = [index for index, row in enumerate(rows) if row.problem is None]
                chunk = outputs.placed(len(rows), readable, [row.problem for row in rows])
                bar.update(len(rows) - len(readable))
                writer.write([row.id for row in rows], chunk)
                scored += len(rows)
                errors += sum(error is not None for error in chunk.errors)
            if writer is not None:
                writer.finish()
                writer = None
        finally:
            if writer is not None:
                writer.abandon()
            bar.close()
        seconds = time.perf_counter() - started
        complete = self.close_manifest()
        return RunSummary(str(self.output), self.rows, scored, errors, resumed, seconds, complete, self.duplicates)

    def close_manifest(self) -> bool:
        """Totals and ``complete: true`` once every shard of the input is in (by any process)."""
        shards = -(-self.rows // self.shard_size)
        finished = finished_shards(self.output, self.output_format)
        if any(shard not in finished for shard in range(shards)):
            return False
        manifest_path = self.output / MANIFEST
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not manifest.get("complete"):
            manifest.update(complete=True, rows=self.rows, shards=shards)
            write_json_atomically(manifest_path, manifest)
        return True


__all__ = ["ClassifierJob", "Job", "RunSummary", "open_run", "predict_files"]
