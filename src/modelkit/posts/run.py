"""``modelkit moderate``: a manifest of posts -> a resumable folder of decision shards.

The batch engine does the reading, sharding, resuming and atomic writing (every post decided
exactly once, whatever kills the run); a :class:`ModerateJob` turns chunks of posts into
:class:`~modelkit.posts.moderator.DecisionBatch` es. Parquet parts hold ``id``, ``account_id``,
``action``, ``categories`` (a list) and ``scores``, ``evidence``, ``unread`` as JSON text, and
``error``; JSON-lines parts hold :meth:`Decision.to_dict` rows.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from ..batch.engine import Job, RunSummary, open_run
from ..batch.shards import OutputFormat, ShardSchema, json_column, read_shards
from ..batch.sources import id_text
from ..data.records import DataConfig, DataError
from .moderator import DecisionBatch, Moderator
from .post import Post, post_from_row

POST_COLUMNS = ["id", "account_id", "text", "images", "video"]


class DecisionSchema(ShardSchema):
    """Parquet columns of decisions: a score column per category, as predictions have; evidence
    and unread parts as JSON text (null when there are none)."""

    def __init__(self, categories: list[str]) -> None:
        self.categories = categories

    def arrow_fields(self) -> list[Any]:
        import pyarrow as pa

        fields = [pa.field(name, pa.string()) for name in ("id", "account_id", "action")]
        fields.append(pa.field("categories", pa.list_(pa.string())))
        fields += [pa.field(f"score_{category}", pa.float32()) for category in self.categories]
        return fields + [pa.field(name, pa.string()) for name in ("evidence", "unread", "error")]

    def columns(self, ids: list[str | None], chunk: DecisionBatch) -> dict[str, Any]:
        import numpy as np
        import pyarrow as pa

        decisions = chunk.decisions
        columns: dict[str, Any] = {"id": ids, "account_id": [d.account_id for d in decisions],
                                   "action": [d.action for d in decisions],
                                   "categories": [None if d.error is not None else d.categories for d in decisions]}
        missing = [None] * len(self.categories)
        # One matrix for all score columns (None, unscored, becomes NaN, written as null).
        # A decision's scores are in the moderator's category order, the columns' order.
        table = np.array([missing if d.error is not None else list(d.scores.values()) for d in decisions],
                         dtype=np.float32).reshape(len(decisions), len(self.categories))
        for column, category in enumerate(self.categories):
            scores = table[:, column]
            columns[f"score_{category}"] = pa.array(scores, mask=np.isnan(scores), type=pa.float32())
        columns["evidence"] = json_column([d.evidence or None for d in decisions])
        columns["unread"] = json_column([d.unread or None for d in decisions])
        columns["error"] = [d.error for d in decisions]
        return columns


class ModerateJob(Job):
    """Decisions of chunks of posts; with ``heatmaps`` (a folder), each picture's heat map also as
    a PNG there, named in its evidence item (``heatmap_png``, relative to the folder's parent)."""

    description = "moderate"
    extra_outputs = ("decisions.html", "heatmaps")

    def __init__(self, moderator: Moderator, heatmaps: Path | None = None) -> None:
        self.moderator = moderator
        self.heatmaps = heatmaps
        self.kind = "files" if moderator.reads_files else "inline"
        self.parse = lambda row, post_id, base: post_from_row(row, post_id, base)

    def data_config(self, input_field: str | None, id_field: str | None) -> DataConfig:
        return DataConfig(inputs={"text": "text"}, id_field=id_field or "id")

    def columns(self, data: DataConfig) -> list[str]:
        return [data.id_field or "id", *POST_COLUMNS[1:]]

    def fingerprint(self) -> str:
        return self.moderator.fingerprint() + ("+heatmaps" if self.heatmaps is not None else "")

    def folders(self) -> list[Path]:
        members = [*self.moderator.members.values(), *([self.moderator.fusion] if self.moderator.fusion else [])]
        return [clf.source_dir for clf in members if clf.source_dir is not None]

    def schema(self) -> ShardSchema:
        return DecisionSchema(self.moderator.categories)

    def stream(self, chunks: Iterable[list[Any]], batch_size: int, num_workers: int, max_batch_tokens: int | None,
               progress: Callable[[int], None]) -> Iterator[DecisionBatch]:
        for chunk in chunks:
            batch = DecisionBatch(self.moderator.decide(chunk, batch_size, num_workers))
            if self.heatmaps is not None:
                self._write_heatmaps(chunk, batch)
            progress(len(chunk))
            yield batch

    def _write_heatmaps(self, posts: list[Post], batch: DecisionBatch) -> None:
        from .page import write_heatmap_png

        assert self.heatmaps is not None
        for post, decision in zip(posts, batch.decisions):
            for item in decision.evidence:
                if "heatmap" not in item or item.get("index") is None:
                    continue
                # Ids are any text: the file is named by a digest of the id, part and category.
                key = hashlib.sha256(f"{post.id}\0{item['part']}\0{item['category']}".encode()).hexdigest()[:24]
                path = write_heatmap_png(post.images[item["index"]], item, self.heatmaps / f"{key}.png")
                item["heatmap_png"] = path.relative_to(self.heatmaps.parent).as_posix()


def moderate_files(moderator: Moderator, source: Any, output: str | Path, *, output_format: OutputFormat = "parquet",
                   id_field: str | None = None, batch_size: int = 256, num_workers: int = 0,
                   shard_size: int | None = None, chunk_size: int | None = None, overwrite: bool = False,
                   progress: bool = True, heatmaps: bool = False) -> RunSummary:
    """Decide every post of ``source`` (a jsonl/parquet manifest, or an iterable of post rows)
    into the folder ``output``, resumably: a rerun after a crash decides only the posts of the
    shards that were not finished. A row that is not a post (no parts, a field of the wrong type)
    becomes a decision row with ``error``; an id on two rows is refused before anything runs.
    ``heatmaps``: pictures' heat maps also as PNGs in ``output/heatmaps/``."""
    job = ModerateJob(moderator, Path(output) / "heatmaps" if heatmaps else None)
    run = open_run(job, source, output, output_format=output_format, id_field=id_field,
                   shard_size=shard_size, chunk_size=chunk_size, overwrite=overwrite, refuse_duplicates=True)
    return run.execute(batch_size, num_workers, None, progress)


def read_decisions(output: str | Path) -> Iterator[dict[str, Any]]:
    """The decision rows of a ``modelkit moderate`` output folder, in input order, as
    :meth:`Decision.to_dict` writes them (parquet ids come back as text)."""
    for kind, table in read_shards(output, "modelkit moderate"):
        if kind == "jsonl":
            yield from table
            continue
        categories = [name[len("score_"):] for name in table.column_names if name.startswith("score_")]
        for row in table.to_pylist():
            if row["error"] is not None:
                yield {"id": row["id"], "error": row["error"]}
                continue
            decision: dict[str, Any] = {"id": row["id"]}
            if row["account_id"] is not None:
                decision["account_id"] = row["account_id"]
            decision.update(action=row["action"], categories=row["categories"],
                            scores={c: None if row[f"score_{c}"] is None else round(row[f"score_{c}"], 6)
                                    for c in categories})  # float32 back to the 6 decimals decisions carry
            decision.update((name, json.loads(row[name]) if row[name] is not None else [])
                            for name in ("evidence", "unread"))
            yield decision


def _manifest_rows(source: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Each non-empty line of a jsonl manifest: its row number, its row, and why it is not a post
    object (None when it is one)."""
    with open(source, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield index, None, f"not JSON ({err.msg})"
                continue
            yield index, row, None if isinstance(row, Mapping) else f"expected a post object, got {type(row).__name__}"


def read_posts(source: str | Path, ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Post rows of a jsonl manifest by id, paths made absolute (what the decisions page shows;
    rows that are no post are left out: their decisions say why)."""
    source = Path(source)
    base = source.resolve().parent
    wanted = None if ids is None else set(ids)
    posts: dict[str, dict[str, Any]] = {}
    for index, row, problem in _manifest_rows(source):
        post_id = None if problem is not None else str(row.get("id", index))
        if post_id is None or (wanted is not None and post_id not in wanted):
            continue
        resolved = dict(row)
        resolved["images"] = [str(base / p) for p in row.get("images") or [] if isinstance(p, str)]
        if isinstance(row.get("video"), str):
            resolved["video"] = str(base / row["video"])
        posts[post_id] = resolved
    return posts


def read_post_rows(source: str | Path, label_field: str = "labels") -> tuple[list[Post], list[list[str]]]:
    """The posts of a jsonl manifest and each one's labels (``label_field``: a list of categories):
    the rows a learned-fusion head is trained on. A bad row is an error naming it and its field."""
    source = Path(source)
    if not source.is_file():
        raise DataError(f"{source}: file not found")
    base = source.resolve().parent
    posts, labels, seen = [], [], {}
    for index, row, problem in _manifest_rows(source):
        if problem is not None:
            raise DataError(f"{source}: row {index}: {problem}")
        post_id, problem = id_text(row.get("id", str(index)))
        if problem is not None:
            raise DataError(f"{source}: row {index}: field 'id': {problem}")
        if post_id in seen:
            raise DataError(f"{source}: id {post_id!r} is on rows {seen[post_id]} and {index}")
        seen[post_id] = index
        value = row.get(label_field)
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise DataError(f"{source}: row {index}: field {label_field!r}: expected a list of categories, got {value!r}")
        try:
            posts.append(post_from_row(row, post_id, base))
        except DataError as err:
            raise DataError(f"{source}: row {index}: {err}") from None
        labels.append(value)
    return posts, labels


# Decisions a person should see first on the page.
_PAGE_ORDER = {"remove": 0, "review": 1, "pass": 2}


def write_decisions_page(output: str | Path, source: str | Path, limit: int = 500) -> Path:
    """``decisions.html`` in a moderate run's folder: the first ``limit`` decisions, removals and
    reviews first, with their posts' text, pictures and video evidence (a jsonl manifest; from
    another source the page shows the decisions without the posts' text)."""
    from .page import render_decisions_page

    # nsmallest holds ``limit`` decisions at a time, whatever the run's size.
    ranked = heapq.nsmallest(limit, enumerate(read_decisions(output)),
                             key=lambda pair: (_PAGE_ORDER.get(pair[1].get("action"), -1), pair[0]))
    decisions = [decision for _, decision in ranked]
    posts: dict[str, dict[str, Any]] = {}
    if Path(source).suffix.lower() in (".jsonl", ".json"):
        posts = read_posts(source, [str(d["id"]) for d in decisions])
    return render_decisions_page(decisions, posts, Path(output) / "decisions.html")
