"""``modelkit demo``: the whole path on synthetic data, text (bilingual), images and video, in a few minutes."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from .classifier import load
from .outputs import Prediction
from .data.synthetic import write_jsonl, write_synthetic
from .posts.moderator import Moderator
from .posts.run import moderate_files, read_decisions, write_decisions_page
from .posts.synthetic import make_synthetic_posts
from .evaluation.evaluate import evaluate, summary_text
from .training.api import train

EXAMPLES = ["你这个傻逼，滚", "今天天气不错，去公园走走", "pirated movie torrent, please share", "大师开光转运符，保平安"]


def run_demo(output_dir: Path, quick: bool = False) -> dict[str, Path]:
    """Train, evaluate and predict on synthetic text, pictures and video under ``output_dir``.
    ``quick``: a few rows and epochs of each (seconds, to check an install; the models learn little)."""
    output_dir = Path(output_dir)
    outputs = _text_demo(output_dir / "text", quick)
    outputs.update({f"image_{name}": path for name, path in _image_demo(output_dir / "image", quick).items()})
    outputs.update({f"video_{name}": path for name, path in _video_demo(output_dir / "video", quick).items()})
    members = {"text": outputs["checkpoint"], "image": outputs["image_checkpoint"], "video": outputs["video_checkpoint"]}
    outputs.update({f"posts_{name}": path for name, path in _posts_demo(output_dir / "posts", members, quick).items()})
    outputs.update({f"week_{name}": path for name, path in _week_demo(output_dir / "week", members, quick).items()})
    print("\noutputs:")
    for name, path in outputs.items():
        print(f"  {name:<18} {path}")
    print(f"\nnext: open {outputs['posts_page']} (decisions on posts, with their evidence), {outputs['week_queue']} "
          f"(a reviewer's batch) and {outputs['report']} (and the image and video reports) in a browser;\n"
          f"      modelkit accounts list --ledger {outputs['week_ledger']} --at 2027-01-08 lists the week's accounts;\n"
          f"      notebooks/quickstart.ipynb loads {outputs['checkpoint']}, notebooks/images_and_video.ipynb trains "
          "the image model again and scores a video;\n"
          f"      modelkit predict {outputs['checkpoint']} --input FILE.jsonl --output DIR scores a file of texts")
    return outputs


def text_recipe(splits: dict[str, Path], output_dir: Path) -> dict:
    """The demo's text recipe: a small n-gram model with the evasion defences every text recipe
    has (the normaliser and pinyin channels by default; training-time attacks, each text seen
    as written and rewritten)."""
    return {
        "output_dir": str(output_dir),
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "label_field": "labels"},
        "model": {"name": "ngram", "embed_dim": 32},
        "processor": {"features": {"num_buckets": 1 << 18}, "augment": {"probability": 1.0, "benign_probability": 0.6}},
        "train": {"epochs": 15, "batch_size": 16, "learning_rate": 0.01, "early_stopping_patience": 5, "log_every": 20,
                  "consistency": 1.0},
    }


def _quick(recipe: dict, quick: bool) -> dict:
    if quick:
        recipe["train"].update(epochs=1, early_stopping_patience=0)
    return recipe


def _text_demo(output_dir: Path, quick: bool) -> dict[str, Path]:
    sizes = {"rows_per_category": 6, "clean_rows": 30} if quick else {}
    splits = write_synthetic("text", output_dir / "data", seed=0, **sizes)
    checkpoint = train(_quick(text_recipe(splits, output_dir / "model"), quick))
    report_dir = output_dir / "eval"
    report = evaluate(checkpoint, splits["test"], output_dir=report_dir, slice_by=["language"], bootstrap_resamples=200)
    print(summary_text(report))
    classifier = load(checkpoint)
    predictions_path = output_dir / "predictions.jsonl"
    with open(predictions_path, "w", encoding="utf-8") as handle:
        for text, prediction in zip(EXAMPLES, classifier.predict(EXAMPLES)):
            handle.write(json.dumps({"text": text, **prediction.to_dict()}, ensure_ascii=False) + "\n")
            print(f"{text!r:45} -> {prediction.labels or ['(clean)']}")
    return {"data": splits["train"].parent, "checkpoint": checkpoint, "report": report_dir / "report.html",
            "predictions": predictions_path, "train_log": checkpoint / "train_log.jsonl"}


def image_recipe(splits: dict[str, Path], output_dir: Path) -> dict:
    """The demo's image recipe: a small CNN that learns synthetic picture categories (a motif per
    category) from scratch."""
    return {
        "output_dir": str(output_dir),
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "inputs": {"image": "image"}},
        "model": {"name": "image", "arch": "small_cnn", "dropout": 0.1},
        "processor": {"resize": 48, "crop": 48, "augment": {"hflip": 0.5}},
        "train": {"epochs": 12, "batch_size": 32, "learning_rate": 0.003, "tune_thresholds": True, "log_every": 20},
    }


def _image_demo(output_dir: Path, quick: bool) -> dict[str, Path]:
    splits = write_synthetic("image", output_dir / "data", seed=0, rows_per_category=6 if quick else 60,
                             clean_rows=20 if quick else 200, size=48)
    recipe = _quick(image_recipe(splits, output_dir / "model"), quick)

    def describe(row: dict, prediction: Prediction) -> str:
        return f"{row['image']:<22} true {row['labels'] or ['(clean)']!s:<28} -> {prediction.labels or ['(clean)']}"

    return _train_report_predict(recipe, splits["test"], output_dir, "image", describe)


def _video_demo(output_dir: Path, quick: bool) -> dict[str, Path]:
    """A small CNN scores sampled frames; trained on video labels and segments, it says where a
    category's motif shows up (segments with start and end times)."""
    counts = {"train": 6, "dev": 3, "test": 3} if quick else {"train": 48, "dev": 12, "test": 12}
    splits = write_synthetic("video", output_dir / "data", **counts, duration_s=(5.0, 8.0),
                             min_signal_s=2.0, max_signal_s=3.5, fps=8, size=(96, 72), seed=0)
    recipe = {
        "output_dir": str(output_dir / "model"),
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "inputs": {"video": "video"}},
        "categories": ["pornography", "soft_pornography", "vulgar"],
        "model": {"name": "video", "frames": {"name": "image", "arch": "small_cnn", "dropout": 0.1}},
        "processor": {"frame": {"resize": [36, 48], "crop": None}, "sampler": {"fps": 4, "size": 36},
                      "segments": {"exit_ratio": 0.5, "merge_gap_s": 0.6, "min_frames": 2}},
        "train": {"epochs": 8, "batch_size": 8, "learning_rate": 0.003, "tune_thresholds": True, "log_every": 20},
    }

    def spans(segments: list[dict]) -> str:
        return ", ".join(f"{s['category']} {s['start_s']:.1f}-{s['end_s']:.1f} s" for s in segments) or "clean"

    def describe(row: dict, prediction: Prediction) -> str:
        return f"{row['video']:<20} true [{spans(row['segments'])}] -> [{spans(prediction.segments or [])}]"

    return _train_report_predict(_quick(recipe, quick), splits["test"], output_dir, "video", describe)


# The categories the demo's video model knows; its text and picture models know them too.
POST_CATEGORIES = ["pornography", "soft_pornography", "vulgar"]


def _posts_demo(output_dir: Path, members: dict[str, Path], quick: bool) -> dict[str, Path]:
    """Synthetic posts (a title, a body, pictures, sometimes a video; a violation planted in one
    part) decided by the three models with max fusion: a folder of decisions and their page."""
    rows = make_synthetic_posts(output_dir / "data", 24 if quick else 80, POST_CATEGORIES, video_fraction=0.3,
                                seed=0)
    manifest = write_jsonl(output_dir / "data" / "posts.jsonl", rows)
    moderator = Moderator({name: load(path) for name, path in members.items()}, "max", POST_CATEGORIES)
    decisions = output_dir / "decisions"
    print(moderate_files(moderator, manifest, decisions, output_format="jsonl", overwrite=True))
    page = write_decisions_page(decisions, manifest)
    decided = list(read_decisions(decisions))
    for row, decision in list(zip(rows, decided))[:6]:
        planted = row.get("planted")
        truth = (f"{planted['category']} in {planted['part']}" if planted else
                 f"{row['labels'][0]} split over parts" if row["labels"] else "(clean)")
        where = ", ".join(f"{e['part']}" for e in decision["evidence"][:2])
        print(f"{row['id']:<8} true {truth:<34} -> {decision['action']:<6} {decision['categories']} {where}")
    found = [row["planted"]["category"] in d["categories"] for row, d in zip(rows, decided) if "planted" in row]
    passed = [d["action"] == "pass" for row, d in zip(rows, decided) if not row["labels"]]
    actions = Counter(d["action"] for d in decided)
    print(f"{len(decided)} posts: {', '.join(f'{n} {a}' for a, n in sorted(actions.items()))}; the planted category "
          f"flagged in {sum(found)} of {len(found)} violating posts, {sum(passed)} of {len(passed)} clean posts passed")
    return {"decisions": decisions, "page": page}


def _week_demo(output_dir: Path, members: dict[str, Path], quick: bool) -> dict[str, Path]:
    """A simulated week on the posts' moderator with an account ledger: offenders' penalties
    escalate, reporters' reliability is learned from a scripted reviewer's answers."""
    from .accounts import Ledger
    from .accounts.simulate import simulate_week

    output_dir.mkdir(parents=True, exist_ok=True)
    database = output_dir / "ledger.db"
    for stale in output_dir.glob("ledger.db*"):  # a rerun of the demo starts the week afresh
        stale.unlink()
    moderator = Moderator({name: load(path) for name, path in members.items()}, "max", POST_CATEGORIES)
    days = 2 if quick else 7
    with Ledger(f"sqlite:///{database}") as ledger:
        week = simulate_week(moderator, ledger, output_dir, days=days, posts_per_day=12 if quick else 40)
    print(f"\nA simulated week ({days} days; offenders acct-0..acct-3 post most violations):")
    for day in week.days:
        precision = "-" if day.review_precision is None else f"{day.review_precision:.2f}"
        print(f"  day {day.day}: {day.posts} posts ({', '.join(f'{n} {a}' for a, n in day.actions.items())}), "
              f"{day.reports} reports, {day.answered} items answered (review precision {precision})")
    for step, accounts in week.reached.items():
        print(f"  reached {step:<8} {len(accounts):>2} accounts: {', '.join(accounts) or '-'}")
    learned = ", ".join(f"{r} {v['reliability']:.2f}" for r, v in sorted(week.reliability.items()))
    print(f"  reporters' reliability learned from the answers: {learned}")
    return {"ledger": database, "queue": output_dir / f"day-{days - 1}" / "queue.html",
            "labelled": output_dir / "labelled"}


def _train_report_predict(recipe: dict, test: Path, output_dir: Path, field: str,
                          describe: Callable[[dict, Prediction], str]) -> dict[str, Path]:
    """Train ``recipe``, report on ``test`` and predict its first rows (files named in ``field``)."""
    checkpoint = train(recipe)
    report_dir = output_dir / "eval"
    report = evaluate(checkpoint, test, output_dir=report_dir, bootstrap_resamples=200)
    print(summary_text(report))
    rows = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines()[:6]]
    paths = [str(test.parent / row[field]) for row in rows]
    predictions_path = output_dir / "predictions.jsonl"
    with open(predictions_path, "w", encoding="utf-8") as handle:
        for row, path, prediction in zip(rows, paths, load(checkpoint).predict(paths)):
            handle.write(json.dumps({field: path, **prediction.to_dict()}, ensure_ascii=False) + "\n")
            print(describe(row, prediction))
    return {"checkpoint": checkpoint, "report": report_dir / "report.html", "predictions": predictions_path}
