"""Post policy: fused scores -> an action per category -> the post's action.

Per category a ``review`` and a ``remove`` threshold: a score at or over ``remove`` removes the
post, one at or over ``review`` sends it to a person. Unset thresholds come from the members'
calibrated threshold and the taxonomy's ``action``: a ``remove`` category removes at its
threshold, a ``review`` category is reviewed at it (and never removed without a person). The
most severe action of any category is the post's; its categories are listed most severe first
(action, then the taxonomy's severity, then the score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import numpy as np

from ..config import ConfigError
from ..taxonomy import Taxonomy

PostAction = Literal["pass", "review", "remove"]
ACTIONS: tuple[PostAction, ...] = ("pass", "review", "remove")


def _thresholds(values: Mapping[str, Any] | None, taxonomy: Taxonomy, name: str) -> dict[str, float | None]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"policy.{name}: expected a mapping of category -> threshold, got {type(values).__name__}")
    out: dict[str, float | None] = {}
    for category, value in values.items():
        if category not in taxonomy:
            raise ConfigError(f"policy.{name}.{category}: no member scores this category (the members score "
                              f"{', '.join(taxonomy.ids)})")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or not 0.0 <= value <= 1.0):
            raise ConfigError(f"policy.{name}.{category}: must be a number in [0, 1] or null (never), got {value!r}")
        out[category] = None if value is None else float(value)
    return out


@dataclass(frozen=True)
class PostPolicy:
    """``review`` and ``remove`` thresholds per category of ``taxonomy`` (None: never)."""

    taxonomy: Taxonomy
    review: dict[str, float | None]
    remove: dict[str, float | None]

    @classmethod
    def from_config(cls, taxonomy: Taxonomy, thresholds: Mapping[str, float],
                    review: Mapping[str, Any] | None = None, remove: Mapping[str, Any] | None = None) -> PostPolicy:
        """Thresholds given in ``review``/``remove`` (a policy block of a moderator's YAML), the
        others from ``thresholds`` (the fused scores' calibrated ones) and the taxonomy's action."""
        review, remove = _thresholds(review, taxonomy, "review"), _thresholds(remove, taxonomy, "remove")
        full_review, full_remove = {}, {}
        for category in taxonomy:
            default = float(thresholds[category.id])
            full_remove[category.id] = remove.get(category.id, default if category.action == "remove" else None)
            full_review[category.id] = review.get(category.id, default if category.action == "review" else None)
            low, high = full_review[category.id], full_remove[category.id]
            if low is not None and high is not None and low > high:
                low_note = "" if category.id in review else " (the default)"
                high_note = "" if category.id in remove else " (the default)"
                raise ConfigError(f"policy.review.{category.id}: {low}{low_note} is above policy.remove.{category.id} "
                                  f"{high}{high_note}; a post would be removed before it is reviewed")
        return cls(taxonomy, full_review, full_remove)

    def _vector(self, values: Mapping[str, float | None]) -> np.ndarray:
        return np.array([np.inf if values[c] is None else values[c] for c in self.taxonomy.ids], dtype=np.float64)

    def category_actions(self, scores: np.ndarray) -> np.ndarray:
        """Per post and category, the index into :data:`ACTIONS` of what its score calls for
        (NaN, a category nothing could score: pass)."""
        scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-1.0)
        actions = np.zeros(scores.shape, dtype=np.int64)
        actions[scores >= self._vector(self.review)] = 1
        actions[scores >= self._vector(self.remove)] = 2
        return actions

    def decide(self, scores: np.ndarray) -> list[tuple[PostAction, list[str]]]:
        """For each row of fused scores, the action and the categories that call for one."""
        severity = np.array([c.severity for c in self.taxonomy], dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        actions = self.category_actions(scores)
        decided: list[tuple[PostAction, list[str]]] = [("pass", [])] * len(scores)
        rows = np.flatnonzero(actions.any(axis=1))  # most posts pass: only flagged rows are ranked
        if rows.size:
            flagged = actions[rows]
            # Per row, categories by action, then severity, then score (lexsort: last key first).
            order = np.lexsort((-np.nan_to_num(scores[rows], nan=-1.0), -np.broadcast_to(severity, flagged.shape),
                                -flagged), axis=-1)
            ranked_actions = np.take_along_axis(flagged, order, axis=-1)
            ids = self.taxonomy.ids
            # Plain lists from here: per-row numpy indexing would cost more than the ranking.
            for row, ranked, acts in zip(rows.tolist(), order.tolist(), ranked_actions.tolist()):
                decided[row] = (ACTIONS[acts[0]], [ids[j] for j, act in zip(ranked, acts) if act])
        return decided

    def to_dict(self) -> dict[str, Any]:
        return {"review": dict(self.review), "remove": dict(self.remove)}
