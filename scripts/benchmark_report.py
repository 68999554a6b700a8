#!/usr/bin/env python
"""How long an evaluation report takes on COLD dev (6,431 rows), apart from model inference.

Target (issue 3): report.json, report.md and report.html with ``--slice-by topic`` in under
60 s on a 2-core CPU, excluding inference. Without ``--checkpoint`` the COLD recipe is trained
first (about a minute). With ``--screenshot`` the HTML is also rendered in headless Chromium.

    python scripts/benchmark_report.py --data-root ../shared/data [--checkpoint runs/text-cold]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--checkpoint", help="a COLD checkpoint (default: train configs/text/cold.yaml first)")
    parser.add_argument("--output-dir", help="where the report goes (default: a temporary directory)")
    parser.add_argument("--slice-by", nargs="+", default=["topic"])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--screenshot", help="also save a full-page PNG of report.html here")
    args = parser.parse_args()

    import modelkit
    from modelkit.data.records import read_records

    scratch = tempfile.TemporaryDirectory(prefix="modelkit-bench-report-")
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = modelkit.train(REPO / "configs" / "text" / "cold.yaml", data_root=args.data_root,
                                    overrides=[f"output_dir={scratch.name}/model"])
    output_dir = Path(args.output_dir or Path(scratch.name) / "report")
    classifier = modelkit.load(checkpoint, device="cpu")
    dev = Path(args.data_root) / "cold" / "dev.jsonl"
    records = read_records(dev, classifier.data_config(), classifier.taxonomy)

    started = time.perf_counter()
    scores = classifier.predict_proba(records.inputs, batch_size=1024)
    inference = time.perf_counter() - started

    started = time.perf_counter()
    data = modelkit.ScoredData.build(
        records.labels, scores, classifier.categories, ids=records.ids, inputs=records.inputs,
        fields={name: records.table[name] for name in args.slice_by},
    )
    report = modelkit.build_report(data, classifier.threshold_vector, header={"data": str(dev)},
                                   slice_by=args.slice_by, bootstrap_resamples=args.bootstrap)
    built = time.perf_counter() - started
    modelkit.write_report(data, report, output_dir)
    total = time.perf_counter() - started

    print(f"rows {len(records)}, slices by {', '.join(args.slice_by)}, {args.bootstrap} bootstrap resamples")
    print(f"| step | seconds |\n|---|---|\n| inference (not counted) | {inference:.1f} |")
    print(f"| numbers (metrics, intervals, slices) | {built:.1f} |\n| files (plots, json, md, html) | {total - built:.1f} |")
    print(f"| report total | {total:.1f} |")
    print(f"target < {TARGET_SECONDS:.0f} s: {'met' if total < TARGET_SECONDS else 'NOT met'} "
          f"(ratio {total / TARGET_SECONDS:.2f} of the budget)")
    print(f"report: {output_dir / 'report.html'}")
    if args.screenshot:
        from modelkit.evaluation.screenshot import rendered_images, screenshot_html

        loaded, images = rendered_images(output_dir / "report.html")
        print(f"headless Chromium decoded {loaded}/{images} images; screenshot: "
              f"{screenshot_html(output_dir / 'report.html', args.screenshot, width=1400)}")
    return 0 if total < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
