#!/usr/bin/env python
"""Image data for the recipes in configs/image/ (no moderation image set installs offline).

    # synthetic categories, one learnable visual motif each (configs/image/synthetic.yaml)
    python scripts/make_image_data.py synthetic runs/data/synthetic_images
    # ChineseHarm-Bench's texts drawn into pictures (configs/image/chineseharm_ocr.yaml)
    python scripts/make_image_data.py rendered ../shared/data/chineseharm_bench/dev.jsonl runs/data/chineseharm_ocr

Both are deterministic for a seed; rendering skips pictures that already exist.
"""

from __future__ import annotations

import argparse
import time

from modelkit.image.rendered import write_rendered_manifest
from modelkit.image.synthetic import write_synthetic_image_splits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("synthetic", help="train/dev/test manifests of synthetic category pictures")
    p.add_argument("output")
    p.add_argument("--rows-per-category", type=int, default=250)
    p.add_argument("--clean-rows", type=int, default=800)
    p.add_argument("--size", type=int, default=64, help="picture side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p = commands.add_parser("rendered", help="a text data set (jsonl with a 'text' field) drawn into pictures")
    p.add_argument("source", help="jsonl file with a text field")
    p.add_argument("output")
    p.add_argument("--limit", type=int, help="only the first N rows")
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    if args.command == "synthetic":
        paths = write_synthetic_image_splits(args.output, seed=args.seed, rows_per_category=args.rows_per_category,
                                             clean_rows=args.clean_rows, size=args.size)
        written = ", ".join(str(path) for path in paths.values())
    else:
        written = str(write_rendered_manifest(args.source, args.output, limit=args.limit, seed=args.seed))
    print(f"{written} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
