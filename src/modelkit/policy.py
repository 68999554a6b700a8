"""Decision policy: from model logits to calibrated scores and per-category decisions.

A :class:`Policy` holds what turns a model's raw output into decisions: the taxonomy (which
column is which category), a temperature per category (``modelkit calibrate --temperature``)
and a threshold per category. The classifier, the report and (later) post-level fusion share
it, so a score means the same thing everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np
import torch

from .config import ConfigError
from .taxonomy import Taxonomy


def scores_from_logits(logits: np.ndarray, temperature: np.ndarray | float = 1.0) -> np.ndarray:
    """sigmoid(logits / T), the same float32 sigmoid as in training. Never a softmax."""
    return torch.sigmoid(torch.from_numpy(np.asarray(logits / temperature, dtype=np.float32))).numpy()


def _checked(values: Mapping[str, Any], taxonomy: Taxonomy, name: str, valid, rule: str) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{name}: expected a mapping of category -> number, got {type(values).__name__}")
    out = {}
    for category, value in values.items():
        if category not in taxonomy:
            raise ConfigError(f"{name}.{category}: not a category of the taxonomy ({', '.join(taxonomy.ids)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not valid(value):
            raise ConfigError(f"{name}.{category}: must be {rule}, got {value!r}")
        out[category] = float(value)
    return out


@dataclass(frozen=True)
class Policy:
    """Thresholds and temperatures per category of ``taxonomy`` (missing ones: 0.5 and 1.0).

    >>> policy = Policy(taxonomy, thresholds={"abuse": 0.7})
    >>> policy.decide(policy.scores(logits))   # bool [n, categories]
    """

    taxonomy: Taxonomy
    thresholds: dict[str, float] = field(default_factory=dict)
    temperatures: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        thresholds = _checked(self.thresholds, self.taxonomy, "thresholds", lambda t: 0.0 <= t <= 1.0,
                              "a number in [0, 1]")
        temperatures = _checked(self.temperatures, self.taxonomy, "calibration.temperature", lambda t: t > 0,
                                "a number > 0")
        object.__setattr__(self, "thresholds", {c: thresholds.get(c, 0.5) for c in self.taxonomy.ids})
        object.__setattr__(self, "temperatures", {c: temperatures.get(c, 1.0) for c in self.taxonomy.ids})

    @property
    def categories(self) -> list[str]:
        return self.taxonomy.ids

    @property
    def threshold_vector(self) -> np.ndarray:
        return np.array([self.thresholds[c] for c in self.categories], dtype=np.float32)

    @property
    def temperature_vector(self) -> np.ndarray:
        return np.array([self.temperatures[c] for c in self.categories], dtype=np.float32)

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated sigmoid scores, columns in taxonomy order."""
        return scores_from_logits(logits, self.temperature_vector)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Boolean label matrix: score >= the category's threshold."""
        return np.asarray(scores) >= self.threshold_vector

    def with_values(self, thresholds: Mapping[str, float] | None = None,
                    temperatures: Mapping[str, float] | None = None) -> Policy:
        """A copy with some thresholds and/or temperatures replaced."""
        return replace(self, thresholds={**self.thresholds, **(thresholds or {})},
                       temperatures={**self.temperatures, **(temperatures or {})})
