"""Account states from the ledger: strikes not overturned -> :class:`EscalationPolicy` -> state."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Iterator

from .escalation import AccountState, EscalationPolicy, Strike
from .ledger import Event, Ledger, format_time


def standing_strikes(ledger: Ledger, at: float, account_id: str | None = None) -> dict[str, list[Strike]]:
    """Per account, its strikes that no overturn dated ``at`` or before removed (strikes dated by
    their own time, whatever the order they were stored in). An overturn erases its strike from
    the account's whole history from then on; before it, the strike stood."""
    overturned = {(e.post_id, e.category) for e in ledger.events(kinds=["overturn"], account_id=account_id)
                  if e.at <= at}
    strikes: dict[str, list[Strike]] = defaultdict(list)
    for event in ledger.events(kinds=["strike"], account_id=account_id):
        if event.account_id is not None and (event.post_id, event.category) not in overturned:
            strikes[event.account_id].append(Strike(str(event.post_id), str(event.category), event.at))
    return strikes


def account_state(ledger: Ledger, account_id: str, at: float | None = None,
                  policy: EscalationPolicy | None = None) -> AccountState:
    """``account_id`` at time ``at`` (default now) under ``policy`` (default: the shipped ladder)."""
    policy = policy or EscalationPolicy.load()
    at = time.time() if at is None else at
    return policy.state(account_id, standing_strikes(ledger, at, account_id).get(account_id, []), at)


def account_states(ledger: Ledger, at: float | None = None, policy: EscalationPolicy | None = None
                   ) -> Iterator[AccountState]:
    """Every account the ledger has a decision for, at time ``at``, in account order."""
    policy = policy or EscalationPolicy.load()
    at = time.time() if at is None else at
    strikes = standing_strikes(ledger, at)
    accounts = {e.account_id for e in ledger.events(kinds=["decision"]) if e.account_id is not None} | set(strikes)
    for account in sorted(accounts):
        yield policy.state(account, strikes.get(account, []), at)


def timeline(ledger: Ledger, account_id: str, at: float | None = None, policy: EscalationPolicy | None = None
             ) -> list[dict[str, Any]]:
    """What led to an account's state: its stored events and the penalties they gave (``penalty
    start`` / ``penalty end`` rows, derived, never stored), in time order."""
    state = account_state(ledger, account_id, at, policy)
    rows: list[dict[str, Any]] = [_event_row(e) for e in ledger.events(account_id=account_id) if e.at <= state.at]
    for penalty in state.history:
        rows.append({"kind": "penalty start", "at": penalty.start, "time": format_time(penalty.start),
                     "step": penalty.step, "post_id": penalty.post_id, "category": penalty.category})
        if penalty.end is not None and penalty.end != penalty.start and penalty.end <= state.at:
            rows.append({"kind": "penalty end", "at": penalty.end, "time": format_time(penalty.end),
                         "step": penalty.step, "post_id": penalty.post_id, "category": penalty.category})
    rows.sort(key=lambda row: (row["at"], row.get("seq", 1 << 62)))
    return rows


def _event_row(event: Event) -> dict[str, Any]:
    row = event.to_dict()
    data = row.pop("data", {})
    # The decision's full evidence and post are for the review page; the timeline keeps its gist.
    for name in ("action", "categories", "source", "answer", "score", "named_category"):
        if name in data:
            row[name] = data[name]
    return row
