"""``modelkit bootstrap``, the text package's command, registered without importing the package's
models (the ``modelkit.commands`` entry point): ``modelkit --help`` starts without torch."""

from __future__ import annotations

import argparse

from ..plugins import register_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``modelkit bootstrap``'s arguments."""
    parser.add_argument("config", help="bootstrap YAML, e.g. configs/bootstrap/gambling.yaml")
    parser.add_argument("--data-root", help="directory that a relative corpus path is taken from")
    parser.add_argument("--labels", nargs="+", default=[], metavar="FILE",
                        help="answered question files ({\"id\": ..., \"label\": 0|1} per line), oldest first")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")


def run(args: argparse.Namespace) -> int:
    from .bootstrap import bootstrap

    summary = bootstrap(args.config, labels=args.labels, data_root=args.data_root, overrides=args.set)
    print(f"{summary['corpus_rows']} rows: {summary['weak_positives']} weak positives from the rules, "
          f"{summary['seeds']} seeds, {summary['human_labels']} human labels")
    for rule, coverage in summary["rule_coverage"].items():
        print(f"  rule {rule:<24} fires on {coverage:.1%} of rows")
    print(f"checkpoint: {summary['checkpoint']} (flags {summary['flagged']} rows)")
    print(f"label these next: {summary['questions']} (set each \"label\" to 0 or 1, then pass it with --labels)")
    return 0


register_command("bootstrap", "start a category with no labels: rules + seeds -> model -> questions", add_arguments,
                 run)
