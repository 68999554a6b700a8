"""What enters the ledger: decisions (with their strikes and review items), user reports, appeals.

A ``remove`` decision strikes its account at once in each category that removes it; a ``review``
decision opens an item per category that sent it to review, and strikes only when a reviewer
confirms it. Two samples keep the automatic decisions honest: a share of ``pass`` decisions
(what the models miss) and of ``remove`` decisions (what they remove wrongly) become items too,
each weighted by the inverse of its sampling rate, so that precision and recall estimated from
the answers hold for all decisions. Samples are drawn from a digest of the post id, not a random
generator: a replayed decision draws the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..errors import DataError
from ..posts.moderator import Decision
from ..posts.policy import ACTIONS, PostPolicy
from ..posts.post import Post, parse_time
from .ledger import Ledger, item_id, new_event

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    """Shares of ``pass`` and ``remove`` decisions that go to review as samples."""

    pass_rate: float = 0.02
    remove_rate: float = 0.02

    def __post_init__(self) -> None:
        for name in ("pass_rate", "remove_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DataError(f"{name}: a share of decisions in [0, 1], got {value!r}")


def drawn(post_id: str, purpose: str, rate: float) -> bool:
    """Whether a post falls in a sample of ``rate``, the same on every replay."""
    digest = hashlib.sha256(f"{purpose}\0{post_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def decision_events(decision: Mapping[str, Any], post: Mapping[str, Any], at: float,
                    category_actions: Mapping[str, str], sampling: Sampling) -> list[dict[str, Any]]:
    """The events of one decision row (:meth:`Decision.to_dict`) of ``post`` (its row) at time
    ``at``; ``category_actions``: the policy's action for each category of the decision."""
    post_id, account = str(decision["id"]), decision.get("account_id")
    scores = decision.get("scores") or {}
    common = {"account_id": account, "post_id": post_id}
    out = [new_event("decision", [post_id], at, **common, data={
        "action": decision["action"], "categories": decision.get("categories", []), "scores": scores,
        "evidence": decision.get("evidence", []), "unread": decision.get("unread", []), "post": dict(post)})]

    def open_item(category: str, source: str, weight: float | None) -> None:
        item = item_id(post_id, category)
        out.append(new_event("item", [item], at, **common, category=category, item=item, data={
            "source": source, "score": scores.get(category), "weight": weight}))

    for category, action in category_actions.items():
        if action == "remove":
            out.append(new_event("strike", [post_id, category], at, **common, category=category,
                                 data={"source": "decision"}))
            if sampling.remove_rate and drawn(post_id, "remove", sampling.remove_rate):
                open_item(category, "remove_sample", 1.0 / sampling.remove_rate)
        elif action == "review":
            open_item(category, "review", 1.0)
    if decision["action"] == "review" and "review" not in category_actions.values():
        # Sent to review for parts that could not be read: the item names the best-scoring category.
        open_item(_top_category(scores), "unread", None)
    if decision["action"] == "pass" and sampling.pass_rate and drawn(post_id, "pass", sampling.pass_rate):
        for category in scores:  # every category: a sample of one would say nothing of the others' misses
            open_item(category, "pass_sample", 1.0 / sampling.pass_rate)
    return out


def _top_category(scores: Mapping[str, Any]) -> str:
    known = {c: s for c, s in scores.items() if s is not None}
    return max(known, key=known.__getitem__) if known else next(iter(scores), "unknown")


def record_decisions(ledger: Ledger, decisions: Iterable[Mapping[str, Any]], posts: Mapping[str, Mapping[str, Any]],
                     category_actions: Sequence[Mapping[str, str]], sampling: Sampling = Sampling(),
                     now: float | None = None) -> int:
    """Write decision rows (error rows are skipped: nothing was decided) in one transaction; a
    post's time is its ``created_at`` when it has one, else ``now``. A post the ledger has a
    decision for keeps it: a replay records nothing, and a decision with another outcome (a new
    policy) is left out with a warning rather than mixed into the first one's strikes. Returns
    the new events."""
    now = time.time() if now is None else now
    decided = [(d, a) for d, a in zip(decisions, category_actions) if d.get("error") is None]
    stored = {e.post_id: e for e in ledger.events(kinds=["decision"], post_ids=[str(d["id"]) for d, _ in decided])}
    rows, changed = [], []
    for decision, actions in decided:
        post_id = str(decision["id"])
        if post_id in stored:  # decided before: the first decision stands, with its strikes and items
            first = stored[post_id].data
            if (first.get("action"), first.get("categories")) != (decision["action"], decision.get("categories", [])):
                changed.append(post_id)
            continue
        post = posts.get(post_id, {})
        rows += decision_events(decision, post, post.get("created_at", now), actions, sampling)
    if changed:
        logger.warning("%d posts (first: %r) were decided before with another outcome; the ledger %s keeps the first "
                       "decision (moderate new versions of posts under new ids, or use a new ledger)",
                       len(changed), changed[0], ledger.name)
    return sum(ledger.append(rows).values())


class LedgerWriter:
    """Records the decisions of each chunk of a ``moderate`` run as it is decided (the hook of
    :class:`~modelkit.posts.run.ModerateJob`): one transaction per chunk, before the chunk's shard
    is written, so that a killed run's rerun records what it decides again and the unique keys
    make that a no-op."""

    def __init__(self, ledger: Ledger, policy: PostPolicy, sampling: Sampling = Sampling()) -> None:
        self.ledger, self.policy, self.sampling = ledger, policy, sampling

    def fingerprint(self) -> str:
        # The ledger is part of the run: resuming a run into another ledger would record only the
        # shards still to do there, so the engine refuses it as another run.
        return f"ledger({self.ledger.name},pass={self.sampling.pass_rate:g},remove={self.sampling.remove_rate:g})"

    def __call__(self, posts: Sequence[Post], decisions: Sequence[Decision]) -> None:
        import numpy as np

        ids = self.policy.taxonomy.ids
        scores = np.array([[np.nan if d.scores.get(c) is None else d.scores[c] for c in ids] for d in decisions],
                          dtype=np.float64).reshape(len(decisions), len(ids))
        actions = [{ids[j]: ACTIONS[a] for j, a in enumerate(row) if a} for row in self.policy.category_actions(scores)]
        record_decisions(self.ledger, [d.to_dict() for d in decisions], {p.id: p.to_dict() for p in posts}, actions,
                         self.sampling)


# ------------------------------------------------------------------------------------------------
# Reports and appeals
# ------------------------------------------------------------------------------------------------
def _decisions_of(ledger: Ledger, post_ids: Iterable[str]) -> dict[str, Any]:
    return {event.post_id: event for event in ledger.events(kinds=["decision"], post_ids=list(post_ids))}


def json_lines(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """The JSON values of a jsonl file with their line numbers (blank lines skipped); a line that
    is not JSON is a :class:`DataError` naming the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # editors on Windows start with a byte-order mark
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {number}: not JSON ({err.msg} at column {err.colno})") from None
            except (ValueError, RecursionError) as err:  # a number of 5,000 digits, arrays nested 100,000 deep
                raise DataError(f"{path}: line {number}: not JSON this reader takes ({str(err)[:80]})") from None
            yield number, value


def id_problem(value: Any) -> str | None:
    """What makes ``value`` no usable id (None: nothing): ids are non-empty text (or whole
    numbers) of at most 1,000 characters that UTF-8 can store."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return f"expected an id, got {_shown(value)}"
    text = str(value) if not isinstance(value, int) or value.bit_length() < 4000 else "x" * 1001
    if len(text) > 1000:
        return f"an id of {len(text)} characters (at most 1000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"{_shown(value)} holds a lone surrogate, which UTF-8 cannot store"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def ingest_reports(ledger: Ledger, source: str | os.PathLike | Sequence[Mapping[str, Any]],
                   now: float | None = None) -> tuple[int, int]:
    """User reports (``post_id``, ``reporter``, ``category``, optional ``time``) from a jsonl file
    or a list of rows, all or none: a bad row is a :class:`DataError` naming it and its field, and
    nothing is written. A reported post gets a review item for the category unless it has one.
    Returns (new reports, rows)."""
    now = time.time() if now is None else now
    if isinstance(source, (str, os.PathLike)):
        where, numbered = str(source), list(json_lines(source))
    else:
        where, numbered = "reports", list(enumerate(source, 1))
    parsed = []
    for line, row in numbered:
        at_row = f"{where}: line {line}"
        if not isinstance(row, Mapping):
            raise DataError(f"{at_row}: expected a JSON object, got {type(row).__name__}")
        for name in ("post_id", "reporter", "category"):
            problem = id_problem(row.get(name))
            if problem:
                raise DataError(f"{at_row}: field {name!r}: {problem}")
        at = parse_time(row["time"], f"{at_row}: field 'time'") if row.get("time") is not None else now
        parsed.append((line, str(row["post_id"]), str(row["reporter"]), str(row["category"]), at))
    decisions = _decisions_of(ledger, {post for _, post, *_ in parsed})
    events = []
    for line, post_id, reporter, category, at in parsed:
        decision = decisions.get(post_id)
        if decision is None:
            raise DataError(f"{where}: line {line}: field 'post_id': {post_id!r} is not in the ledger (moderate the "
                            "post with --ledger first)")
        scores = decision.data.get("scores", {})
        if category not in scores:
            raise DataError(f"{where}: line {line}: field 'category': {category!r} is not scored for this post "
                            f"(categories: {', '.join(scores)})")
        item = item_id(post_id, category)
        common = {"account_id": decision.account_id, "post_id": post_id, "category": category, "item": item}
        events.append(new_event("report", [post_id, reporter, category], at, actor=reporter, **common))
        events.append(new_event("item", [item], at, **common, data={
            "source": "report", "score": scores.get(category), "weight": None}))
    return ledger.append(events)["report"], len(parsed)


def appeal(ledger: Ledger, post_id: str, category: str, appellant: str | None = None, at: float | None = None) -> str:
    """An account appeals the strike of ``post_id`` in ``category``: an item of the ``appeal``
    round goes to the queue (an ``overturn`` answer removes the strike). Returns the item id."""
    at = time.time() if at is None else at
    strikes = list(ledger.events(kinds=["strike"], post_ids=[post_id]))
    strike = next((s for s in strikes if s.category == category), None)
    if strike is None:
        raise DataError(f"appeal: post {post_id!r} has no strike in {category!r} to appeal")
    decision = _decisions_of(ledger, [post_id]).get(post_id)
    score = decision.data.get("scores", {}).get(category) if decision is not None else None
    item = item_id(post_id, category, "appeal")
    common = {"account_id": strike.account_id, "post_id": post_id, "category": category, "item": item}
    ledger.append([new_event("appeal", [post_id, category], at, actor=appellant, **common),
                   new_event("item", [item], at, **common, data={"source": "appeal", "score": score,
                                                                 "weight": None, "round": "appeal"})])
    return item


def reports_near(times: Sequence[float], at: float) -> int:
    """How many of a reporter's sorted report ``times`` fall within a day either side of ``at``
    (both sides: the first reports of a flood count as little as its last)."""
    return bisect_right(times, at + 86_400.0) - bisect_left(times, at - 86_400.0)


def report_times(ledger: Ledger) -> dict[str, list[float]]:
    """Each reporter's report times, sorted."""
    times: dict[str, list[float]] = defaultdict(list)
    for event in ledger.events(kinds=["report"]):
        times[str(event.actor)].append(event.at)
    return {reporter: sorted(values) for reporter, values in times.items()}
