"""``modelkit`` command line: train, evaluate, predict, demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

from .checkpoint import CheckpointError
from .config import ConfigError
from .data.records import DataError

logger = logging.getLogger("modelkit")


def _cmd_train(args: argparse.Namespace) -> int:
    from .training.trainer import train

    output = train(args.config, overrides=args.set, data_root=args.data_root, resume=args.resume)
    print(f"checkpoint: {output}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import evaluate
    from .evaluation.metrics import format_metrics

    output_dir = Path(args.output_dir or Path(args.checkpoint) / "eval" / Path(args.data).stem)
    metrics = evaluate(
        args.checkpoint, args.data, output=output_dir / "metrics.json", batch_size=args.batch_size,
        progress=True, input_field=args.input_field, label_field=args.label_field,
    )
    print(format_metrics(metrics))
    print(f"metrics: {output_dir / 'metrics.json'}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .classifier import load
    from .data.records import load_table
    from .evaluation.evaluate import data_config_for

    classifier = load(args.checkpoint, device=args.device)
    data = data_config_for(classifier, input_field=args.input_field, id_field=args.id_field)
    table = load_table(args.input)
    if data.input_field not in table.column_names:
        raise DataError(f"{args.input}: no input column {data.input_field!r}; columns: {', '.join(table.column_names)}")
    inputs = table[data.input_field]
    ids = table[data.id_field] if data.id_field and data.id_field in table.column_names else range(len(table))
    # A row without a usable input becomes an error record in the output, never a crash or a gap.
    valid = [i for i, x in enumerate(inputs) if isinstance(x, str)]
    started = time.perf_counter()
    predictions = iter(classifier.predict([inputs[i] for i in valid], batch_size=args.batch_size, progress=True))
    valid_set = set(valid)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        for row, row_id in enumerate(ids):
            if row in valid_set:
                record = {"id": row_id, **next(predictions).to_dict()}
            else:
                record = {"id": row_id, "error": f"field {data.input_field!r} is {type(inputs[row]).__name__}, not text"}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    seconds = time.perf_counter() - started
    print(f"predictions: {args.output} ({len(table)} rows, {len(table) - len(valid)} errors, "
          f"{len(valid) / max(seconds, 1e-9):.0f} items/s)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.output_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="modelkit", description="Trainable content-moderation classifiers.")
    parser.add_argument("--version", action="version", version=f"modelkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train a model from a YAML recipe")
    p.add_argument("config", help="recipe YAML, e.g. configs/text/cold.yaml")
    p.add_argument("--data-root", help="directory that relative data paths in the recipe are taken from")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last")
    p.set_defaults(func=_cmd_train)

    p = commands.add_parser("evaluate", help="metrics of a checkpoint on a labelled file")
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="labelled jsonl/csv/parquet file")
    p.add_argument("--output-dir", help="where metrics.json goes (default CHECKPOINT/eval/DATA_NAME)")
    p.add_argument("--input-field", help="input column (default: as in training)")
    p.add_argument("--label-field", help="label column (default: as in training)")
    p.add_argument("--batch-size", type=int, default=256)
    p.set_defaults(func=_cmd_evaluate)

    p = commands.add_parser("predict", help="score every row of a file")
    p.add_argument("checkpoint")
    p.add_argument("--input", required=True, help="jsonl/csv/parquet file")
    p.add_argument("--output", required=True, help="output .jsonl, one row per input row")
    p.add_argument("--input-field", help="input column (default: as in training)")
    p.add_argument("--id-field", help="id column (default: as in training; row index if absent)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.set_defaults(func=_cmd_predict)

    p = commands.add_parser("demo", help="train, evaluate and predict on a synthetic bilingual data set")
    p.add_argument("--output-dir", default="runs/demo")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (ConfigError, DataError, CheckpointError, FileNotFoundError) as err:
        print(f"modelkit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
