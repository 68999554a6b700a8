"""``modelkit moderate`` SIGKILLed at random moments and rerun each time: every post is decided
exactly once, and the decisions are those of an uninterrupted run.

``make test`` kills it 3 times; ``make soak`` (``MODELKIT_SOAK=1``, also run by CI) 10 times."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from modelkit.cli import main
from modelkit.data.synthetic import write_jsonl
from modelkit.posts import read_decisions
from modelkit.posts.synthetic import make_synthetic_posts

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


def test_moderate_killed_at_random_moments_decides_every_post_once(post_members, tmp_path):
    rows = make_synthetic_posts(tmp_path, 200, images=(1, 2), video_fraction=0.05, seed=41)
    rows.insert(7, {"id": "empty", "text": ""})  # an error row is written exactly once too
    source = write_jsonl(tmp_path / "posts.jsonl", rows)
    argv = ["moderate", "--input", str(source), "--shard-size", "6", "--format", "jsonl", "--page-limit", "0",
            *(f"--{name}={path}" for name, path in post_members.items())]
    assert main([*argv, "--output", str(tmp_path / "reference")]) == 0
    killed = tmp_path / "killed"
    made = _kill_until_done([*argv, "--output", str(killed)], killed, kills=KILLS)
    assert made >= KILLS, f"the run finished after {made} kills; give it more posts"
    assert not list(killed.glob(".part-*"))
    got, want = _decisions(killed), _decisions(tmp_path / "reference")
    assert list(got) == [row["id"] for row in rows]
    assert got["empty"]["error"] == "the post has no parts (no text, images or video)"
    for post_id, decision in want.items():
        _same(got[post_id], decision)
