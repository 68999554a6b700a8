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
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from ..batch.engine import Job, RunSummary, open_run
from ..batch.shards import OutputFormat, ShardSchema, json_column, read_shards
from ..batch.sources import RowReader, open_source
from ..data.records import DataConfig, DataError
from .moderator import Decision, DecisionBatch, Moderator
from .post import Post, post_from_row

class DecisionHook(Protocol):
    def fingerprint(self) -> str: ...

    def __call__(self, posts: Sequence[Post], decisions: Sequence[Decision]) -> None: ...


POST_COLUMNS = ["id", "account_id", "created_at", "text", "images", "video"]


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
    a PNG there, named in its evidence item (``heatmap_png``, relative to the folder's parent).
    ``on_decided(posts, decisions)`` is called with each chunk's decisions before the engine
    writes them (an account ledger records them there: see :class:`~modelkit.accounts.LedgerWriter`);
    its ``fingerprint()`` joins the run's, so a run is never resumed with another hook."""

    description = "moderate"
    extra_outputs = ("decisions.html", "heatmaps")

    def __init__(self, moderator: Moderator, heatmaps: Path | None = None,
                 on_decided: DecisionHook | None = None) -> None:
        self.moderator = moderator
        self.heatmaps = heatmaps
        self.on_decided = on_decided
        self.kind = "files" if moderator.reads_files else "inline"
        self.parse = _parse_post

    def data_config(self, input_field: str | None, id_field: str | None) -> DataConfig:
        return DataConfig(inputs={"text": "text"}, id_field=id_field or "id")

    def columns(self, data: DataConfig) -> list[str]:
        return [data.id_field or "id", *POST_COLUMNS[1:]]

    def fingerprint(self) -> str:
        hook = f"+{self.on_decided.fingerprint()}" if self.on_decided is not None else ""
        return self.moderator.fingerprint() + ("+heatmaps" if self.heatmaps is not None else "") + hook

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
            if self.on_decided is not None:
                self.on_decided(chunk, batch.decisions)
            progress(len(chunk))
            yield batch

    def _write_heatmaps(self, posts: list[Post], batch: DecisionBatch) -> None:
        from .page import heatmap_image, write_png

        assert self.heatmaps is not None
        for post, decision in zip(posts, batch.decisions):
            for item in decision.evidence:
                if "heatmap" not in item or item.get("index") is None:
                    continue
                try:
                    image = heatmap_image(post.images[item["index"]], item)
                except Exception as err:  # noqa: BLE001 - a picture the page cannot draw: said in the item
                    item["heatmap_error"] = str(err)
                    continue
                # Ids are any text: the file is named by a digest of the id, part and category.
                key = hashlib.sha256(f"{post.id}\0{item['part']}\0{item['category']}".encode()).hexdigest()[:24]
                path = write_png(image, self.heatmaps / f"{key}.png")  # a full disk stops the run, named
                item["heatmap_png"] = path.relative_to(self.heatmaps.parent).as_posix()


def moderate_files(moderator: Moderator, source: Any, output: str | Path, *, output_format: OutputFormat = "parquet",
                   id_field: str | None = None, batch_size: int = 256, num_workers: int = 0,
                   shard_size: int | None = None, chunk_size: int | None = None, overwrite: bool = False,
                   progress: bool = True, heatmaps: bool = False, on_decided: DecisionHook | None = None
                   ) -> RunSummary:
    """Decide every post of ``source`` (a jsonl/parquet manifest, or an iterable of post rows)
    into the folder ``output``, resumably: a rerun after a crash decides only the posts of the
    shards that were not finished. A row that is not a post (no parts, a field of the wrong type)
    becomes a decision row with ``error``; an id on two rows of a file is refused before anything
    runs (a Python iterable is read once and cannot be checked first).
    ``heatmaps``: pictures' heat maps also as PNGs in ``output/heatmaps/``; ``on_decided``: see
    :class:`ModerateJob`."""
    _refuse_folder(source)
    job = ModerateJob(moderator, Path(output) / "heatmaps" if heatmaps else None, on_decided)
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


def _refuse_folder(source: Any) -> None:
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        raise DataError(f"{source}: a folder; moderate reads a manifest of posts (jsonl or parquet), whose rows "
                        "name their pictures and video")


def _parse_post(row: Mapping[str, Any], post_id: str, base: Path | None) -> Post:
    return post_from_row(row, post_id, base)


def _post_reader(source: Any, id_field: str | None) -> tuple[Any, RowReader]:
    """The engine's reading of a manifest of posts (formats, byte-order marks, ids, resolved
    paths): what the page and the fusion data read, so that they agree with the decisions."""
    _refuse_folder(source)
    data = DataConfig(inputs={"text": "text"}, id_field=id_field or "id")
    opened = open_source(source, data, True, [data.id_field or "id", *POST_COLUMNS[1:]])
    return opened, RowReader(opened, data, _parse_post)


def read_posts(source: Any, ids: Iterable[str] | None = None, id_field: str | None = None
               ) -> dict[str, dict[str, Any]]:
    """The posts of a manifest by id, as the engine reads them (paths resolved; a path that cannot
    be used is left out, its decision lists it as unread): what the decisions page shows. Rows
    that are no post are left out (their decisions say why)."""
    opened, reader = _post_reader(source, id_field)
    wanted = None if ids is None else set(ids)
    posts: dict[str, dict[str, Any]] = {}
    for index, raw in enumerate(opened.raw_rows()):
        row = reader(index, raw)
        if row.problem is not None or (wanted is not None and row.id not in wanted):
            continue
        post: Post = row.value
        shown = post.to_dict()
        shown["images"] = [None if f"images[{i}]" in post.problems else path for i, path in enumerate(post.images)]
        if "video" in post.problems:
            shown.pop("video", None)
        posts[row.id] = shown
    return posts


def read_post_rows(source: Any, label_field: str = "labels", id_field: str | None = None
                   ) -> tuple[list[Post], list[list[str]]]:
    """The posts of a manifest and each one's labels (``label_field``: a list of categories): the
    rows a learned-fusion head is trained on. A bad row is an error naming it and its field."""
    opened, reader = _post_reader(source, id_field)
    posts, labels, seen = [], [], {}
    for index, raw in enumerate(opened.raw_rows()):
        row = reader(index, raw)
        if row.problem is not None:
            where = "" if row.problem.startswith("row ") else f"row {index}: "
            raise DataError(f"{opened.name}: {where}{row.problem}")
        if row.id in seen:
            raise DataError(f"{opened.name}: id {row.id!r} is on rows {seen[row.id]} and {index}")
        seen[row.id] = index
        value = opened.parse(raw).get(label_field)
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise DataError(f"{opened.name}: row {index}: field {label_field!r}: expected a list of categories, "
                            f"got {value!r}")
        posts.append(row.value)
        labels.append(value)
    return posts, labels


# Decisions a person should see first on the page: removals, reviews, rows that are no post.
_PAGE_ORDER = {"remove": 0, "review": 1, None: 2, "pass": 3}


def write_decisions_page(output: str | Path, source: Any, limit: int = 500, id_field: str | None = None) -> Path:
    """``decisions.html`` in a moderate run's folder: the first ``limit`` decisions, removals and
    reviews first, with their posts' text, pictures and video evidence (``source``: the run's
    manifest, read as the run read it)."""
    from .page import render_decisions_page

    # nsmallest holds ``limit`` decisions at a time, whatever the run's size.
    ranked = heapq.nsmallest(limit, enumerate(read_decisions(output)),
                             key=lambda pair: (_PAGE_ORDER.get(pair[1].get("action"), 2), pair[0]))
    decisions = [decision for _, decision in ranked]
    posts = read_posts(source, [str(d["id"]) for d in decisions], id_field)
    return render_decisions_page(decisions, posts, Path(output) / "decisions.html")
