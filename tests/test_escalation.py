"""Escalation (modelkit.accounts): sequences of events (strikes at times, in categories, appeals
that are overturned or confirmed, events stored out of order) and the penalty expected at each
time, table-driven through the ledger; the ladder's YAML checked field by field."""

from __future__ import annotations

import json

import pytest

from modelkit.accounts import EscalationPolicy, Ledger, account_state, appeal, import_answers, record_decisions
from modelkit.accounts.escalation import DAY
from modelkit.accounts.record import Sampling
from modelkit.config import ConfigError

NO_SAMPLES = Sampling(0.0, 0.0)

# Default ladder: 90-day window; warning (no lasting penalty), posting limited 7 days, ban for ever;
# severity 1 and 2 categories start at the warning, severity 3 (violence) at the ban.
# Events: ("strike", day, category) removes post p<n> of the account in that category;
# ("overturn", day, n) / ("upheld", day, n): the strike of the n-th event is appealed and a reviewer
# overturns / confirms it that day. Checks: (day, penalty, until-day or None, strikes in the window).
CASES = {
    "one strike: a warning, nothing lasting": (
        [("strike", 0, "superstition")],
        [(0.5, None, None, 1), (100, None, None, 0)]),
    "second strike in the window: limited for 7 days": (
        [("strike", 0, "superstition"), ("strike", 10, "piracy")],
        [(9, None, None, 1), (10.5, "limited", 17, 2), (16.9, "limited", 17, 2), (17.1, None, None, 2)]),
    "third strike: permanent ban": (
        [("strike", 0, "superstition"), ("strike", 10, "superstition"), ("strike", 20, "vulgar")],
        [(20.5, "ban", None, 3), (400, "ban", None, 0)]),
    "strikes decay: 100 days apart, each is a first strike": (
        [("strike", 0, "superstition"), ("strike", 100, "superstition"), ("strike", 150, "superstition")],
        [(100.5, None, None, 1), (150.5, "limited", 157, 2), (191, None, None, 1)]),
    "severity 3 goes straight to the ban": (
        [("strike", 5, "violence")],
        [(4, None, None, 0), (5.5, "ban", None, 1), (1000, "ban", None, 0)]),
    "overturned strike: the ban it led to never happened": (
        [("strike", 0, "superstition"), ("strike", 10, "superstition"), ("strike", 20, "vulgar"),
         ("overturn", 25, 1)],
        [(24, "ban", None, 3), (25.5, "limited", 27, 2), (27.5, None, None, 2)]),
    "appeal upheld: nothing changes": (
        [("strike", 0, "superstition"), ("strike", 10, "superstition"), ("upheld", 12, 1)],
        [(12.5, "limited", 17, 2)]),
    "overturned ban of a severe category": (
        [("strike", 0, "violence"), ("overturn", 3, 0)],
        [(2, "ban", None, 1), (3.5, None, None, 0)]),
    "limits overlap: the later one runs to its own end": (
        [("strike", 0, "piracy"), ("strike", 1, "piracy"), ("strike", 2, "piracy"), ("overturn", 4, 2)],
        [(1.5, "limited", 8, 2), (3, "ban", None, 3), (4.5, "limited", 8, 2)]),
}


def _run(tmp_path, events, stored_order=None):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    strikes = [e for e in events if e[0] == "strike"]
    order = stored_order or list(range(len(strikes)))
    for n in order:  # clock skew: strikes may be stored in another order than their times
        _, day, category = strikes[n]
        decision = {"id": f"p{n}", "account_id": "acct", "action": "remove", "categories": [category],
                    "scores": {category: 0.9}, "evidence": [], "unread": []}
        record_decisions(ledger, [decision], {f"p{n}": {"id": f"p{n}", "text": "x", "created_at": day * DAY}},
                         [{category: "remove"}], NO_SAMPLES)
    for number, (kind, day, target) in enumerate(e for e in events if e[0] != "strike"):
        category = strikes[target][2]
        item = appeal(ledger, f"p{target}", category, "acct", at=day * DAY)
        answers = tmp_path / f"answers-{number}.jsonl"
        answers.write_text(json.dumps({"item_id": item, "answer": "overturn" if kind == "overturn" else "confirm",
                                       "reviewer": "r", "time": day * DAY}) + "\n")
        import_answers(ledger, answers, labels=tmp_path / "labelled")
    return ledger


@pytest.mark.parametrize("case", list(CASES))
def test_escalation_table(case, tmp_path):
    events, checks = CASES[case]
    ledger = _run(tmp_path, events)
    for day, penalty, until, strikes in checks:
        state = account_state(ledger, "acct", at=day * DAY)
        assert (state.penalty, state.penalty_until, len(state.strikes)) == (
            penalty, None if until is None else until * DAY, strikes), f"{case}: day {day}"


def test_clock_skew_strikes_stored_out_of_order_give_the_same_states(tmp_path):
    events, checks = CASES["third strike: permanent ban"]
    ledger = _run(tmp_path, events, stored_order=[2, 0, 1])
    skewed = [account_state(ledger, "acct", at=day * DAY) for day in (0.5, 10.5, 20.5)]
    assert [(s.penalty, len(s.strikes)) for s in skewed] == [(None, 1), ("limited", 2), ("ban", 3)]
    assert [p.step for p in skewed[-1].history] == ["warning", "limited", "ban"]


def test_custom_ladder_per_category_and_window(tmp_path):
    policy = EscalationPolicy.load({"window_days": 30, "steps": [
        {"id": "warning", "days": 0}, {"id": "mute", "days": 1}, {"id": "suspend", "days": 30}],
        "first_step": {3: "suspend"}, "categories": {"piracy": "mute"}})
    ledger = _run(tmp_path, [("strike", 0, "piracy"), ("strike", 40, "superstition"), ("strike", 45, "violence")])
    assert account_state(ledger, "acct", 0.5 * DAY, policy).penalty == "mute"
    assert account_state(ledger, "acct", 40.5 * DAY, policy).penalty is None  # piracy decayed: a warning
    state = account_state(ledger, "acct", 45.5 * DAY, policy)
    assert (state.penalty, state.penalty_until) == ("suspend", 75 * DAY)


def test_shipped_ladder_is_the_configs_file():
    from pathlib import Path

    import modelkit

    shipped = Path(modelkit.__file__).parent / "resources" / "default_escalation.yaml"
    config = Path(__file__).resolve().parents[1] / "configs" / "taxonomy" / "escalation.yaml"
    assert shipped.read_text() == config.read_text()
    assert EscalationPolicy.load(config).to_dict() == EscalationPolicy.load().to_dict()


@pytest.mark.parametrize("broken, message", [
    ({"steps": []}, "steps: expected a list of steps"),
    ({"steps": [{"id": "a", "days": -1}]}, "steps[0].days: expected a number of days >= 0"),
    ({"steps": [{"id": "a"}, {"id": "a"}]}, "steps[1].id: 'a' is on two steps"),
    ({"steps": [{"id": "a", "hours": 3}]}, "steps[0]: unknown field 'hours'"),
    ({"steps": [{"id": "a"}], "first_step": {3: "ban"}}, "first_step.3: 'ban' is not a step"),
    ({"steps": [{"id": "a"}], "first_step": {4: "a"}}, "first_step.4: severities are 1, 2 and 3"),
    ({"steps": [{"id": "a"}], "categories": {"nonsense": "a"}}, "categories.nonsense: not a category"),
    ({"steps": [{"id": "a"}], "window_days": 0}, "window_days: expected a positive number"),
    ({"steps": [{"id": "a"}], "version": 2}, "version 2 is not known"),
    ({"steps": [{"id": "a"}], "ladder": []}, "unknown field 'ladder'"),
])
def test_bad_ladder_names_the_field(broken, message, tmp_path):
    import yaml

    path = tmp_path / "escalation.yaml"
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(ConfigError) as error:
        EscalationPolicy.load(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value), str(error.value)


def test_one_post_is_one_offence_whatever_its_categories(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    categories = {"superstition": 0.9, "vulgar": 0.9, "piracy": 0.9}
    record_decisions(ledger, [{"id": "p", "account_id": "acct", "action": "remove", "categories": list(categories),
                               "scores": categories, "evidence": [], "unread": []}],
                     {"p": {"text": "x", "created_at": 0.0}}, [dict.fromkeys(categories, "remove")], NO_SAMPLES)
    state = account_state(ledger, "acct", at=1.0)
    assert ledger.counts()["strike"] == 3  # recorded per category (each can be overturned alone)
    assert (len(state.strikes), state.penalty, [p.step for p in state.history]) == (1, None, ["warning"])
