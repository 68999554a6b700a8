"""Thresholds refitted on reviewers' answers (``modelkit calibrate MODERATOR --ledger URL``).

An answered item is a labelled decision: its stored fused score and whether the reviewer
confirmed the item's category. Items came to the queue by different routes, so each counts by
its sampling weight: a ``review`` item (every post in the review band is one) weighs 1, a
sampled ``pass`` or ``remove`` decision 1 / its sampling rate, and items that came by reports
or appeals (drawn by no known rate) are left out of the estimates. Weighted, the answers
estimate precision and recall over all decisions of the category, not over the queue's skewed
share of them; each estimate says how many answers it rests on.

Per category the threshold that makes the category's action is refitted: ``review`` where the
policy has one (it decides what reaches the queue), else ``remove`` (kept at or under the
``remove`` threshold, so a post is still seen before it is removed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import read_yaml
from ..evaluation.thresholds import Objective, operating_point
from .ledger import Ledger
from .review import answered_items


def weighted_point(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray, threshold: float) -> dict[str, Any]:
    """Weighted precision and recall of flagging ``scores >= threshold``, and the answers each
    rests on (None: no answer to estimate it from)."""
    flagged = scores >= threshold
    positive = truth == 1
    flagged_weight, positive_weight = weights[flagged].sum(), weights[positive].sum()
    hit = weights[flagged & positive].sum()
    return {"threshold": float(threshold),
            "precision": float(hit / flagged_weight) if flagged_weight > 0 else None,
            "recall": float(hit / positive_weight) if positive_weight > 0 else None,
            "answers_flagged": int(flagged.sum()), "answers_positive": int(positive.sum())}


def refit_policy(ledger: Ledger, moderator_config: str | os.PathLike, objective: Objective | str,
                 output: str | os.PathLike | None = None, min_answers: int = 20) -> dict[str, Any]:
    """Refit the moderator's policy thresholds on the ledger's answers for ``objective``;
    with ``output``, write the moderator YAML with the new thresholds there (member paths made
    absolute, so the file works from any folder). A category with fewer than ``min_answers``
    weighted answers, or whose objective is out of reach, keeps its threshold."""
    from ..posts.moderator import load_moderator

    objective = Objective.parse(objective) if isinstance(objective, str) else objective
    moderator = load_moderator(moderator_config)
    policy = moderator.policy
    rows = [r for r in answered_items(ledger) if r["weight"] is not None and r["score"] is not None]
    record: dict[str, Any] = {"objective": str(objective), "answers": len(rows), "categories": {}}
    review, remove = {}, {}
    for category in moderator.categories:
        picked = [r for r in rows if r["category"] == category]
        action = "review" if policy.review.get(category) is not None else "remove"
        old = (policy.review if action == "review" else policy.remove).get(category)
        entry: dict[str, Any] = {"action": action, "answers": len(picked), "old": None, "new": None, "kept": True}
        if picked and old is not None:
            truth = np.array([r["truth"] for r in picked])
            scores = np.array([r["score"] for r in picked], dtype=np.float64)
            weights = np.array([r["weight"] for r in picked], dtype=np.float64)
            entry["old"] = weighted_point(truth, scores, weights, old)
            point = operating_point(truth, scores, objective, weights) if len(picked) >= min_answers else None
            if point is not None:
                threshold = point["threshold"]
                if action == "review" and policy.remove.get(category) is not None:
                    threshold = min(threshold, policy.remove[category])
                entry["new"] = weighted_point(truth, scores, weights, threshold)
                entry["kept"] = False
                (review if action == "review" else remove)[category] = round(threshold, 6)
        record["categories"][category] = entry
    if output is not None:
        record["output"] = str(_write_moderator(moderator_config, review, remove, Path(output)))
    return record


def _write_moderator(source: str | os.PathLike, review: dict[str, float], remove: dict[str, float],
                     output: Path) -> Path:
    import yaml

    from ..posts.page import write_atomically

    source = Path(source)
    config = dict(read_yaml(source))
    base = source.resolve().parent
    config["members"] = {name: _absolute(path, base) for name, path in (config.get("members") or {}).items()}
    if isinstance(config.get("fusion"), str) and config["fusion"] not in ("max", "noisy_or"):
        config["fusion"] = _absolute(config["fusion"], base)
    policy = dict(config.get("policy") or {})
    for name, fitted in (("review", review), ("remove", remove)):
        if fitted:
            policy[name] = {**(policy.get(name) or {}), **fitted}
    config["policy"] = policy
    text = ("# Refitted by modelkit calibrate --ledger from reviewers' answers; "
            f"thresholds of {source.name} changed: {', '.join(sorted({**review, **remove})) or 'none'}\n")
    text += yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
    return write_atomically(output, lambda path: path.write_text(text, encoding="utf-8"))


def _absolute(path: Any, base: Path) -> Any:
    if not isinstance(path, str):
        return path
    for candidate in (Path(path), base / path):
        if candidate.exists():
            return str(candidate.resolve())
    return path
