"""``modelkit moderate --ledger`` SIGKILLed at random moments and rerun each time: every post is
decided exactly once, the decisions are those of an uninterrupted run, and the account ledger
(SQLite, and PostgreSQL where a server runs) holds the same facts, each once: every (post,
category) strike recorded once, the same account states. Also three processes at once on the
same posts and ledger.

``make test`` kills it 3 times; ``make soak`` (``MODELKIT_SOAK=1``, also run by CI) 10 times."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from modelkit.accounts import Ledger, account_states
from modelkit.cli import main
from modelkit.data.synthetic import write_jsonl
from modelkit.posts import read_decisions
from modelkit.posts.synthetic import make_synthetic_posts

from conftest import new_postgres_database
from test_engine import _kill_until_done

KILLS = 10 if os.environ.get("MODELKIT_SOAK") == "1" else 3


def _decisions(output) -> dict:
    rows = list(read_decisions(output))
    counts = Counter(row["id"] for row in rows)
    assert max(counts.values()) == 1, [i for i, n in counts.items() if n > 1][:5]
    return {row["id"]: row for row in rows}


def _same(got: dict, want: dict) -> None:
    """Equal decisions: actions, categories, parts and places alike, numbers within 1e-5."""
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=1e-5), key
        elif isinstance(value, dict):
            _same(got[key], value)
        elif isinstance(value, list):
            assert len(got[key]) == len(value), key
            for a, b in zip(got[key], value):
                _same(a, b) if isinstance(b, dict) else _same({"v": a}, {"v": b})
        else:
            assert got[key] == value, key


def _facts(url: str) -> Counter:
    """What a ledger holds, whatever order it was stored in (a Counter: a fact twice would show)."""
    ledger = Ledger(url)
    facts = Counter((e.kind, e.post_id, e.category, e.item_id, e.account_id, e.at, e.actor) for e in ledger.events())
    ledger.close()
    return facts


def _states(url: str) -> list:
    ledger = Ledger(url)
    states = [s.to_dict() | {"history": [p.to_dict() for p in s.history]} for s in account_states(ledger, at=1e7)]
    ledger.close()
    return states


# make test: SQLite; make soak (CI): PostgreSQL too (the ledger's own tests cover it in make test).
@pytest.fixture(params=["sqlite", "postgresql"] if KILLS == 10 else ["sqlite"])
def ledgers(request, tmp_path):
    """A factory of empty ledgers' URLs on one backend."""
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{tmp_path / name}.db"
    server = request.getfixturevalue("postgres_server")
    return lambda name: new_postgres_database(server)


def _posts(tmp_path, count=200):
    rows = make_synthetic_posts(tmp_path, count, images=(1, 2), video_fraction=0.05, seed=41)
    for n, row in enumerate(rows):
        row["created_at"] = 1_800_000_000 + 600 * n
    return rows


def test_moderate_killed_at_random_moments_decides_every_post_once(post_members, ledgers, tmp_path):
    rows = _posts(tmp_path)
    rows.insert(7, {"id": "empty", "text": ""})  # an error row is written exactly once too
    source = write_jsonl(tmp_path / "posts.jsonl", rows)
    argv = ["moderate", "--input", str(source), "--shard-size", "6", "--format", "jsonl", "--page-limit", "0",
            "--sample-pass", "0.1", "--sample-remove", "0.1",
            *(f"--{name}={path}" for name, path in post_members.items())]
    reference_ledger, killed_ledger = ledgers("reference"), ledgers("killed")
    assert main([*argv, "--output", str(tmp_path / "reference"), "--ledger", reference_ledger]) == 0
    killed = tmp_path / "killed"
    made = _kill_until_done([*argv, "--output", str(killed), "--ledger", killed_ledger], killed, kills=KILLS)
    assert made >= KILLS, f"the run finished after {made} kills; give it more posts"
    assert not list(killed.glob(".part-*"))
    got, want = _decisions(killed), _decisions(tmp_path / "reference")
    assert list(got) == [row["id"] for row in rows]
    assert got["empty"]["error"] == "the post has no parts (no text, images or video)"
    for post_id, decision in want.items():
        _same(got[post_id], decision)
    facts = _facts(killed_ledger)
    assert max(facts.values()) == 1 and facts == _facts(reference_ledger)
    kinds = Counter(fact[0] for fact in facts)
    assert kinds["decision"] == len(rows) - 1 and kinds["strike"] > 10 and kinds["item"] > 10, kinds
    assert _states(killed_ledger) == _states(reference_ledger)


def test_three_moderate_processes_at_once_record_each_fact_once(post_members, ledgers, tmp_path):
    """Two processes share one output folder (each decides the shards the other has not claimed:
    about half the posts), a third decides all of them into another folder: all three write the
    same ledger at the same time."""
    rows = _posts(tmp_path, 60)
    source = write_jsonl(tmp_path / "posts.jsonl", rows)
    argv = [sys.executable, "-m", "modelkit.cli", "moderate", "--input", str(source), "--shard-size", "4",
            "--format", "jsonl", "--page-limit", "0", "--sample-pass", "0.1", "--sample-remove", "0.1",
            *(f"--{name}={path}" for name, path in post_members.items())]
    shared, reference = ledgers("shared"), ledgers("reference")
    assert main([*argv[3:], "--output", str(tmp_path / "reference"), "--ledger", reference]) == 0
    runs = [subprocess.Popen([*argv, "--output", str(tmp_path / folder), "--ledger", shared], stderr=subprocess.PIPE,
                             text=True) for folder in ("halves", "halves", "whole")]
    for run in runs:
        _, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr[-2000:]
    for folder in ("halves", "whole"):
        assert list(_decisions(tmp_path / folder)) == [row["id"] for row in rows]
    facts = _facts(shared)
    assert max(facts.values()) == 1 and facts == _facts(reference)
    assert _states(shared) == _states(reference)
