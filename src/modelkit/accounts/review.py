"""The review queue: open items ranked by expected harm; answers back into the ledger and into
labelled manifests a recipe trains on.

**Priority** of an item = the category's severity x the chance it is a violation, where the
models' score and the reports combine like independent witnesses:
``1 - (1 - score) * prod(1 - weight_r * reliability_r)`` over the item's reporters. A reporter's
**reliability** is the posterior mean of a beta-binomial model of their answered reports
(prior ``Beta(1, 2)``: a stranger is believed a third of the time), and a reporter who files more
than ``daily_limit`` reports within a day either side of a report counts ``daily_limit / n`` for
it: a flood raises priority no more than ``daily_limit`` reports would. Reports only ever rank items; a strike needs
a model's ``remove`` or a reviewer's ``confirm``.

**Answers** (``item_id``, ``answer``: confirm | overturn, ``reviewer``, optional ``category``,
optional ``time``) are read whole before any is applied: one bad line and nothing changes. An
item already answered keeps its first answer.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import DataError
from ..posts.post import parse_time
from ..taxonomy import Taxonomy
from .ledger import Event, Ledger, format_time, new_event
from .record import id_problem, json_lines, report_times, reports_near

PRIOR = (1.0, 2.0)  # Beta prior of a reporter's reliability: (confirmed, overturned) pseudo-counts
DAILY_LIMIT = 20
ANSWERS = ("confirm", "overturn")


@dataclass
class ReviewItem:
    """One question for a reviewer: is ``post_id`` a violation of ``category``?"""

    item_id: str
    post_id: str
    account_id: str | None
    category: str
    score: float | None
    priority: float
    source: str  # review | report | pass_sample | remove_sample | unread | appeal
    weight: float | None  # inverse sampling probability; None: not drawn by a known rate
    at: float
    reporters: list[str] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["time"] = format_time(self.at)
        return row


def reporter_reliability(ledger: Ledger, prior: tuple[float, float] = PRIOR) -> dict[str, dict[str, float]]:
    """Per reporter with an answered report: ``reliability`` (posterior mean), ``confirmed``,
    ``overturned``. A report counts when it was filed before its item was answered (reports of
    posts already judged tell nothing of the reporter), as confirmed when the reviewer confirmed
    the reported category."""
    judged = verdicts(ledger)
    answered_at = {e.item_id: e.at for e in ledger.events(kinds=["answer"])}
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for report in ledger.events(kinds=["report"]):
        verdict = judged.get((str(report.post_id), str(report.category)))
        if verdict is None or report.at > answered_at.get(report.item_id, float("inf")):
            continue
        tally[str(report.actor)][0 if verdict["label"] else 1] += 1
    return {reporter: {"reliability": (good + prior[0]) / (good + bad + prior[0] + prior[1]),
                       "confirmed": good, "overturned": bad} for reporter, (good, bad) in tally.items()}


def review_queue(ledger: Ledger, limit: int | None = None, taxonomy: Taxonomy | None = None,
                 prior: tuple[float, float] = PRIOR, daily_limit: int = DAILY_LIMIT) -> list[ReviewItem]:
    """The open items (no answer yet), highest priority first (ties: oldest first)."""
    taxonomy = taxonomy or Taxonomy.load()
    answered = {e.item_id for e in ledger.events(kinds=["answer"])}
    items = {e.item_id: e for e in ledger.events(kinds=["item"]) if e.item_id not in answered}
    reliability = reporter_reliability(ledger, prior)
    stranger = prior[0] / (prior[0] + prior[1])
    times = report_times(ledger)
    witnesses: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for report in ledger.events(kinds=["report"]):
        if report.item_id in items:
            reporter = str(report.actor)
            flood = min(1.0, daily_limit / max(1, reports_near(times[reporter], report.at)))
            trust = reliability.get(reporter, {}).get("reliability", stranger)
            witnesses[str(report.item_id)].append((reporter, flood * trust))
    decisions = {e.post_id: e for e in ledger.events(kinds=["decision"], post_ids=[e.post_id for e in items.values()])}
    queue = []
    for item, event in items.items():
        score = event.data.get("score")
        doubt = 1.0 - (score or 0.0)
        for _, weight in witnesses.get(item, []):
            doubt *= 1.0 - weight
        category = str(event.category)
        severity = taxonomy[category].severity if category in taxonomy else 2
        decision = decisions.get(event.post_id)
        evidence = decision.data.get("evidence", []) if decision is not None else []
        queue.append(ReviewItem(item, str(event.post_id), event.account_id, category, score,
                                round(severity * (1.0 - doubt), 6), event.data.get("source", "review"),
                                event.data.get("weight"), event.at, sorted({r for r, _ in witnesses.get(item, [])}),
                                [e for e in evidence if e.get("category") == category] or evidence))
    queue.sort(key=lambda q: (-q.priority, q.at, q.item_id))
    return queue if limit is None else queue[:limit]


def export_queue(ledger: Ledger, output: str | os.PathLike, limit: int | None = 200,
                 taxonomy: Taxonomy | None = None, page: bool = True) -> tuple[Path, Path | None, int]:
    """The queue's first ``limit`` items as jsonl (``item_id``, ``post_id``, ``account_id``,
    ``category``, ``score``, ``priority``, ``evidence``, ...) and, with ``page``, a review page
    beside it (same name, ``.html``). Returns (jsonl, page, items)."""
    output = Path(output)
    if output.is_dir() or str(output).endswith(os.sep) or output.suffix.lower() in (".html", ".htm"):
        raise DataError(f"{output}: the queue's jsonl file (its page is written beside it, same name, .html)")
    queue = review_queue(ledger, limit, taxonomy)
    text = "".join(json.dumps(item.to_dict(), ensure_ascii=False) + "\n" for item in queue)
    _write_text(output, text)
    html = None
    if page:
        from .page import render_review_page

        decisions = {e.post_id: e for e in ledger.events(kinds=["decision"], post_ids=[q.post_id for q in queue])}
        html = render_review_page(queue, decisions, output.with_suffix(".html"))
    return output, html, len(queue)


def _write_text(path: Path, text: str) -> None:
    from ..posts.page import write_atomically

    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


# ------------------------------------------------------------------------------------------------
# Answers
# ------------------------------------------------------------------------------------------------
@dataclass
class ImportSummary:
    """What an answers file did: answers applied now, items answered before (left as they were),
    strikes and overturns it caused, and the labelled manifests rewritten (modality -> path)."""

    answers: int = 0  # applied now
    already: int = 0  # items answered before (left as they were)
    strikes: int = 0
    overturns: int = 0
    manifests: dict[str, Path] = field(default_factory=dict)

    def __str__(self) -> str:
        text = f"{self.answers} answers applied ({self.strikes} strikes, {self.overturns} overturns)"
        if self.already:
            text += f"; {self.already} items were answered before and keep their first answer"
        return text


def read_answers(path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    """The answer rows of a jsonl file with their line numbers, each checked (a
    :class:`DataError` names the file, line and field)."""
    path = Path(path)
    rows, seen = [], {}
    for number, row in json_lines(path):
        where = f"{path}: line {number}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        for name in ("item_id", "reviewer"):
            problem = id_problem(row.get(name)) if isinstance(row.get(name), str) and row[name].strip() else \
                f"expected a non-empty string, got {row.get(name)!r}"[:120]
            if problem:
                raise DataError(f"{where}: field {name!r}: {problem}")
        if row.get("answer") not in ANSWERS:
            raise DataError(f"{where}: field 'answer': expected confirm or overturn, got {row.get('answer')!r}")
        if row.get("category") is not None and (not isinstance(row["category"], str) or id_problem(row["category"])):
            raise DataError(f"{where}: field 'category': expected a category id, got {row['category']!r}")
        if row.get("time") is not None:
            row["time"] = parse_time(row["time"], f"{where}: field 'time'")
        if row["item_id"] in seen:
            raise DataError(f"{where}: field 'item_id': {row['item_id']!r} is answered on line {seen[row['item_id']]} "
                            "too")
        seen[row["item_id"]] = number
        rows.append((number, row))
    return rows


def import_answers(ledger: Ledger, path: str | os.PathLike, labels: str | os.PathLike | None = None,
                   now: float | None = None) -> ImportSummary:
    """Apply an answers file (all or nothing, in the file's order), then rewrite the labelled
    manifests in ``labels`` (default: ``labelled/`` beside the answers file) from every answer in
    the ledger."""
    path = Path(path)
    folder = Path(labels) if labels is not None else path.parent / "labelled"
    if folder.exists() and not folder.is_dir():  # said before anything is applied
        raise DataError(f"{folder}: not a folder (the labelled manifests go there; --labels DIR)")
    now = time.time() if now is None else now
    rows = read_answers(path)
    items = {e.item_id: e for e in ledger.events(kinds=["item"], item_ids=[row["item_id"] for _, row in rows])}
    posts = [e.post_id for e in items.values()]
    overturned = {(e.post_id, e.category) for e in ledger.events(kinds=["overturn"], post_ids=posts)}
    standing = {(e.post_id, e.category) for e in ledger.events(kinds=["strike"], post_ids=posts)} - overturned
    decisions = {e.post_id: e for e in ledger.events(kinds=["decision"], post_ids=posts)}
    groups = []
    for number, row in rows:
        item = items.get(row["item_id"])
        if item is None:
            raise DataError(f"{path}: line {number}: field 'item_id': {row['item_id']!r} is not an item of the ledger "
                            "(answers name items of modelkit review export)")
        named = row.get("category") or item.category
        scored = decisions[item.post_id].data.get("scores", {}) if item.post_id in decisions else {}
        if named not in scored:
            raise DataError(f"{path}: line {number}: field 'category': {named!r} is not scored for post "
                            f"{item.post_id!r} (categories: {', '.join(scored)})")
        groups.append(_answer_events(item, row, named, row.get("time", now), standing, overturned))
    summary = ImportSummary()
    for group, new in zip(groups, ledger.append_groups(groups)):
        if new:
            summary.answers += 1
            summary.strikes += sum(1 for e, added in zip(group[1:], new[1:]) if added and e["kind"] == "strike")
            summary.overturns += sum(1 for e, added in zip(group[1:], new[1:]) if added and e["kind"] == "overturn")
        else:
            summary.already += 1
    try:
        summary.manifests = write_labelled(ledger, folder)
    except OSError as err:
        raise OSError(err.errno, f"{err.strerror or err}; the answers were applied ({summary}), the labelled "
                                 "manifests not written: import the file again to write them", err.filename) from None
    return summary


def _answer_events(item: Event, row: Mapping[str, Any], named: str, at: float,
                   standing: set[tuple[Any, Any]], overturned: set[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """The answer event, then what it does (``standing``/``overturned``: the post's strikes as
    the answers before this one left them, updated here):

    - ``confirm`` strikes in the category the reviewer named (an appeal confirmed in its own
      category keeps the strike it has); a strike overturned before is final and stays so;
    - ``overturn``, or a ``confirm`` naming another category, overturns the item's category's
      standing strike."""
    common = {"account_id": item.account_id, "post_id": item.post_id}
    events = [new_event("answer", [item.item_id], at, **common, category=item.category, item=item.item_id,
                        actor=row["reviewer"], data={"answer": row["answer"], "named_category": named,
                                                     "source": item.data.get("source")})]
    if row["answer"] == "confirm" and (item.post_id, named) not in overturned | standing:
        events.append(new_event("strike", [item.post_id, named], at, **common, category=named,
                                data={"source": "review", "item_id": item.item_id}))
        standing.add((item.post_id, named))
    wrong_category = row["answer"] == "overturn" or named != item.category
    if wrong_category and (item.post_id, item.category) in standing:
        events.append(new_event("overturn", [item.post_id, item.category], at, **common, category=item.category,
                                actor=row["reviewer"], data={"item_id": item.item_id}))
        standing.discard((item.post_id, item.category))
        overturned.add((item.post_id, item.category))
    return events


# ------------------------------------------------------------------------------------------------
# Labelled manifests
# ------------------------------------------------------------------------------------------------
MODALITY_FIELD = {"text": "text", "image": "image", "video": "video"}


def verdicts(ledger: Ledger) -> dict[tuple[str, str], dict[str, Any]]:
    """What the reviewers last said about each (post, category) they judged: ``label`` 1 or 0,
    the ``answer`` event, and the answered ``item``. A confirm naming another category says 1
    for it and 0 for the item's; a later answer (an appeal's) replaces an earlier one."""
    answers = list(ledger.events(kinds=["answer"]))
    items = {e.item_id: e for e in ledger.events(kinds=["item"], item_ids=[a.item_id for a in answers])}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for answer in sorted(answers, key=lambda a: (a.at, a.seq)):
        named = answer.data.get("named_category") or answer.category
        confirmed = answer.data.get("answer") == "confirm"
        said = {(answer.post_id, answer.category): int(confirmed and named == answer.category)}
        if confirmed:
            said[(answer.post_id, named)] = 1
        for key, label in said.items():
            out[key] = {"label": label, "answer": answer, "item": items.get(answer.item_id)}
    return out


def labelled_rows(ledger: Ledger) -> dict[str, list[dict[str, Any]]]:
    """Per modality, one row per judged (post part, category), in the per-category form of
    ``modelkit bootstrap``'s answers: ``label`` 1 for a confirmed category on the parts its
    evidence points at (every part when none does), 0 on every part of a category judged not
    violated; with the item's sampling ``weight``, the ``reviewer`` and ``item_id``. The last
    answer about a (post, category) decides."""
    judged = verdicts(ledger)
    decisions = {e.post_id: e for e in ledger.events(kinds=["decision"], post_ids=[p for p, _ in judged])}
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (post_id, category), verdict in judged.items():
        decision = decisions.get(post_id)
        if decision is None:
            continue
        parts = _parts(decision.data.get("post", {}))
        if verdict["label"]:
            pointed = {e.get("part") for e in decision.data.get("evidence", []) if e.get("category") == category}
            parts = [p for p in parts if p[0] in pointed] or parts
        answer, item = verdict["answer"], verdict["item"]
        for part, modality, value in parts:
            out[modality].append({"id": f"{post_id}#{part}#{category}", "post_id": post_id, "part": part,
                                  MODALITY_FIELD[modality]: value, "category": category, "label": verdict["label"],
                                  "weight": item.data.get("weight") if item is not None else None,
                                  "reviewer": answer.actor, "item_id": answer.item_id})
    return out


def _parts(post: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    text = post.get("text")
    fields = {"body": text} if isinstance(text, str) else dict(text or {})
    parts = [(f"text.{name}", "text", value) for name, value in fields.items() if value]
    parts += [(f"images[{i}]", "image", path) for i, path in enumerate(post.get("images") or []) if path]
    if post.get("video"):
        parts.append(("video", "video", post["video"]))
    return parts


def write_labelled(ledger: Ledger, folder: Path) -> dict[str, Path]:
    """``text.jsonl``, ``image.jsonl``, ``video.jsonl`` in ``folder`` from all answers,
    rewritten whole (atomically): a rerun after a crash leaves them exact."""
    written = {}
    for modality, rows in sorted(labelled_rows(ledger).items()):
        written[modality] = folder / f"{modality}.jsonl"
        _write_text(written[modality], "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return written


def answered_items(ledger: Ledger) -> list[dict[str, Any]]:
    """Every answered item with its score, sampling weight and truth (the reviewers' last word
    on the item's post and category): what thresholds are refitted on."""
    judged = verdicts(ledger)
    answered = {e.item_id for e in ledger.events(kinds=["answer"])}
    rows = []
    for item in ledger.events(kinds=["item"], item_ids=list(answered)):
        truth = judged.get((str(item.post_id), str(item.category)), {}).get("label", 0)
        rows.append({"item_id": item.item_id, "post_id": item.post_id, "category": item.category,
                     "score": item.data.get("score"), "weight": item.data.get("weight"),
                     "source": item.data.get("source"), "truth": int(truth)})
    return rows
