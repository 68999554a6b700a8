"""A simulated week of a platform: synthetic accounts post, a few of them repeatedly violate,
users report (some reliably, some not), a scripted reviewer answers the queue each evening, and
penalties escalate (``make demo`` runs it; the tests measure the reviewer loop on it).

The truth is known (the synthetic posts' labels), so the scripted reviewer answers right, and
the queue's precision, the reporters' learned reliability and the accounts' steps can be checked
against it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..data.synthetic import write_jsonl
from ..posts.moderator import Moderator
from ..posts.run import moderate_files
from ..posts.synthetic import make_synthetic_posts
from .escalation import DAY, AccountState, EscalationPolicy
from .ledger import Ledger
from .record import LedgerWriter, Sampling, ingest_reports
from .review import export_queue, import_answers, reporter_reliability, review_queue
from .state import account_states

START = 1_798_761_600.0  # 2027-01-01T00:00:00Z: the simulated week's first day
POST_KINDS = {"clean": 0.55, "single": 0.3, "half": 0.15}


@dataclass
class Day:
    day: int
    posts: int
    actions: dict[str, int]
    reports: int
    answered: int
    review_precision: float | None  # share of the answered ``review`` items the reviewer confirmed
    review_items: int


@dataclass
class Week:
    days: list[Day]
    states: list[AccountState]
    reached: dict[str, list[str]]  # step -> accounts that reached it during the week
    reliability: dict[str, dict[str, float]]
    reporters: dict[str, str]  # reporter -> "reliable" | "unreliable"
    truth: dict[str, list[str]] = field(repr=False, default_factory=dict)  # post id -> its categories


def week_posts(folder: Path, categories: Sequence[str], day: int, count: int, accounts: int, offenders: int,
               seed: int, start: float = START) -> list[dict[str, Any]]:
    """One day's synthetic posts (``folder/day-N/posts.jsonl``): violations come mostly (3 in 4)
    from the ``offenders`` (``acct-0`` ...), clean posts from anyone; ``created_at`` spread over
    the day."""
    day_folder = folder / f"day-{day}"
    rows = make_synthetic_posts(day_folder, count, list(categories), kinds=POST_KINDS, images=(1, 2),
                                video_fraction=0.05, seed=seed * 1000 + day, prefix=f"d{day}")
    rng = np.random.default_rng([seed, day, 7])
    for n, row in enumerate(rows):
        if row["labels"] and rng.random() < 0.75:
            account = int(rng.integers(offenders))
        else:
            account = int(rng.integers(accounts))
        row["account_id"] = f"acct-{account}"
        row["created_at"] = start + day * DAY + n * DAY / max(count, 1)
    write_jsonl(day_folder / "posts.jsonl", rows)
    return rows


def simulate_week(moderator: Moderator, ledger: Ledger, folder: str | Path, *, days: int = 7,
                  posts_per_day: int = 40, accounts: int = 24, offenders: int = 4, reliable: int = 3,
                  unreliable: int = 3, reviewer_capacity: int = 60, sampling: Sampling = Sampling(0.05, 0.05),
                  policy: EscalationPolicy | None = None, seed: int = 0, start: float = START,
                  progress: bool = False) -> Week:
    """Run ``days`` days into ``ledger``; the files of day N go to ``folder/day-N`` (posts,
    decisions, reports, the evening's queue and its page, answers) and the labelled manifests to
    ``folder/labelled``."""
    folder = Path(folder)
    policy = policy or EscalationPolicy.load()
    reporters = {**{f"reliable-{k}": "reliable" for k in range(reliable)},
                 **{f"unreliable-{k}": "unreliable" for k in range(unreliable)}}
    writer = LedgerWriter(ledger, moderator.policy, sampling)
    truth: dict[str, list[str]] = {}
    report: list[Day] = []
    for day in range(days):
        rows = week_posts(folder, moderator.categories, day, posts_per_day, accounts, offenders, seed, start)
        truth.update((row["id"], row["labels"]) for row in rows)
        out = folder / f"day-{day}"
        moderate_files(moderator, out / "posts.jsonl", out / "decisions", on_decided=writer, progress=progress,
                       overwrite=True)
        actions = _actions(ledger, [row["id"] for row in rows])
        reports = _reports(rows, actions, reporters, moderator.categories, np.random.default_rng([seed, day, 11]))
        write_jsonl(out / "reports.jsonl", reports)
        ingest_reports(ledger, out / "reports.jsonl")
        evening = start + (day + 1) * DAY - 1.0
        answered, precision, review_items = _review(ledger, truth, reviewer_capacity, evening, out, folder)
        report.append(Day(day, len(rows), dict(sorted(_count(actions.values()).items())), len(reports), answered,
                          precision, review_items))
    states = list(account_states(ledger, start + days * DAY, policy))
    reached: dict[str, list[str]] = {step.id: [] for step in policy.steps}
    for state in states:
        for step in dict.fromkeys(p.step for p in state.history):
            reached[step].append(state.account_id)
    return Week(report, states, reached, reporter_reliability(ledger), reporters, truth)


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for value in values:
        counts[value] += 1
    return counts


def _actions(ledger: Ledger, post_ids: list[str]) -> dict[str, str]:
    return {str(e.post_id): e.data["action"] for e in ledger.events(kinds=["decision"], post_ids=post_ids)}


def _reports(rows: list[dict[str, Any]], actions: Mapping[str, str], reporters: Mapping[str, str],
             categories: Sequence[str], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Reliable reporters report the violations they see (in their category); unreliable ones
    report what they see at random, in a random category. Removed posts are seen by no one."""
    out = []
    for row in rows:
        if actions.get(row["id"]) == "remove":
            continue
        for reporter, kind in reporters.items():
            if rng.random() >= 0.3:  # the post did not reach this reporter
                continue
            if kind == "reliable" and row["labels"]:
                category = row["labels"][0]
            elif kind == "unreliable" and rng.random() < 0.5:
                category = str(categories[int(rng.integers(len(categories)))])
            else:
                continue
            out.append({"post_id": row["id"], "reporter": reporter, "category": category,
                        "time": row["created_at"] + 3600.0})
    return out


def _review(ledger: Ledger, truth: Mapping[str, list[str]], capacity: int, at: float, out: Path, folder: Path
            ) -> tuple[int, float | None, int]:
    """The evening's batch: the queue's first ``capacity`` items exported (``queue.jsonl`` and
    ``queue.html``), answered by the scripted reviewer from the truth, imported."""
    queue, _, _ = export_queue(ledger, out / "queue.jsonl", capacity)
    answers, confirmed_review, review_items = [], 0, 0
    for line in queue.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        labels = truth.get(item["post_id"], [])
        row: dict[str, Any] = {"item_id": item["item_id"], "reviewer": "scripted", "time": at}
        if item["category"] in labels:
            row["answer"] = "confirm"
        elif labels and item["source"] != "appeal":
            row.update(answer="confirm", category=labels[0])
        else:
            row["answer"] = "overturn"
        if item["source"] == "review":
            review_items += 1
            confirmed_review += item["category"] in labels
        answers.append(row)
    path = out / "answers.jsonl"
    path.write_text("".join(json.dumps(a) + "\n" for a in answers), encoding="utf-8")
    import_answers(ledger, path, labels=folder / "labelled")
    return len(answers), (confirmed_review / review_items if review_items else None), review_items


def review_precision(moderator: Moderator, ledger: Ledger, folder: str | Path, *, day: int = 7,
                     posts: int = 200, accounts: int = 24, offenders: int = 4, seed: int = 0) -> tuple[float | None, int]:
    """Precision of the ``review`` items a moderator sends to the queue on a new day's posts
    (judged by the truth), and how many there were: what a threshold refit should move."""
    folder = Path(folder)
    rows = week_posts(folder, moderator.categories, day, posts, accounts, offenders, seed)
    truth = {row["id"]: row["labels"] for row in rows}
    moderate_files(moderator, folder / f"day-{day}" / "posts.jsonl", folder / f"day-{day}" / "decisions",
                   on_decided=LedgerWriter(ledger, moderator.policy, Sampling(0.0, 0.0)), progress=False,
                   overwrite=True)
    items = [item for item in review_queue(ledger) if item.source == "review" and item.post_id in truth]
    if not items:
        return None, 0
    return sum(item.category in truth[item.post_id] for item in items) / len(items), len(items)
