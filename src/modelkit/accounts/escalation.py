"""Escalation: an account's strikes -> the penalty it is under at a given time.

The ladder is data (``configs/taxonomy/escalation.yaml``, shipped as the default): steps in
order of severity, each with a duration (``days``; null: permanent). A strike lands one step
above the previous strikes of the window before it (``window_days``: older strikes have decayed),
starting from the step its category's severity names (``first_step``; ``categories`` overrides
it per category). Its penalty starts at the strike's time and lasts the step's days.

Everything here is a pure function of the strikes: a strike that is overturned, or one that
arrives late with an earlier time (clock skew), simply changes the input, and the state is
computed again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..config import ConfigError, read_yaml
from ..taxonomy import Taxonomy

DAY = 86_400.0


@dataclass(frozen=True)
class Step:
    id: str
    description: str = ""
    days: float | None = 0.0  # None: never ends


@dataclass(frozen=True)
class Strike:
    """A counted violation: ``post_id`` broke ``category`` at ``at`` (seconds since the epoch)."""

    post_id: str
    category: str
    at: float


@dataclass(frozen=True)
class Penalty:
    """The step a strike put its account on, from ``start`` to ``end`` (None: permanent)."""

    step: str
    index: int
    start: float
    end: float | None
    post_id: str
    category: str

    def active(self, at: float) -> bool:
        return self.start <= at and (self.end is None or at < self.end)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "start": self.start, "end": self.end, "post_id": self.post_id,
                "category": self.category}


@dataclass
class AccountState:
    """An account at time ``at``: its counted ``strikes`` still in the window (one per post), the
    ``penalty`` it is under (the highest active step; None: none) until ``penalty_until`` (None
    with a penalty: for ever), and every penalty its strikes gave up to then (``history``, oldest
    first)."""

    account_id: str
    at: float
    strikes: list[Strike] = field(default_factory=list)
    penalty: str | None = None
    penalty_until: float | None = None
    history: list[Penalty] = field(default_factory=list)

    @property
    def highest_step(self) -> str | None:
        """The most severe step the account ever reached (None: never struck)."""
        return max(self.history, key=lambda p: p.index).step if self.history else None

    def to_dict(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "strikes": len(self.strikes), "penalty": self.penalty,
                "penalty_until": self.penalty_until}


class EscalationPolicy:
    """The ladder of :mod:`modelkit.accounts.escalation` (build with :meth:`load`)."""

    def __init__(self, steps: list[Step], window_days: float, first_step: Mapping[int, str],
                 categories: Mapping[str, str] | None = None, taxonomy: Taxonomy | None = None) -> None:
        self.steps = steps
        self.window = window_days * DAY
        self.taxonomy = taxonomy or Taxonomy.load()
        index = {step.id: n for n, step in enumerate(steps)}
        self._first_by_severity = {severity: index[name] for severity, name in first_step.items()}
        self._first_by_category = {category: index[name] for category, name in (categories or {}).items()}

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any] = "default", taxonomy: Taxonomy | None = None
             ) -> EscalationPolicy:
        """From a YAML file, a mapping, or ``"default"`` (the shipped ladder)."""
        if isinstance(source, Mapping):
            return cls.from_dict(source, taxonomy, "escalation")
        if str(source) == "default":
            with resources.as_file(resources.files("modelkit.resources") / "default_escalation.yaml") as path:
                return cls.from_dict(read_yaml(path), taxonomy, "escalation")
        return cls.from_dict(read_yaml(source), taxonomy, str(source))

    @classmethod
    def from_dict(cls, data: Any, taxonomy: Taxonomy | None = None, where: str = "escalation") -> EscalationPolicy:
        """Validated: every error names the file and field."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - {"version", "window_days", "steps", "first_step", "categories"}
        if unknown:
            raise ConfigError(f"{where}: unknown field {sorted(unknown)[0]!r} (fields: version, window_days, steps, "
                              "first_step, categories)")
        if data.get("version", 1) != 1:
            raise ConfigError(f"{where}: version {data.get('version')!r} is not known to this modelkit (1)")
        window = data.get("window_days", 90)
        if not _number(window) or window <= 0:
            raise ConfigError(f"{where}: window_days: expected a positive number of days, got {window!r}")
        steps = _steps(data.get("steps"), where)
        names = [step.id for step in steps]
        first_step = data.get("first_step") or {}
        if not isinstance(first_step, Mapping):
            raise ConfigError(f"{where}: first_step: expected a mapping of severity -> step, got {first_step!r}")
        # JSON and quoted YAML keys are text: "3" is severity 3.
        first_step = {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in first_step.items()}
        for severity in (1, 2, 3):
            name = first_step.get(severity, names[0])
            if name not in names:
                raise ConfigError(f"{where}: first_step.{severity}: {name!r} is not a step ({', '.join(names)})")
        extra = set(first_step) - {1, 2, 3}
        if extra:
            raise ConfigError(f"{where}: first_step.{sorted(map(str, extra))[0]}: severities are 1, 2 and 3")
        categories = data.get("categories") or {}
        if not isinstance(categories, Mapping):
            raise ConfigError(f"{where}: categories: expected a mapping of category -> step, got {categories!r}")
        taxonomy = taxonomy or Taxonomy.load()
        for category, name in categories.items():
            if category not in taxonomy:
                raise ConfigError(f"{where}: categories.{category}: not a category of the taxonomy")
            if name not in names:
                raise ConfigError(f"{where}: categories.{category}: {name!r} is not a step ({', '.join(names)})")
        return cls(steps, float(window), {s: first_step.get(s, names[0]) for s in (1, 2, 3)}, dict(categories),
                   taxonomy)

    def first_step(self, category: str) -> int:
        """The ladder index of a category's first strike (a category the taxonomy lacks: the bottom)."""
        if category in self._first_by_category:
            return self._first_by_category[category]
        if category in self.taxonomy:
            return self._first_by_severity[self.taxonomy[category].severity]
        return 0

    def counted(self, strikes: Iterable[Strike]) -> list[Strike]:
        """The strikes that count, in time order (ties: post id, category, so that the order is
        the same however they were stored): one per post, its most severe category's (a post
        removed for three categories at once is one offence, not three)."""
        by_post: dict[str, Strike] = {}
        for strike in sorted(strikes, key=lambda s: (s.at, s.post_id, s.category)):
            kept = by_post.get(strike.post_id)
            if kept is None or self.first_step(strike.category) > self.first_step(kept.category):
                by_post[strike.post_id] = strike if kept is None else Strike(strike.post_id, strike.category,
                                                                             min(kept.at, strike.at))
        return sorted(by_post.values(), key=lambda s: (s.at, s.post_id, s.category))

    def penalties(self, strikes: Iterable[Strike]) -> list[Penalty]:
        """One penalty per counted strike (:meth:`counted`), in time order."""
        ordered = self.counted(strikes)
        out: list[Penalty] = []
        for n, strike in enumerate(ordered):
            earlier = sum(1 for other in ordered[:n] if other.at > strike.at - self.window)
            index = min(self.first_step(strike.category) + earlier, len(self.steps) - 1)
            step = self.steps[index]
            end = None if step.days is None else strike.at + step.days * DAY
            out.append(Penalty(step.id, index, strike.at, end, strike.post_id, strike.category))
        return out

    def state(self, account_id: str, strikes: Iterable[Strike], at: float) -> AccountState:
        """The account at time ``at``: strikes dated after it do not exist yet."""
        past = self.counted(s for s in strikes if s.at <= at)
        history = self.penalties(past)
        active = [p for p in history if p.active(at) and p.end != p.start]
        state = AccountState(account_id, at, [s for s in past if s.at > at - self.window], history=history)
        if active:
            top = max(p.index for p in active)
            ends = [p.end for p in active if p.index == top]
            state.penalty = self.steps[top].id
            state.penalty_until = None if None in ends else max(e for e in ends if e is not None)
        return state

    def to_dict(self) -> dict[str, Any]:
        return {"window_days": self.window / DAY,
                "steps": [{"id": s.id, "description": s.description, "days": s.days} for s in self.steps],
                "first_step": {s: self.steps[i].id for s, i in self._first_by_severity.items()},
                "categories": {c: self.steps[i].id for c, i in self._first_by_category.items()}}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _steps(raw: Any, where: str) -> list[Step]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: steps: expected a list of steps (id, description, days), got {raw!r}")
    steps, seen = [], set()
    for n, item in enumerate(raw):
        at = f"{where}: steps[{n}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{at}: expected a mapping with id, description, days")
        unknown = set(item) - {"id", "description", "days"}
        if unknown:
            raise ConfigError(f"{at}: unknown field {sorted(unknown)[0]!r} (fields: id, description, days)")
        name = item.get("id")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{at}.id: expected a name, got {name!r}")
        if name in seen:
            raise ConfigError(f"{at}.id: {name!r} is on two steps")
        seen.add(name)
        days = item.get("days", 0)
        if days is not None and (not _number(days) or days < 0):
            raise ConfigError(f"{at}.days: expected a number of days >= 0 or null (permanent), got {days!r}")
        steps.append(Step(name, str(item.get("description", "")), None if days is None else float(days)))
    return steps
