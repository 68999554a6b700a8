"""The account ledger (modelkit.accounts) on SQLite and, where a server runs, PostgreSQL: facts
recorded once however often they are written (replays, two processes at once), schema versions,
reports and reliability, answers all or nothing, labelled manifests, the review queue's order."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys

import numpy as np
import pytest
import sqlalchemy as sa

from modelkit.accounts import (Ledger, LedgerError, account_state, appeal, export_queue, import_answers,
                               ingest_reports, labelled_rows, record_decisions, reporter_reliability, review_queue)
from modelkit.accounts.escalation import DAY
from modelkit.accounts.record import Sampling, drawn
from modelkit.errors import DataError

from conftest import one_line_error

CATEGORIES = ["pornography", "violence", "superstition"]


def decision(post_id, account, scores, action=None):
    """A decision row as the moderator writes it (actions by a 0.5 threshold: superstition
    reviews, the others remove)."""
    actions = {c: ("review" if c == "superstition" else "remove") for c, s in scores.items() if s >= 0.5}
    if action is None:
        action = "remove" if "remove" in actions.values() else "review" if actions else "pass"
    return ({"id": post_id, "account_id": account, "action": action, "categories": list(actions),
             "scores": {c: scores.get(c, 0.01) for c in CATEGORIES},
             "evidence": [{"part": "text.body", "category": c, "score": s, "start": 0, "end": 4}
                          for c, s in scores.items() if s >= 0.5], "unread": []},
            {"id": post_id, "account_id": account, "text": {"body": f"text of {post_id}"},
             "images": [f"/media/{post_id}.png"], "created_at": 0.0},
            actions)


def record(ledger, rows, sampling=Sampling(0.0, 0.0), at=0.0):
    decisions, posts, actions = zip(*rows)
    posts = {p["id"]: {**p, "created_at": at} for p in posts}
    return record_decisions(ledger, list(decisions), posts, list(actions), sampling)


def week_of_decisions(n=60, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        category = CATEGORIES[k % 3]
        rows.append(decision(f"p{k}", f"a{k % 7}", {category: float(rng.uniform(0.2, 0.99))}))
    return rows


def test_replays_change_nothing(ledger_url):
    ledger = Ledger(ledger_url)
    rows = week_of_decisions()
    first = record(ledger, rows, Sampling(0.3, 0.3))
    counts = ledger.counts()
    assert first == sum(counts.values()) and counts["strike"] > 0 and counts["item"] > 0
    assert record(ledger, rows, Sampling(0.3, 0.3)) == 0
    assert record(ledger, rows[::-1], Sampling(0.3, 0.3), at=5 * DAY) == 0  # a later replay: same facts
    assert ledger.counts() == counts
    # The samples are drawn from the post id: the same on every replay and every process.
    assert [drawn(f"p{k}", "pass", 0.3) for k in range(50)] == [drawn(f"p{k}", "pass", 0.3) for k in range(50)]
    assert 5 < sum(drawn(f"p{k}", "pass", 0.3) for k in range(100)) < 50


def _write_half(url, rows, offset):
    ledger = Ledger(url)
    for start in range(offset, len(rows), 10):  # chunk by chunk, as moderate does
        record(ledger, rows[start:start + 10])


def test_two_processes_at_once_never_double_a_strike(ledger_url):
    rows = week_of_decisions(400)
    Ledger(ledger_url).close()  # the tables exist before the race (creating them is a race of its own)
    context = multiprocessing.get_context("spawn")
    # Both write every post, in chunks that overlap the other's, at the same time.
    workers = [context.Process(target=_write_half, args=(ledger_url, rows, offset)) for offset in (0, 5)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    ledger = Ledger(ledger_url)
    strikes = [(e.post_id, e.category) for e in ledger.events(kinds=["strike"])]
    assert len(strikes) == len(set(strikes)) == sum(1 for _, _, actions in rows if "remove" in actions.values())
    single = Ledger(ledger_url.replace("ledger.db", "single.db")) if ledger_url.startswith("sqlite") else None
    if single is not None:
        record(single, rows)
        assert single.counts() == ledger.counts()


def test_newer_schema_is_refused_and_unreachable_url_named(ledger_url, tmp_path):
    Ledger(ledger_url).close()
    engine = sa.create_engine(ledger_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE modelkit_meta SET value = '2' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(LedgerError, match="newer modelkit \\(schema version 2; this one reads 1\\)"):
        Ledger(ledger_url)
    with pytest.raises(LedgerError, match="cannot open it"):
        Ledger(f"sqlite:///{tmp_path}/no/such/folder/ledger.db")
    with pytest.raises(LedgerError, match=r"ledger postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/x: cannot open it"):
        Ledger("postgresql+psycopg://u:secret@127.0.0.1:1/x")
    for url in ("", "sqlite://", "sqlite:///:memory:"):
        with pytest.raises(LedgerError, match="no URL|in-memory"):
            Ledger(url)
    with pytest.raises(LedgerError, match="no such file"):  # a reading command on a mistyped path
        Ledger(tmp_path / "mistyped.db", create=False)
    assert not (tmp_path / "mistyped.db").exists()
    foreign = sa.create_engine(f"sqlite:///{tmp_path / 'foreign.db'}")
    with foreign.begin() as connection:
        connection.execute(sa.text("CREATE TABLE modelkit_events (id INTEGER)"))
    with pytest.raises(LedgerError, match="not a modelkit ledger's"):
        Ledger(tmp_path / "foreign.db")


def test_moderate_refuses_an_unreachable_ledger_before_scoring(tmp_path, tiny_checkpoint):
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": "p", "text": "hello"}\n')
    for url in ("postgresql+psycopg://u:secret@127.0.0.1:1/x", f"sqlite:///{tmp_path}/missing/l.db"):
        done = subprocess.run([sys.executable, "-m", "modelkit.cli", "moderate", "--text", str(tiny_checkpoint),
                               "--input", str(posts), "--output", str(tmp_path / "out"), "--ledger", url],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2
        line = one_line_error(done.stderr, "moderate")
        assert "cannot open it" in line and "secret" not in line, line
        assert not (tmp_path / "out").exists()


def test_overturn_recomputes_the_account(ledger_url, tmp_path):
    ledger = Ledger(ledger_url)
    for day, post in enumerate(["x1", "x2", "x3"]):
        record(ledger, [decision(post, "acct", {"pornography": 0.0, "superstition": 0.0, "violence": 0.0} | {
            "pornography": 0.9} if post != "x1" else {"superstition": 0.9}, action="remove")], at=day * DAY)
    assert account_state(ledger, "acct", 3 * DAY).penalty == "ban"
    item = appeal(ledger, "x2", "pornography", "acct", at=4 * DAY)
    with pytest.raises(DataError, match="no strike in 'violence'"):
        appeal(ledger, "x2", "violence")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"item_id": item, "answer": "overturn", "reviewer": "r", "time": 4 * DAY}) + "\n")
    assert import_answers(ledger, answers).overturns == 1
    after = account_state(ledger, "acct", 5 * DAY)
    # x2's strike is gone from the history, and the ban x3 got because of it: x3 is the second strike now.
    assert [(p.post_id, p.step) for p in after.history] == [("x3", "ban")]  # pornography is severity 3


def test_answers_are_all_or_nothing_and_name_the_line(ledger_url, tmp_path):
    ledger = Ledger(ledger_url)
    record(ledger, [decision("r1", "a", {"superstition": 0.6}), decision("r2", "a", {"superstition": 0.7})])
    items = {i.post_id: i.item_id for i in review_queue(ledger)}
    good = {"item_id": items["r1"], "answer": "confirm", "reviewer": "ann"}
    cases = [
        ("{not json", "line 2: not JSON"),
        (json.dumps({**good, "item_id": items["r2"], "answer": "yes"}), "line 2: field 'answer': expected confirm"),
        (json.dumps({**good, "item_id": "feedbeef"}), "line 2: field 'item_id': 'feedbeef' is not an item"),
        (json.dumps({**good, "item_id": items["r2"], "reviewer": ""}), "line 2: field 'reviewer'"),
        (json.dumps(good), "line 2: field 'item_id': '%s' is answered on line 1 too" % items["r1"]),
        (json.dumps({**good, "item_id": items["r2"], "category": "nonsense"}), "line 2: field 'category': 'nonsense'"),
        (json.dumps({**good, "item_id": items["r2"], "time": "yesterday"}), "line 2: field 'time': expected a time"),
        ("[1, 2]", "line 2: expected a JSON object"),
    ]
    before = ledger.counts()
    path = tmp_path / "answers.jsonl"
    for bad, message in cases:
        path.write_text(json.dumps(good) + "\n" + bad + "\n")
        with pytest.raises(DataError) as error:
            import_answers(ledger, path)
        assert str(error.value).startswith(f"{path}: ") and message in str(error.value), str(error.value)
        assert ledger.counts() == before  # the good first line was not applied either
    path.write_text(json.dumps(good) + "\n")
    assert import_answers(ledger, path).answers == 1
    again = import_answers(ledger, path)
    assert (again.answers, again.already) == (0, 1)
    assert ledger.counts()["strike"] == before["strike"] + 1


def test_cli_review_import_error_is_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    Ledger(url).close()
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"item_id": "x", "answer": "confirm", "reviewer": "r"}\n{oops\n')
    done = subprocess.run([sys.executable, "-m", "modelkit.cli", "review", "import", str(answers), "--ledger", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert one_line_error(done.stderr, "review") == f"modelkit review: error: {answers}: line 2: not JSON " \
                                                    "(Expecting property name enclosed in double quotes at column 2)"


def test_reports_reliability_and_floods(ledger_url, tmp_path):
    ledger = Ledger(ledger_url)
    # 40 clean posts scored 0.1 in superstition, 40 violations scored 0.1 too (the models missed them).
    rows = [decision(f"c{k}", f"a{k}", {"superstition": 0.1}) for k in range(40)]
    rows += [decision(f"v{k}", f"b{k}", {"superstition": 0.1}) for k in range(40)]
    record(ledger, rows)
    reports = [{"post_id": f"v{k}", "reporter": "good", "category": "superstition", "time": 10} for k in range(20)]
    reports += [{"post_id": f"c{k}", "reporter": "bad", "category": "superstition", "time": 10} for k in range(20)]
    assert ingest_reports(ledger, reports) == (40, 40)
    assert ingest_reports(ledger, reports) == (0, 40)  # a report is a fact once
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"item_id": item.item_id, "reviewer": "r",
                                           "answer": "confirm" if item.post_id.startswith("v") else "overturn"}) + "\n"
                               for item in review_queue(ledger)))
    import_answers(ledger, answers)
    reliability = reporter_reliability(ledger)
    assert reliability["good"]["reliability"] > 0.9 > 0.1 > reliability["bad"]["reliability"]
    # New reports on posts of equal scores: the reliable reporter's rank above the unreliable one's.
    ingest_reports(ledger, [{"post_id": f"v{k}", "reporter": "good", "category": "superstition", "time": 20}
                            for k in range(20, 30)] + [{"post_id": f"c{k}", "reporter": "bad",
                                                        "category": "superstition", "time": 20} for k in range(20, 30)])
    queue = review_queue(ledger)
    ranks = {item.post_id: rank for rank, item in enumerate(queue)}
    assert max(ranks[f"v{k}"] for k in range(20, 30)) < min(ranks[f"c{k}"] for k in range(20, 30))
    # A flood: a stranger files 400 reports in a day; each counts 20/400 of a report, a single
    # stranger's report on another post counts whole, and no strike comes of reports alone.
    record(ledger, [decision(f"f{k}", f"c{k}", {"superstition": 0.1}) for k in range(401)])
    strikes = ledger.counts()["strike"]
    ingest_reports(ledger, [{"post_id": f"f{k}", "reporter": "flood", "category": "superstition",
                             "time": 100 + k} for k in range(400)]
                   + [{"post_id": "f400", "reporter": "newcomer", "category": "superstition", "time": 100}])
    queue = {item.post_id: item for item in review_queue(ledger)}
    stranger = 1 / 3  # the Beta(1, 2) prior's mean
    for first_or_last in ("f0", "f399"):
        assert queue[first_or_last].priority == pytest.approx(1 - 0.9 * (1 - stranger * 20 / 400), abs=1e-5)
    assert queue["f400"].priority == pytest.approx(1 - 0.9 * (1 - stranger), abs=1e-5)
    assert ledger.counts()["strike"] == strikes


def test_report_rows_are_checked_all_or_nothing(ledger_url, tmp_path):
    ledger = Ledger(ledger_url)
    record(ledger, [decision("p", "a", {"superstition": 0.1})])
    path = tmp_path / "reports.jsonl"
    for bad, message in [('{"post_id": "nope", "reporter": "r", "category": "violence"}', "line 2: field 'post_id': "
                          "'nope' is not in the ledger"),
                         ('{"post_id": "p", "reporter": "r", "category": "spam"}', "line 2: field 'category': 'spam'"),
                         ('{"post_id": "p", "reporter": null, "category": "violence"}', "line 2: field 'reporter'"),
                         ('{"post_id": "p", "reporter": "r", "category": "violence", "time": "soon"}', "field 'time'")]:
        path.write_text('{"post_id": "p", "reporter": "ok", "category": "violence"}\n' + bad + "\n")
        with pytest.raises(DataError) as error:
            ingest_reports(ledger, path)
        assert str(error.value).startswith(f"{path}: ") and message in str(error.value), str(error.value)
        assert ledger.counts()["report"] == 0


def test_labelled_manifests_and_export(ledger_url, tmp_path):
    ledger = Ledger(ledger_url)
    record(ledger, [decision("m1", "a", {"superstition": 0.7}), decision("m2", "a", {"superstition": 0.6})])
    jsonl, page, count = export_queue(ledger, tmp_path / "queue.jsonl")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert count == 2 and [r["post_id"] for r in rows] == ["m1", "m2"] and page.exists()
    assert {"item_id", "post_id", "account_id", "category", "score", "priority", "evidence"} <= set(rows[0])
    assert rows[0]["evidence"][0]["start"] == 0 and rows[0]["priority"] == pytest.approx(0.7)  # severity 1
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"item_id": rows[0]["item_id"], "answer": "confirm", "reviewer": "r"}) + "\n"
                       + json.dumps({"item_id": rows[1]["item_id"], "answer": "overturn", "reviewer": "r"}) + "\n")
    summary = import_answers(ledger, answers)
    text = [json.loads(line) for line in summary.manifests["text"].read_text().splitlines()]
    assert summary.manifests["text"] == tmp_path / "labelled" / "text.jsonl"
    # m1: confirmed on the part its evidence points at (the body); m2: overturned on every part.
    assert [(r["post_id"], r["part"], r["label"]) for r in text] == [("m1", "text.body", 1), ("m2", "text.body", 0)]
    images = [json.loads(line) for line in summary.manifests["image"].read_text().splitlines()]
    assert [(r["post_id"], r["image"], r["label"], r["category"]) for r in images] == [
        ("m2", "/media/m2.png", 0, "superstition")]
    assert labelled_rows(ledger)["text"] == text
    assert review_queue(ledger) == []


def test_accounts_and_review_commands(tmp_path, capsys):
    from modelkit.cli import main

    url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger(url)
    # a1: two removals in a severity 1 category (a policy that removes superstition at 0.9)
    removed = [decision(post, "a1", {"superstition": 0.9}, action="remove")[:2] + ({"superstition": "remove"},)
               for post in ("s1", "s2")]
    record(ledger, [*removed, decision("v1", "a2", {"violence": 0.8}), decision("q1", "a3", {"superstition": 0.6})],
           at=DAY)
    capsys.readouterr()
    assert main(["accounts", "list", "--ledger", url, "--json", "--at", "1970-01-03T00:00:00Z"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"account_id": "a1", "strikes": 2, "penalty": "limited", "penalty_until": 8 * DAY},
                    {"account_id": "a2", "strikes": 1, "penalty": "ban", "penalty_until": None},
                    {"account_id": "a3", "strikes": 0, "penalty": None, "penalty_until": None}]
    assert main(["accounts", "show", "a1", "--ledger", url, "--at", str(9 * DAY)]) == 0
    shown = capsys.readouterr().out
    assert "2 strikes in the window, penalty none" in shown and "penalty end" in shown and "penalty start" in shown
    assert main(["review", "export", "--ledger", url, "--output", str(tmp_path / "q.jsonl"), "--limit", "1"]) == 0
    assert "review queue: 1 items" in capsys.readouterr().out
    [item] = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert item["post_id"] == "q1" and (tmp_path / "q.html").exists()
    (tmp_path / "a.jsonl").write_text(json.dumps({"item_id": item["item_id"], "answer": "confirm",
                                                  "reviewer": "r", "time": 2 * DAY}) + "\n")
    assert main(["review", "import", str(tmp_path / "a.jsonl"), "--ledger", url]) == 0
    out = capsys.readouterr().out
    assert "1 answers applied (1 strikes, 0 overturns)" in out and "labelled text:" in out
    assert account_state(ledger, "a3", 3 * DAY).history[0].step == "warning"


def test_accounts_commands_escape_control_characters(tmp_path, capsys):
    """Ids come from users' files: an ESC sequence in one must not reach the reviewer's terminal."""
    from modelkit.cli import main

    url = f"sqlite:///{tmp_path / 'l.db'}"
    hostile = "a\x1b[2J\tb"
    record(Ledger(url), [decision("p\x1b]0;x\x07", hostile, {"violence": 0.8})], at=DAY)
    capsys.readouterr()
    assert main(["accounts", "list", "--ledger", url, "--at", str(2 * DAY)]) == 0
    listed = capsys.readouterr().out
    assert "\x1b" not in listed and listed.startswith("a\\x1b[2J\\tb\tstrikes 1")
    assert main(["accounts", "show", hostile, "--ledger", url, "--at", str(2 * DAY)]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown and "post_id=p\\x1b]0;x\\x07" in shown


def test_answers_apply_in_order_and_the_last_word_decides(ledger_url, tmp_path):
    ledger = Ledger(ledger_url)
    record(ledger, [decision("c1", "a", {"superstition": 0.6, "pornography": 0.1})])
    [item] = review_queue(ledger)
    # Line 1: "not superstition, it is pornography"; line 2 (an appeal of that strike, overturned).
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"item_id": item.item_id, "answer": "confirm", "category": "pornography",
                                   "reviewer": "r", "time": 10}) + "\n")
    assert import_answers(ledger, answers).strikes == 1
    appealed = appeal(ledger, "c1", "pornography", "a", at=20)
    answers.write_text(json.dumps({"item_id": appealed, "answer": "overturn", "reviewer": "s", "time": 30}) + "\n")
    assert import_answers(ledger, answers).overturns == 1
    assert account_state(ledger, "a", at=40).history == []
    rows = labelled_rows(ledger)["text"]
    assert sorted((r["category"], r["label"]) for r in rows) == [("pornography", 0), ("superstition", 0)]
    assert len({r["id"] for r in rows}) == len(rows)


def test_an_appeal_confirmed_in_another_category_moves_the_strike(ledger_url, tmp_path):
    ledger = Ledger(ledger_url)
    record(ledger, [decision("v1", "a", {"violence": 0.9})])
    item = appeal(ledger, "v1", "violence", "a", at=5)
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"item_id": item, "answer": "confirm", "category": "superstition",
                                   "reviewer": "r", "time": 10}) + "\n")
    summary = import_answers(ledger, answers)
    assert (summary.strikes, summary.overturns) == (1, 1)
    state = account_state(ledger, "a", at=20)
    assert [(s.post_id, s.category) for s in state.strikes] == [("v1", "superstition")]
    assert state.penalty is None  # superstition is severity 1: a warning, not violence's ban


def test_a_second_decision_of_a_post_keeps_the_first(ledger_url, caplog):
    ledger = Ledger(ledger_url)
    record(ledger, [decision("p", "a", {"superstition": 0.6})])
    counts = ledger.counts()
    with caplog.at_level("WARNING"):
        record(ledger, [decision("p", "a", {"violence": 0.9})])  # the same post under a stricter policy
    assert ledger.counts() == counts and "decided before with another outcome" in caplog.text


def test_times_out_of_range_and_bad_ids_are_refused(ledger_url, tmp_path):
    ledger = Ledger(ledger_url)
    record(ledger, [decision("p", "a", {"superstition": 0.1})])
    path = tmp_path / "reports.jsonl"
    for line, message in [('{"post_id": "p", "reporter": "r", "category": "violence", "time": 1798761600000}',
                           "field 'time': 1798761600000 is not between 1970 and 9999"),
                          ('{"post_id": "p", "reporter": "\\ud800", "category": "violence"}', "lone surrogate"),
                          ('{"post_id": "p", "reporter": 1' + "0" * 5000 + ', "category": "violence"}',
                           "not JSON this reader takes"),
                          ("[" * 100_000, "not JSON")]:
        path.write_text(line + "\n")
        with pytest.raises(DataError, match=message):
            ingest_reports(ledger, path)
    with pytest.raises(DataError, match="queue's jsonl file"):
        export_queue(ledger, tmp_path / "queue.html")


def test_reports_after_the_answer_do_not_make_a_reporter_reliable(ledger_url, tmp_path):
    ledger = Ledger(ledger_url)
    record(ledger, [decision(f"v{k}", "a", {"superstition": 0.6}) for k in range(5)])
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"item_id": item.item_id, "answer": "confirm", "reviewer": "r",
                                           "time": 100}) + "\n" for item in review_queue(ledger)))
    import_answers(ledger, answers)
    ingest_reports(ledger, [{"post_id": f"v{k}", "reporter": "late", "category": "superstition", "time": 200}
                            for k in range(5)])
    assert "late" not in reporter_reliability(ledger)
