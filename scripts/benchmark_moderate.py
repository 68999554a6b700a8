"""Post moderation's cost beside what it is made of, measured in the same run on the same checkpoint.

1. Text-only posts through ``moderate_files`` (fusion, policy, decision shards) against the
   engine's ``predict_files`` on the same texts: target ratio >= 0.8 (issue 27); and the same
   with evidence for every flagged post.
2. ``ngram`` evidence (exact n-gram contributions -> spans) for texts against scoring the same
   texts alone (``predict_logits``): target ratio <= 2. As in a moderation run, texts are scored,
   then explained (the text's segmentation and syllables, cached when it was scored, are read
   again); each repeat takes texts never seen before. Explaining texts that were never scored
   is reported too.
3. ``moderate --ledger`` (a SQLite account ledger: each chunk's decisions, strikes and review
   items in one transaction) against the same run without a ledger: what the ledger costs.

Trains the demo's n-gram text recipe on synthetic text unless ``--checkpoint`` is given.

    python scripts/benchmark_moderate.py [--posts 20000] [--checkpoint runs/demo/text/model]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import modelkit
from modelkit.data.synthetic import write_jsonl, write_synthetic
from modelkit.demo import text_recipe
from modelkit.explain import explain
from modelkit.accounts import Ledger, LedgerWriter
from modelkit.posts import Moderator

FLAGGED_SHARE = 0.3  # of the posts a platform sees, the share worth explaining is far smaller


def _texts(count: int, seed: int) -> list[dict]:
    from modelkit.text.synthetic import make_synthetic

    rows = make_synthetic(rows_per_category=count // 20, clean_rows=count // 2, seed=seed)
    return [{"id": f"p{i}", "account_id": f"a{i % 1000}", "text": rows[i % len(rows)]["text"]} for i in range(count)]


def _best(seconds: list[float]) -> float:
    return min(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side; the fastest counts")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="benchmark_moderate_")  # removed when the script exits
    work = Path(scratch.name)
    checkpoint = args.checkpoint
    if checkpoint is None:
        splits = write_synthetic("text", work / "data", seed=0)
        checkpoint = modelkit.train(text_recipe(splits, work / "model"))
    classifier = modelkit.load(checkpoint)
    moderators = {"moderate": Moderator({"text": classifier}, evidence=False),
                  "moderate+evidence": Moderator({"text": classifier})}
    rows = _texts(args.posts, seed=1)
    source = write_jsonl(work / "posts.jsonl", rows)

    timings: dict[str, list[float]] = {"predict": [], **{name: [] for name in moderators}, "moderate+ledger": []}
    for repeat in range(args.repeats):
        for name in timings:
            output = work / f"{name}-{repeat}"
            started = time.perf_counter()
            if name == "predict":
                modelkit.predict_files(classifier, source, output, progress=False)
            elif name == "moderate+ledger":
                moderator = moderators["moderate"]
                with Ledger(f"sqlite:///{work / f'ledger-{repeat}.db'}") as ledger:
                    modelkit.moderate_files(moderator, source, output, progress=False,
                                            on_decided=LedgerWriter(ledger, moderator.policy))
            else:
                modelkit.moderate_files(moderators[name], source, output, progress=False)
            timings[name].append(time.perf_counter() - started)
    with Ledger(f"sqlite:///{work / 'ledger-0.db'}") as ledger:
        ledger_events = sum(ledger.counts().values())
    predict, moderate = _best(timings["predict"]), _best(timings["moderate"])
    with_evidence = _best(timings["moderate+evidence"])
    decisions = list(modelkit.read_decisions(work / "moderate-0"))
    flagged = sum(d["action"] != "pass" for d in decisions)

    size = max(1, int(FLAGGED_SHARE * len(rows)))
    scoring, explaining, cold = [], [], []
    for repeat in range(args.repeats):
        texts = [row["text"] for row in _texts(2 * size, seed=100 + repeat)]
        unseen, texts = texts[size:], texts[:size]
        started = time.perf_counter()
        logits = classifier.predict_logits(texts)
        scoring.append(time.perf_counter() - started)
        categories = [[classifier.categories[int(np.argmax(row))]] for row in logits]
        started = time.perf_counter()
        explain(classifier, texts, categories)
        explaining.append(time.perf_counter() - started)
        started = time.perf_counter()
        explain(classifier, unseen, categories[: len(unseen)])
        cold.append(time.perf_counter() - started)
    result = {
        "posts": len(rows), "flagged_posts": flagged,
        "predict_posts_per_s": round(len(rows) / predict, 1), "moderate_posts_per_s": round(len(rows) / moderate, 1),
        "moderate_over_predict_throughput": round(predict / moderate, 3),
        "moderate_with_evidence_posts_per_s": round(len(rows) / with_evidence, 1),
        "moderate_with_evidence_over_predict_throughput": round(predict / with_evidence, 3),
        "explained_texts": size, "scoring_s": round(_best(scoring), 3), "ngram_evidence_s": round(_best(explaining), 3),
        "evidence_over_scoring_cost": round(_best(explaining) / _best(scoring), 3),
        "unscored_evidence_s": round(_best(cold), 3),
        "unscored_evidence_over_scoring_cost": round(_best(cold) / _best(scoring), 3),
        "moderate_with_ledger_posts_per_s": round(len(rows) / _best(timings["moderate+ledger"]), 1),
        "moderate_with_ledger_over_moderate_throughput": round(moderate / _best(timings["moderate+ledger"]), 3),
        "ledger_events": ledger_events,
    }
    print(json.dumps(result, indent=2))
    print(f"text-only posts: moderate at {result['moderate_over_predict_throughput']:.2f}x predict's throughput "
          f"(target >= 0.8; {result['moderate_with_evidence_over_predict_throughput']:.2f}x with evidence for the "
          f"{flagged} flagged posts); ngram evidence costs {result['evidence_over_scoring_cost']:.2f}x scoring "
          f"(target <= 2; {result['unscored_evidence_over_scoring_cost']:.2f}x for texts that were never scored); "
          f"with a SQLite ledger ({ledger_events} events) moderate runs at "
          f"{result['moderate_with_ledger_over_moderate_throughput']:.2f}x its throughput without one")


if __name__ == "__main__":
    main()
