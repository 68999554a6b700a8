#!/usr/bin/env python
"""Synthetic video data for the video modality: moving backgrounds with a planted signal whose start
and end times are in the manifests ({"id", "video", "labels", "segments"}).

    # category motifs over procedural and real backgrounds
    python scripts/make_video_data.py synthetic runs/data/synthetic_videos \\
        --backgrounds ../shared/data/video/bigbuckbunny.mp4 ../shared/data/video/vtest.avi
    # burnt-in Chinese captions (synthetic sentences), to be read by OCR
    python scripts/make_video_data.py ocr runs/data/video_ocr --backgrounds ../shared/data/video/*.mp4
    # or ChineseHarm-Bench's short texts (label_en as the category; non_violation rows are harmless
    # captions); the rows no video shows go to unused_texts.jsonl, for the text model
    python scripts/make_video_data.py ocr runs/data/video_chineseharm_ocr \\
        --source ../shared/data/chineseharm_bench/dev.jsonl --backgrounds ../shared/data/video/*

Both are deterministic for a seed. Needs PyAV (the video extra); ocr needs a Noto CJK font.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from modelkit.text.synthetic import make_synthetic
from modelkit.video.synthetic import write_synthetic_video_splits, write_text_overlay_splits
from modelkit.data.synthetic import write_jsonl


def size(value: str) -> tuple[int, int]:
    width, _, height = value.partition("x")
    return int(width), int(height)


def synthetic_texts(seed: int) -> tuple[list[tuple[str, str]], list[str]]:
    """Chinese sentences of the synthetic text set: single-label ones as positives, clean ones as negatives."""
    rows = [row for row in make_synthetic(seed=seed) if row["language"] == "zh" and len(row["labels"]) < 2]
    positives = [(row["text"], row["labels"][0]) for row in rows if row["labels"]]
    return positives, [row["text"] for row in rows if not row["labels"]]


# ChineseHarm-Bench's label_en values that are not taxonomy ids (the others are).
CHINESEHARM_CATEGORIES = {"pornography_vulgar": "pornography", "abuse_flaming": "abuse"}


def source_texts(path: Path, label_field: str, clean_label: str, max_chars: int, counts: tuple[int, int],
                 seed: int, unused: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """``counts`` = (violating, clean) rows of a jsonl with ``text`` and ``label_field``, up to
    ``max_chars`` long (longer ones do not fit a frame), drawn at random; every other row is written
    to ``unused`` so that a text model can be trained on texts no video shows."""
    with open(path, encoding="utf-8") as handle:  # not splitlines(): texts may hold U+2028 and the like
        rows = [json.loads(line) for line in handle if line.strip()]
    order = np.random.default_rng(seed).permutation(len(rows))
    fits = [i for i in order if len(rows[i]["text"]) <= max_chars]
    violating = [i for i in fits if rows[i][label_field] != clean_label][: counts[0]]
    clean = [i for i in fits if rows[i][label_field] == clean_label][: counts[1]]
    used = set(violating) | set(clean)
    unused.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(unused, [row for i, row in enumerate(rows) if i not in used])
    positives = [(rows[i]["text"], CHINESEHARM_CATEGORIES.get(rows[i][label_field], rows[i][label_field]))
                 for i in violating]
    return positives, [rows[i]["text"] for i in clean]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text, counts, default_size in (
        ("synthetic", "train/dev/test manifests of videos showing a category's motif", (240, 60, 60), "160x120"),
        ("ocr", "train/dev/test manifests of videos with burnt-in (Chinese) text", (120, 30, 30), "480x270"),
    ):
        p = commands.add_parser(name, help=help_text)
        p.add_argument("output")
        for split, count in zip(("train", "dev", "test"), counts):
            p.add_argument(f"--{split}", type=int, default=count, help=f"videos in {split} (default {count})")
        p.add_argument("--clean-fraction", type=float, default=0.4)
        p.add_argument("--duration", type=float, nargs=2, default=(6.0, 10.0), metavar=("MIN", "MAX"),
                       help="video length range in seconds")
        p.add_argument("--signal", type=float, nargs=2, default=(2.0, 4.0), metavar=("MIN", "MAX"),
                       help="how long the signal is visible, in seconds")
        p.add_argument("--fps", type=int, default=10)
        p.add_argument("--size", type=size, default=size(default_size), help=f"WIDTHxHEIGHT (default {default_size})")
        p.add_argument("--backgrounds", nargs="*", default=[], help="real clips to use as moving backgrounds")
        p.add_argument("--seed", type=int, default=0)
    commands.choices["synthetic"].add_argument("--categories", nargs="+", help="default: three with distinct motifs")
    p = commands.choices["ocr"]
    p.add_argument("--source", type=Path, help="jsonl with 'text' and a label field (default: synthetic sentences)")
    p.add_argument("--label-field", default="label_en", help="the --source field with the category")
    p.add_argument("--clean-label", default="non_violation", help="the --source label of harmless texts")
    p.add_argument("--max-chars", type=int, default=24, help="--source texts longer than this are left out")
    p.add_argument("--font", type=Path, help="a CJK font (default: find_cjk_font())")
    args = parser.parse_args()

    common = {"train": args.train, "dev": args.dev, "test": args.test, "clean_fraction": args.clean_fraction,
              "duration_s": tuple(args.duration), "min_signal_s": args.signal[0], "max_signal_s": args.signal[1],
              "fps": args.fps, "size": args.size, "backgrounds": args.backgrounds, "seed": args.seed}
    started = time.perf_counter()
    if args.command == "synthetic":
        paths = write_synthetic_video_splits(args.output, categories=args.categories, **common)
    else:
        if args.source:
            videos = args.train + args.dev + args.test
            clean = sum(round(args.clean_fraction * n) for n in (args.train, args.dev, args.test))
            unused = Path(args.output) / "unused_texts.jsonl"
            positives, negatives = source_texts(args.source, args.label_field, args.clean_label, args.max_chars,
                                                (videos - clean, clean), args.seed, unused)
            print(f"{unused}: the source rows no video shows (train text models on these)")
        else:
            positives, negatives = synthetic_texts(args.seed)
        paths = write_text_overlay_splits(args.output, positives=positives, negatives=negatives,
                                          font_path=args.font, **common)
    print(f"{', '.join(str(path) for path in paths.values())} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
