"""``modelkit`` command line: train, evaluate, calibrate, compare, predict, moderate, review, accounts,
export, convert, demo.

Modality packages add their own commands with :func:`register_command`, from a module named by a
``modelkit.commands`` entry point (the text package adds ``bootstrap``). This module imports
neither torch nor a modality, so ``--help`` answers at once; each command imports what it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from .errors import CheckpointError, ConfigError, DataError, EvaluationError, InputError
from .plugins import load_plugins, registered_commands, register_command  # noqa: F401  (register_command: for modalities)

logger = logging.getLogger("modelkit")


def _cmd_train(args: argparse.Namespace) -> int:
    if args.cv:
        from .training.cv import cross_validate, format_cv

        if args.resume:
            raise ConfigError("--resume and --cv cannot be combined")
        summary = cross_validate(args.config, folds=args.cv, overrides=args.set, data_root=args.data_root)
        print(format_cv(summary))
        print(f"cross-validation: {Path(summary['per_fold'][0]['checkpoint']).parent / 'cv_metrics.json'}")
        return 0
    from .training.api import train

    output = train(args.config, overrides=args.set, data_root=args.data_root, resume=args.resume)
    print(f"checkpoint: {output}")
    return 0


def _cmd_distill(args: argparse.Namespace) -> int:
    from .training.cv import format_cv
    from .training.distill import distill

    result = distill(args.teacher, args.config, unlabelled=args.unlabelled, overrides=args.set,
                     data_root=args.data_root, folds=args.cv)
    if isinstance(result, dict):
        print(format_cv(result))
        print(f"cross-validation: {Path(result['per_fold'][0]['checkpoint']).parent / 'cv_metrics.json'}")
    else:
        print(f"checkpoint: {result}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import evaluate, summary_text

    output_dir = Path(args.output_dir or Path(args.checkpoint) / "eval" / Path(args.data).stem)
    started = time.perf_counter()
    report = evaluate(
        args.checkpoint, args.data, output_dir=output_dir, slice_by=args.slice_by, batch_size=args.batch_size,
        progress=True, bootstrap_resamples=args.bootstrap, errors_per_category=args.errors,
        input_field=args.input_field, label_field=args.label_field, num_workers=args.num_workers,
    )
    print(summary_text(report))
    print(f"report: {output_dir / 'report.html'} (+ report.json, report.md, predictions.jsonl) "
          f"in {time.perf_counter() - started:.1f} s")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    if args.ledger is not None:
        return _refit_from_ledger(args)
    if args.data is None:
        raise ConfigError("--data: the labelled dev file is required (or --ledger URL to refit a moderator's "
                          "thresholds on reviewers' answers)")
    from .evaluation.calibrate import calibrate

    record = calibrate(
        args.checkpoint, args.data, objective=args.objective, per_category=args.per_category,
        temperature=args.temperature, output=args.output, batch_size=args.batch_size, progress=True,
        overwrite=args.overwrite, input_field=args.input_field, label_field=args.label_field,
    )
    print(f"objective {record['objective']} on {record['fitted_on']['rows']} rows of {record['fitted_on']['data']}")
    print(f"{'category':<22}{'threshold':>10}{'T':>7}{'prec':>8}{'recall':>8}{'F1':>8}")
    for category, dev in record["dev"].items():
        temperature = record["temperature"].get(category, 1.0)
        print(f"{category:<22}{dev['threshold']:>10.4f}{temperature:>7.2f}{dev['precision']:>8.4f}"
              f"{dev['recall']:>8.4f}{dev['f1']:>8.4f}")
    if record["unreachable"]:
        print(f"objective not reachable (threshold kept) for: {', '.join(record['unreachable'])}")
    print(f"checkpoint: {args.output or args.checkpoint}")
    return 0


def _refit_from_ledger(args: argparse.Namespace) -> int:
    from .accounts import open_ledger, refit_policy

    if args.data is not None:
        raise ConfigError("--ledger refits on reviewers' answers; --data does not go with it")
    if args.output is None:
        raise ConfigError("--output: the moderator YAML to write with the refitted thresholds is required")
    with open_ledger(args.ledger, create=False) as ledger:
        record = refit_policy(ledger, args.checkpoint, args.objective, args.output)
    print(f"objective {record['objective']} on {record['answers']} weighted answers (report/appeal items left out)")
    print(f"{'category':<20}{'action':>8}{'answers':>9}{'old':>8}{'prec':>7}{'recall':>7}{'new':>8}{'prec':>7}"
          f"{'recall':>7}{'flagged':>9}")
    for category, entry in record["categories"].items():
        old, new = entry["old"] or {}, entry["new"] or {}
        print(f"{category:<20}{entry['action']:>8}{entry['answers']:>9}{_cell(old.get('threshold'), 8)}"
              f"{_cell(old.get('precision'), 7)}{_cell(old.get('recall'), 7)}{_cell(new.get('threshold'), 8)}"
              f"{_cell(new.get('precision'), 7)}{_cell(new.get('recall'), 7)}"
              f"{new.get('answers_flagged', '-') if new else 'kept':>9}")
    print(f"moderator: {record['output']}")
    return 0


def _cell(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.3f}"


def _cmd_compare(args: argparse.Namespace) -> int:
    from .evaluation.compare import compare_reports
    from .evaluation.render import render_comparison

    result = compare_reports(args.report_a, args.report_b, resamples=args.bootstrap, seed=args.seed)
    markdown, html = render_comparison(result)
    print(markdown)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    print(f"comparison: {output}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .classifier import load
    from .batch.engine import predict_files

    if args.engine == "ray":
        from .batch.ray import predict_files_with_ray

        summary = predict_files_with_ray(
            args.checkpoint, args.input, args.output, output_format=args.format, input_field=args.input_field,
            id_field=args.id_field, batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens,
            shard_size=args.shard_size, overwrite=args.overwrite, actors=args.ray_actors,
            gpus_per_actor=args.gpus_per_actor, backend=args.backend, precision=args.precision,
            address=args.ray_address)
    else:
        device = args.device
        if device is None and "LOCAL_RANK" in os.environ:  # one GPU per process under accelerate / torchrun
            import torch

            device = f"cuda:{os.environ['LOCAL_RANK']}" if torch.cuda.is_available() else "cpu"
        classifier = load(args.checkpoint, device=device, precision=args.precision, backend=args.backend)
        if args.compile:
            classifier.runner.compile()
        summary = predict_files(
            classifier, args.input, args.output, output_format=args.format, input_field=args.input_field,
            id_field=args.id_field, batch_size=args.batch_size, num_workers=args.num_workers,
            max_batch_tokens=args.max_batch_tokens, shard_size=args.shard_size, overwrite=args.overwrite)
    count, examples = summary.duplicate_ids
    if count:
        print(f"modelkit predict: warning: {count} duplicate ids in {args.input} (first: "
              f"{', '.join(map(repr, examples))}); every row was scored and written in input order", file=sys.stderr)
    print(f"predictions: {summary}" + ("" if summary.complete else " (other processes still have shards to do)"))
    return 0


def _cmd_moderate(args: argparse.Namespace) -> int:
    from .posts.moderator import Moderator, load_moderator

    # The ledger first: one that cannot be reached is said before any model is loaded or post scored.
    ledger = _open_ledger(args.ledger) if args.ledger is not None else None

    quick = {"text": args.text, "image": args.image, "video": args.video, "ocr_text": args.ocr_text}
    if args.config is not None and any(quick.values()):
        raise ConfigError("give a moderator CONFIG or checkpoints (--text/--image/--video/--ocr-text), not both")
    if args.config is not None:
        moderator = load_moderator(args.config, device=args.device)
    elif any(quick.values()):
        moderator = Moderator.from_checkpoints(**quick, device=args.device)
    else:
        raise ConfigError("give a moderator CONFIG (configs/post/*.yaml) or at least one of --text, --image, --video, "
                          "--ocr-text")
    if args.no_evidence:
        moderator.evidence = False
    if args.fusion_data is not None:
        return _write_fusion_data(moderator, args)
    if args.output is None:
        raise ConfigError("--output: the folder to write decisions into is required")
    from .posts.run import moderate_files, write_decisions_page

    writer = None
    if ledger is not None:
        from .accounts import LedgerWriter, Sampling

        writer = LedgerWriter(ledger, moderator.policy, Sampling(args.sample_pass, args.sample_remove))
    try:
        summary = moderate_files(moderator, args.input, args.output, output_format=args.format,
                                 id_field=args.id_field, batch_size=args.batch_size, num_workers=args.num_workers,
                                 shard_size=args.shard_size, overwrite=args.overwrite, heatmaps=args.heatmaps,
                                 on_decided=writer)
    finally:
        if ledger is not None:
            ledger.close()
    print(f"decisions: {summary}" + ("" if summary.complete else " (other processes still have shards to do)"))
    if summary.complete and args.page_limit:
        page = write_decisions_page(args.output, args.input, limit=args.page_limit, id_field=args.id_field)
        print(f"page: {page}")
    return 0


def _open_ledger(url: str, create: bool = True):
    from .accounts import open_ledger

    return open_ledger(url, create)


def _at(args: argparse.Namespace) -> float | None:
    from .posts.post import parse_time

    return None if args.at is None else parse_time(args.at, "--at")


def _cmd_review(args: argparse.Namespace) -> int:
    with _open_ledger(args.ledger, create=False) as ledger:
        return _review(ledger, args)


def _review(ledger, args: argparse.Namespace) -> int:
    if args.review_command == "export":
        from .accounts import export_queue

        jsonl, page, count = export_queue(ledger, args.output, limit=args.limit or None, page=not args.no_page)
        print(f"review queue: {count} items, highest priority first: {jsonl}" + (f" and {page}" if page else ""))
    elif args.review_command == "import":
        from .accounts import import_answers

        summary = import_answers(ledger, args.answers, labels=args.labels)
        print(f"answers: {summary}")
        for modality, path in summary.manifests.items():
            print(f"labelled {modality}: {path}")
    else:
        from .accounts import ingest_reports

        new, rows = ingest_reports(ledger, args.reports)
        print(f"reports: {new} new of {rows} rows (a report already in the ledger is not counted twice)")
    return 0


def _cmd_accounts(args: argparse.Namespace) -> int:
    with _open_ledger(args.ledger, create=False) as ledger:
        return _accounts(ledger, args)


def _accounts(ledger, args: argparse.Namespace) -> int:
    import json

    from .accounts import EscalationPolicy, account_state, account_states, timeline
    from .accounts.ledger import format_time

    policy = EscalationPolicy.load(args.escalation)
    at = _at(args)
    if args.accounts_command == "list":
        for state in account_states(ledger, at, policy):
            if args.json:
                print(json.dumps(state.to_dict(), ensure_ascii=False))
            else:
                print(f"{_shown(state.account_id)}\tstrikes {len(state.strikes)}\tpenalty {_penalty(state)}")
        return 0
    state = account_state(ledger, args.account_id, at, policy)
    events = timeline(ledger, args.account_id, state.at, policy)
    if not events and not any(True for _ in ledger.events(account_id=args.account_id)):
        raise DataError(f"account {args.account_id!r}: no events in ledger {ledger.name}")
    if args.json:
        print(json.dumps({**state.to_dict(), "at": state.at, "events": events}, ensure_ascii=False))
        return 0
    print(f"account {_shown(state.account_id)} at {format_time(state.at)}: {len(state.strikes)} strikes in the window, "
          f"penalty {_penalty(state)}")
    for row in events:
        what = " ".join(f"{k}={_shown(row[k])}" for k in ("post_id", "category", "step", "action", "answer", "actor", "source")
                        if row.get(k) is not None)
        print(f"  {row['time']}  {row['kind']:<14} {what}")
    return 0


def _shown(value: object) -> str:
    """``value`` safe to print on a terminal: ids come from users' files, and a control character in one
    (an ESC sequence, a tab in a tab-separated list) would repaint or misalign a reviewer's screen."""
    text = str(value)
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _penalty(state) -> str:
    from .accounts.ledger import format_time

    if state.penalty is None:
        return "none"
    return f"{state.penalty} " + ("(permanent)" if state.penalty_until is None else
                                  f"until {format_time(state.penalty_until)}")


def _write_fusion_data(moderator, args: argparse.Namespace) -> int:
    from .data.synthetic import write_jsonl
    from .posts.run import read_post_rows

    posts, labels = read_post_rows(args.input, args.label_field, args.id_field)
    rows = moderator.fusion_rows(posts, labels, batch_size=args.batch_size, num_workers=args.num_workers)
    write_jsonl(Path(args.fusion_data), rows)
    print(f"fusion data: {args.fusion_data} ({len(rows)} posts; train a head on it with the recipe of "
          "Moderator.fusion_recipe, docs/posts.md)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .inference.onnx import export_checkpoint

    output, gap = export_checkpoint(args.checkpoint, args.output or f"{str(args.checkpoint).rstrip('/')}-onnx",
                                    opset=args.opset, overwrite=args.overwrite)
    print(f"exported: {output} (ONNX opset {args.opset}; largest logit difference from PyTorch {gap:.2g})")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint, read_config, write_checkpoint_folder

    version = read_config(args.checkpoint).get("converted_from")
    output = write_checkpoint_folder(args.output, load_checkpoint(args.checkpoint), source=args.checkpoint,
                                     overwrite=args.overwrite)
    state = "converted from format 1" if version == 1 else "already format 2, rewritten"
    print(f"checkpoint: {output} ({state})")
    return 0


def _cmd_recipes(args: argparse.Namespace) -> int:
    from .recipes import list_recipes, recipes_folder

    found = list_recipes()
    if not found:
        print("no recipes found (neither modelkit/configs in the package nor configs/ in a clone)")
        return 1
    width = max(map(len, found))
    for name, description in found.items():
        print(f"{name:<{width}}  {description}")
    print(f"\n{len(found)} recipes in {recipes_folder()}; train one with: modelkit train NAME --data-root DIR")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.output_dir), quick=args.quick)
    return 0


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], got {text!r}")
    return value


def _objective(text: str):
    from .evaluation.thresholds import Objective

    try:
        return Objective.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _command_names(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._subparsers._group_actions for name in action.choices}  # type: ignore[union-attr]


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(prog="modelkit", description="Trainable content-moderation classifiers.")
    parser.add_argument("--version", action="version", version=f"modelkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train a model from a YAML recipe")
    p.add_argument("config", help="recipe YAML (configs/text/cold.yaml) or a shipped recipe's name (text/cold; "
                                  "see modelkit recipes)")
    p.add_argument("--data-root", help="directory that relative data paths in the recipe are taken from")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last")
    p.add_argument("--cv", type=int, metavar="K", help="K-fold cross-validation on data.train (OUTPUT_DIR/fold-k)")
    p.set_defaults(func=_cmd_train)

    p = commands.add_parser("distill", help="train a student recipe on a teacher checkpoint's scores")
    p.add_argument("teacher", help="teacher checkpoint (with --cv: the folder of its fold-k checkpoints)")
    p.add_argument("config", help="student recipe YAML, e.g. configs/text/cold_distilled.yaml")
    p.add_argument("--unlabelled", nargs="+", default=[], metavar="FILE",
                   help="more files of unlabelled inputs (added to the recipe's distill.unlabelled)")
    p.add_argument("--data-root", help="directory that relative data paths in the recipe are taken from")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--cv", type=int, metavar="K",
                   help="K-fold cross-validation; fold k learns from TEACHER/fold-k (modelkit train --cv K)")
    p.set_defaults(func=_cmd_distill)

    p = commands.add_parser("evaluate", help="evaluation report of a checkpoint on a labelled file")
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="labelled jsonl/csv/parquet file")
    p.add_argument("--output-dir", help="where the report goes (default CHECKPOINT/eval/DATA_NAME)")
    p.add_argument("--slice-by", nargs="+", default=[], metavar="FIELD",
                   help="break every metric down by these columns of the data, e.g. topic language")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for intervals")
    p.add_argument("--errors", type=int, default=10, metavar="K", help="false positives/negatives shown per category")
    p.add_argument("--input-field", help="input column (default: as in training)")
    p.add_argument("--label-field", help="label column (default: as in training)")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--num-workers", type=_non_negative_int, default=0, metavar="N",
                   help="processes that decode inputs (pictures) beside the model (default 0: in the main process)")
    p.set_defaults(func=_cmd_evaluate)

    p = commands.add_parser("calibrate", help="fit thresholds (and temperatures) on a dev set into a checkpoint, or "
                                              "a moderator's thresholds on reviewers' answers (--ledger)")
    p.add_argument("checkpoint", help="checkpoint; with --ledger, the moderator YAML")
    p.add_argument("--data", help="labelled dev file (required without --ledger)")
    p.add_argument("--ledger", metavar="URL", help="refit the moderator's policy thresholds on the answers in this "
                                                   "ledger, weighted for how items were sampled; --output: new YAML")
    p.add_argument("--objective", type=_objective, default="f1",
                   help="f1 | precision@P | recall@R, e.g. precision@0.95 (default f1)")
    p.add_argument("--per-category", action="store_true", help="one threshold per category (default: one shared)")
    p.add_argument("--temperature", action="store_true", help="also fit temperature scaling per category")
    p.add_argument("--output", help="write the calibrated checkpoint here instead of in place")
    p.add_argument("--overwrite", action="store_true", help="replace what is in --output")
    p.add_argument("--input-field", help="input column (default: as in training)")
    p.add_argument("--label-field", help="label column (default: as in training)")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.set_defaults(func=_cmd_calibrate)

    p = commands.add_parser("compare", help="paired bootstrap comparison of two reports on the same data")
    p.add_argument("report_a", help="report.json or its directory (the baseline)")
    p.add_argument("report_b", help="report.json or its directory (the candidate)")
    p.add_argument("--output", default="comparison.html", help="HTML file to write (default comparison.html)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_compare)

    p = commands.add_parser("predict", help="score every row of a file, folder or dataset into a folder of shards "
                                            "(resumable: rerun the same command after a crash)")
    p.add_argument("checkpoint")
    p.add_argument("--input", required=True, help="jsonl/csv/parquet file, or a folder of images or videos")
    p.add_argument("--output", required=True, help="output folder: part-*.parquet (or .jsonl) + manifest.json")
    p.add_argument("--format", choices=["parquet", "jsonl"], default="parquet", help="shard format (default parquet)")
    p.add_argument("--input-field", help="input column (default: as in training)")
    p.add_argument("--id-field", help="id column (default: as in training; row index if absent)")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--max-batch-tokens", type=_positive_int, metavar="N",
                   help="close a batch of length-sorted texts at N padded characters (default: the processor's)")
    p.add_argument("--shard-size", type=_positive_int, metavar="ROWS",
                   help="rows per output shard (default 200000 for text, 10000 for files)")
    p.add_argument("--overwrite", action="store_true", help="replace the predictions of another run in --output")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1 ... (default auto: the accelerator when there is one)")
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto (default): ONNX Runtime on a CPU for models that run faster there, else PyTorch")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="auto (default): bf16 autocast on CUDA, fp32 elsewhere")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (PyTorch backend)")
    p.add_argument("--num-workers", type=_non_negative_int, default=0, metavar="N",
                   help="processes that decode and batch inputs beside the model (default 0: in the main process)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local (default; several GPUs: accelerate launch -m modelkit.cli predict ...) or ray")
    p.add_argument("--ray-actors", type=_positive_int, default=2, metavar="N", help="Ray: model replicas (default 2)")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, metavar="G", help="Ray: GPUs per replica (default 0)")
    p.add_argument("--ray-address", help="Ray: cluster address (default: start a local Ray)")
    p.set_defaults(func=_cmd_predict)

    p = commands.add_parser("moderate", help="decide posts (text, pictures, video) into a folder of decision shards "
                                             "and an HTML page (resumable)")
    p.add_argument("config", nargs="?", help="moderator YAML (configs/post/*.yaml); or give checkpoints below")
    p.add_argument("--input", required=True, help="jsonl/parquet manifest of posts {id, account_id, text, images, video}")
    p.add_argument("--output", help="output folder: part-*.parquet (or .jsonl), manifest.json, decisions.html")
    p.add_argument("--text", metavar="CHECKPOINT", help="text checkpoint (max fusion, default policy)")
    p.add_argument("--image", metavar="CHECKPOINT", help="picture checkpoint")
    p.add_argument("--video", metavar="CHECKPOINT", help="video checkpoint")
    p.add_argument("--ocr-text", metavar="CHECKPOINT", help="checkpoint that reads the text in pictures")
    p.add_argument("--format", choices=["parquet", "jsonl"], default="parquet", help="shard format (default parquet)")
    p.add_argument("--id-field", help="post id column (default id)")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--num-workers", type=_non_negative_int, default=0, metavar="N",
                   help="processes that decode pictures and video beside the models (default 0)")
    p.add_argument("--shard-size", type=_positive_int, metavar="ROWS",
                   help="posts per output shard (default 200000 for text-only moderators, 10000 otherwise)")
    p.add_argument("--overwrite", action="store_true", help="replace the decisions of another run in --output")
    p.add_argument("--device", help="auto, cpu, cuda ... (default auto)")
    p.add_argument("--no-evidence", action="store_true",
                   help="scores and actions only: no evidence (parts, spans, heat maps, segments), at scoring's cost")
    p.add_argument("--heatmaps", action="store_true",
                   help="also write each flagged picture's heat map as a PNG into OUTPUT/heatmaps/")
    p.add_argument("--page-limit", type=_non_negative_int, default=500, metavar="N",
                   help="posts on decisions.html, removals and reviews first (default 500; 0: no page)")
    p.add_argument("--fusion-data", metavar="FILE",
                   help="instead of deciding: write the members' part scores and the manifest's labels as training "
                        "rows of a learned-fusion head")
    p.add_argument("--label-field", default="labels", help="with --fusion-data: the post-level label column")
    p.add_argument("--ledger", metavar="URL", help="record decisions, strikes and review items in this account ledger "
                                                   "(SQLAlchemy URL or a SQLite file path)")
    p.add_argument("--sample-pass", type=_share, default=0.02, metavar="SHARE",
                   help="with --ledger: share of passed posts sent to review as a random sample (default 0.02)")
    p.add_argument("--sample-remove", type=_share, default=0.02, metavar="SHARE",
                   help="with --ledger: share of removed posts sent to review as a random sample (default 0.02)")
    p.set_defaults(func=_cmd_moderate)

    p = commands.add_parser("review", help="the review queue of an account ledger: export it, import answers, "
                                           "ingest user reports")
    actions = p.add_subparsers(dest="review_command", required=True)
    q = actions.add_parser("export", help="the open items, highest expected harm first, as jsonl + an HTML page")
    q.add_argument("--ledger", required=True, metavar="URL")
    q.add_argument("--output", required=True, help="jsonl file to write (the page: same name, .html)")
    q.add_argument("--limit", type=_non_negative_int, default=200, metavar="N",
                   help="items in this batch (default 200; 0: all)")
    q.add_argument("--no-page", action="store_true", help="the jsonl only")
    q = actions.add_parser("import", help="apply a file of answers (all or nothing) and update labelled manifests")
    q.add_argument("answers", help="jsonl: item_id, answer (confirm | overturn), reviewer, optional category, time")
    q.add_argument("--ledger", required=True, metavar="URL")
    q.add_argument("--labels", metavar="DIR", help="folder of labelled manifests (default: labelled/ beside ANSWERS)")
    q = actions.add_parser("report", help="ingest user reports (all or nothing): post_id, reporter, category, time")
    q.add_argument("reports", help="jsonl of reports")
    q.add_argument("--ledger", required=True, metavar="URL")
    for q in actions.choices.values():
        q.set_defaults(func=_cmd_review, command="review")

    p = commands.add_parser("accounts", help="accounts' strikes and penalties from an account ledger")
    actions = p.add_subparsers(dest="accounts_command", required=True)
    q = actions.add_parser("show", help="one account's state and the events that led to it")
    q.add_argument("account_id")
    q = actions.add_parser("list", help="every account's state (--json: one object a line)")
    for q in actions.choices.values():
        q.add_argument("--ledger", required=True, metavar="URL")
        q.add_argument("--at", metavar="TIME", help="state at this time (ISO-8601 or seconds; default now)")
        q.add_argument("--escalation", default="default", metavar="YAML",
                       help="escalation ladder (default: the shipped configs/taxonomy/escalation.yaml)")
        q.add_argument("--json", action="store_true", help="JSON output")
        q.set_defaults(func=_cmd_accounts, command="accounts")

    p = commands.add_parser("export", help="export a checkpoint's model to ONNX, as a checkpoint the engine loads")
    p.add_argument("checkpoint")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--output", help="checkpoint folder to write (default CHECKPOINT-onnx); new or empty")
    p.add_argument("--overwrite", action="store_true", help="replace what is in --output")
    p.add_argument("--opset", type=_positive_int, default=17)
    p.set_defaults(func=_cmd_export)

    p = commands.add_parser("convert", help="rewrite a checkpoint of an older modelkit in the current format")
    p.add_argument("checkpoint")
    p.add_argument("--output", help="write the converted checkpoint here (new or empty) instead of in place")
    p.add_argument("--overwrite", action="store_true", help="replace what is in --output")
    p.set_defaults(func=_cmd_convert)

    p = commands.add_parser("recipes", help="list the recipes that ship with modelkit (modelkit train NAME)")
    p.set_defaults(func=_cmd_recipes)

    p = commands.add_parser("demo", help="train, evaluate and predict on a synthetic bilingual data set")
    p.add_argument("--output-dir", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a few rows and one epoch of each part (checks an install "
                                                        "in about a minute; the models learn little)")
    p.set_defaults(func=_cmd_demo)

    for name, (help_text, add_arguments, run) in registered_commands():
        p = commands.add_parser(name, help=help_text)
        add_arguments(p)
        p.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command is not None and command not in _command_names(parser):
        # A plugin module may register commands of its own when imported (as modalities did before
        # the modelkit.commands entry point): load them before calling the command unknown.
        load_plugins()
        parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (ConfigError, DataError, InputError, CheckpointError, EvaluationError, FileNotFoundError) as err:
        print(f"modelkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`modelkit accounts list | head`): end quietly, as coreutils do. The
        # flush at exit would fail again on what is still buffered, so stdout now goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE: what a shell reports for coreutils ended this way
    except OSError as err:  # the machine's side: a full disk, a read-only folder
        where = f"{err.filename}: " if err.filename else ""
        print(f"modelkit {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
