#!/usr/bin/env python
"""Screenshot a self-contained HTML report in headless Chromium, with no network access.

Usage: python scripts/screenshot_report.py REPORT.html OUT.png [--width N] [--height N]
"""

from __future__ import annotations

import argparse
import sys

from modelkit.evaluation.screenshot import screenshot_html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", help="the HTML report to render")
    parser.add_argument("output", help="where to write the PNG")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in pixels")
    parser.add_argument("--height", type=int, default=None,
                        help="pixels from the top to capture (default: the whole page)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per Chromium run")
    args = parser.parse_args(argv)
    try:
        path = screenshot_html(args.report, args.output, width=args.width, height=args.height,
                               timeout=args.timeout)
    except (RuntimeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
