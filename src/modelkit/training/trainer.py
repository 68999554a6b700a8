"""Training loop on ``accelerate``: CPU, one GPU or many processes with the same code.

Each epoch ends with an evaluation on the dev split; the checkpoint with the best dev figure
(``train.select_metric``) is kept in ``output_dir`` (loadable with ``modelkit.load``), and
``output_dir/last`` holds what ``--resume`` needs to continue after an interruption. Nothing
here knows a modality: the processor decodes, augments and batches, the model scores.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checkpoint import Checkpoint, save_checkpoint
from ..classifier import Classifier
from ..config import ConfigError
from ..data.records import (
    DataError,
    Records,
    fold_records,
    read_records,
    sample_per_class,
    split_records,
    take_rows,
)
from ..evaluation.metrics import class_view, compute_metrics, format_metrics, is_exclusive
from ..evaluation.thresholds import best_f1_thresholds
from ..inference.runner import accelerator_available
from ..models.base import ModerationModel
from ..models.registry import create_model
from ..policy import Policy
from ..processing import Processor, create_processor
from ..taxonomy import Taxonomy
from .loaders import build_loader, undecodable_rows
from .losses import build_loss
from .optim import build_optimizer
from .recipe import RunConfig, TrainConfig, dump_run_config, load_inner_model
from .state import TrainState, check_resumable, fingerprint, read_state, restore_last, save_last

logger = logging.getLogger(__name__)


@dataclass
class Splits:
    train: Records
    dev: Records
    test: Records | None


def load_splits(config: RunConfig, taxonomy: Taxonomy) -> Splits:
    """The recipe's train, dev and (optional) test records, folds and seeded dev split applied."""
    data, seed = config.data, config.split_seed
    if not data.train:
        raise ConfigError("data.train: no training file given")
    train = read_records(data.train, data, taxonomy)
    if data.per_class:
        train = sample_per_class(train, data.per_class, seed)
    test = read_records(data.test, data, taxonomy) if data.test else None
    if data.folds:
        if test is not None:
            raise ConfigError("data.test: with data.folds the held-out fold is the test split; remove one")
        train, test = fold_records(train, data.folds, data.fold, seed)
    if data.dev:
        dev = read_records(data.dev, data, taxonomy)
    elif data.dev_fraction > 0:
        if len(train) < 2:
            raise ConfigError(f"data.dev_fraction: {train.source} has {len(train)} row(s), too few to split off dev")
        train, dev = split_records(train, data.dev_fraction, seed)
    else:
        raise ConfigError("data.dev: no dev file and data.dev_fraction is 0; early stopping needs a dev split")
    return Splits(train, dev, test)


def data_fields(config: RunConfig) -> dict[str, Any]:
    """How the recipe read its records; kept in the checkpoint so evaluation reads files alike."""
    data = config.data
    return {"inputs": data.input_columns, "id_field": data.id_field, "label_field": data.label_field,
            "label_columns": data.label_columns, "label_map": data.label_map, "column_types": data.column_types}


def save_trained(config: RunConfig, model: ModerationModel, processor: Processor, taxonomy: Taxonomy,
                 thresholds: np.ndarray, metrics: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write a trained model as the run's checkpoint (``config.output_dir``)."""
    policy = Policy(taxonomy, {c: float(t) for c, t in zip(taxonomy.ids, thresholds)})
    checkpoint = Checkpoint(model, processor, policy, metrics, extra={"data": data_fields(config), **(extra or {})})
    return save_checkpoint(config.output_dir, checkpoint)


def evaluate_test(output_dir: Path, test: Records, device: torch.device, batch_size: int,
                  num_workers: int = 0) -> dict[str, Any]:
    """Score the saved checkpoint on the test split and store the figures in its metrics."""
    classifier = Classifier.load(output_dir, device=device)
    scores = classifier.predict_proba(test.inputs, batch_size=batch_size, num_workers=num_workers)
    metrics = compute_metrics(test.labels, scores, classifier.threshold_vector, classifier.categories)
    logger.info("test: %s", format_metrics(metrics).splitlines()[0])
    classifier.metrics["test"] = metrics
    classifier.save(output_dir)
    return metrics


def _part_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the parts and categories whose labels are known (not NaN)."""
    known = ~torch.isnan(targets)
    if not known.any():
        return logits.sum() * 0.0  # keeps the graph whole for distributed training
    return F.binary_cross_entropy_with_logits(logits[known].float(), targets[known])


def _consistency(originals: torch.Tensor, copies: torch.Tensor) -> torch.Tensor:
    """KL divergence from each original's category scores to its augmented copy's, averaged.

    The copy follows the original, not the reverse (the original's scores are a fixed target).
    On scores, not logits: a copy that is still confidently right costs nothing however far
    its logit moved; one that crosses the threshold costs the most.
    """
    originals, copies = originals.detach().float(), copies.float()
    target = torch.sigmoid(originals)
    # KL(p || q) = H(p, q) - H(p), both terms from logits for numerical stability.
    cross = torch.nn.functional.binary_cross_entropy_with_logits(copies, target)
    return cross - torch.nn.functional.binary_cross_entropy_with_logits(originals, target)


def _schedule(config: TrainConfig, total_steps: int):
    warmup = int(config.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        if config.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return max(0.0, 1.0 - progress)

    return factor


class Trainer:
    """Runs one recipe. ``Trainer(config).fit()`` returns the best checkpoint directory.

    Subclasses may change where the splits come from (:meth:`load_splits`) and add to what the
    checkpoint records about its making (``extra``), as distillation does.
    """

    extra: dict[str, Any] = {}

    def __init__(self, config: RunConfig, resume: bool = False) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, GradientState
        from accelerate.utils import DataLoaderConfiguration, set_seed

        # accelerate keeps per-process singletons: without a reset, a second run in the same
        # process (a notebook, the tests) would refuse another precision or keep the old
        # accumulation. The process group (PartialState) is kept.
        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()

        self.config = config
        self.cfg = config.train
        self.output_dir = Path(config.output_dir)
        self.resume = resume
        self.accelerator = Accelerator(
            # Without an accelerator, accelerate only forms a multi-process (gloo) group when told
            # it is on CPU; with cpu=False, torchrun's processes would each train alone.
            cpu=not accelerator_available(),
            mixed_precision=config.train.mixed_precision,
            gradient_accumulation_steps=config.train.grad_accum_steps,
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
        set_seed(config.train.seed)
        self.taxonomy: Taxonomy = config.build_taxonomy()

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def _log(self, record: dict[str, Any]) -> None:
        if self.is_main:
            with open(self.output_dir / "train_log.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _warn(self, message: str) -> None:
        logger.warning(message)
        self._log({"event": "warning", "message": message})

    def load_splits(self) -> Splits:
        return load_splits(self.config, self.taxonomy)

    # -- steps ----------------------------------------------------------------------------
    def fit(self) -> Path:
        splits = self.load_splits()  # bad data fails before anything is written
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if not self.resume and self.is_main:  # a fresh run starts a fresh log
            (self.output_dir / "train_log.jsonl").unlink(missing_ok=True)
        splits = self._build(splits)
        state = self._start(splits)
        started = time.perf_counter()
        for epoch in range(state.epoch, self.cfg.epochs):
            if state.bad_epochs >= self.cfg.early_stopping_patience > 0:
                break
            self._train_epoch(epoch, state)
            metrics, thresholds = self._evaluate()
            elapsed = time.perf_counter() - started
            self._log({"event": "eval", "split": "dev", "epoch": epoch + 1, "elapsed_s": round(elapsed, 2),
                       "loss": metrics["loss"], "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                       "micro_f1": metrics["micro_f1"], "macro_roc_auc": metrics["macro_roc_auc"],
                       **class_view(metrics)})
            if self.is_main:
                logger.info("epoch %d dev: loss %.4f  %s", epoch + 1, metrics["loss"],
                            format_metrics(metrics).splitlines()[0])
            if state.update(epoch + 1, metrics[self.select_metric], minimise=self.select_metric == "loss",
                            loss=metrics["loss"]):
                if self.is_main:
                    save_trained(self.config, self.accelerator.unwrap_model(self.model), self.processor, self.taxonomy,
                                 thresholds, {"dev": metrics, "epoch": epoch + 1, "train_seconds": elapsed}, self.extra)
            if self.is_main:
                save_last(self.output_dir, self.accelerator.unwrap_model(self.model), self.optimizer, self.scheduler,
                          state)
            self.accelerator.wait_for_everyone()
        if splits.test is not None and self.is_main:
            metrics = evaluate_test(self.output_dir, splits.test, self.accelerator.device, self.cfg.eval_batch_size,
                                    self.cfg.num_workers)
            self._log({"event": "eval", "split": "test", "accuracy": metrics["accuracy"],
                       "macro_f1": metrics["macro_f1"]})
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        return self.output_dir

    def _build(self, splits: Splits) -> Splits:
        """Processor, model, loss, optimiser, schedule and loaders, prepared by accelerate; returns
        the splits without rows whose files cannot be decoded (under data.skip_bad_files)."""
        cfg, acc = self.cfg, self.accelerator
        processor_name, processor_params = self.config.processor_kwargs()
        self.processor = create_processor(processor_name, **processor_params)
        splits = Splits(*(self._decodable(records) if records is not None else None
                          for records in (splits.train, splits.dev, splits.test)))
        if cfg.consistency and not self.processor.augments:
            raise ConfigError(f"train.consistency: processor {processor_name} does not augment in train mode, so "
                              "there are no copies to pull towards the originals (configure processor.augment)")
        self.select_metric = self._selection(splits.dev)
        model_name, model_params = self.config.model_kwargs()
        model = create_model(model_name, self.taxonomy, processor=self.processor, load_inner=load_inner_model,
                             **model_params)
        self.loss_fn = build_loss(cfg, splits.train.labels)
        optimizer = build_optimizer(model, cfg.learning_rate, cfg.weight_decay)
        seed = cfg.seed + acc.process_index
        train_loader = build_loader(splits.train, self.processor, train=True, batch_size=cfg.batch_size, seed=seed,
                                    num_workers=cfg.num_workers, paired=cfg.consistency > 0,
                                    group_by_length=cfg.group_by_length, annotations=self._part_supervision(splits.train),
                                    categories=self.taxonomy.ids)
        dev_loader = build_loader(splits.dev, self.processor, train=False, batch_size=cfg.eval_batch_size, seed=seed,
                                  num_workers=cfg.num_workers, group_by_length=cfg.group_by_length)
        # Counted on the unsharded loader: accelerate steps a prepared scheduler once per process
        # for every optimiser step, so the schedule spans the same data whatever the world size.
        steps_per_epoch = math.ceil(len(train_loader) / cfg.grad_accum_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg, max(1, steps_per_epoch * cfg.epochs)))
        self.model, self.optimizer, self.train_loader, self.dev_loader, self.scheduler = acc.prepare(
            model, optimizer, train_loader, dev_loader, scheduler
        )
        self.loss_fn.to(acc.device)
        return splits

    def _part_supervision(self, records: Records) -> list[Any] | None:
        """The training rows' annotations of their parts (a video's timed labels), when the
        processor learns from them and the data has them."""
        if not (self.cfg.part_loss_weight and not self.cfg.consistency):
            return None
        return self.processor.part_annotations(records, self.config.data.segments_field)

    def _decodable(self, records: Records) -> Records:
        """Decodes every row once when the inputs are files, so that a corrupt file fails (or, with
        data.skip_bad_files, is left out) before training, naming the file, not mid-epoch."""
        bad = undecodable_rows(records, self.processor, self.cfg.num_workers)
        if bad and not self.config.data.skip_bad_files:
            row, problem = bad[0]
            more = f" (and {len(bad) - 1} more rows)" if len(bad) > 1 else ""
            raise DataError(f"{records.source}, row {row} (id {records.ids[row]!r}): {problem}{more}; "
                            "data.skip_bad_files: true leaves such rows out")
        if bad:
            skipped = {row for row, _ in bad}
            kept = take_rows(records, [row for row in range(len(records)) if row not in skipped])
            kept.source, kept.dropped_labels = records.source, records.dropped_labels
            kept.skipped = records.skipped + [f"row {row} (id {records.ids[row]!r}): {p}" for row, p in bad]
            records = kept
        for event, rows, what in (("skipped_rows", records.skipped, "bad inputs (data.skip_bad_files)"),
                                  ("dropped_labels", records.dropped_labels,
                                   "missing or unknown labels (data.drop_invalid_labels)")):
            if rows:
                self._warn(f"{records.source}: left out {len(rows)} row(s) with {what}, first: {rows[0]}")
                self._log({"event": event, "source": records.source, "count": len(rows), "rows": rows[:100]})
        if len(records) == 0:
            raise DataError(f"{records.source}: no rows left after leaving out bad inputs")
        return records

    def _selection(self, dev: Records) -> str:
        """The dev figure that selects epochs; warns about categories dev cannot judge."""
        metric = self.cfg.select_metric
        if metric.startswith("classes_") and not is_exclusive(dev.labels >= 0.5):
            self._warn(f"train.select_metric {metric} needs one category per row at most, but the dev split "
                       f"({dev.source}) has rows with several: selecting epochs on macro_f1 instead")
            metric = "macro_f1"
        positives = dev.labels.sum(axis=0)
        missing = [c for c, n in zip(self.taxonomy.ids, positives) if n == 0]
        if missing and len(missing) < len(positives):
            self._warn(f"the dev split ({dev.source}) has no positives for {', '.join(missing)}: their F1 is 0 and "
                       "their thresholds are not tuned")
        if not missing or len(missing) < len(positives) or metric == "loss":
            return metric
        self._warn(f"the dev split ({dev.source}) has no positive labels at all: selecting epochs on the dev loss "
                   f"instead of {metric}")
        return "loss"

    def _start(self, splits: Splits) -> TrainState:
        """A fresh state, or the one in ``output_dir/last`` with its weights and optimiser."""
        current = fingerprint(self.config, self.taxonomy)
        state = TrainState(select_metric=self.select_metric, fingerprint=current)
        if self.resume:
            stored = read_state(self.output_dir)
            if stored is None:
                logger.warning("--resume: no %s/last state found, starting from scratch", self.output_dir)
            else:
                check_resumable(stored, current, self.output_dir)
                if stored.select_metric != self.select_metric:
                    raise ConfigError(f"--resume: the run selected epochs on {stored.select_metric}, now on "
                                      f"{self.select_metric}; keep train.select_metric, or train into a new output_dir")
                restore_last(self.output_dir, self.accelerator.unwrap_model(self.model), self.optimizer,
                             self.scheduler)
                state = stored
                logger.info("resumed from epoch %d (best %s %s)", state.epoch, state.select_metric, state.best_value)
        if self.is_main:
            dump_run_config(self.config, self.output_dir / "run_config.yaml")
        self._log({
            "event": "start", "world_size": self.accelerator.num_processes, "device": str(self.accelerator.device),
            "train_rows": len(splits.train), "dev_rows": len(splits.dev), "model": self.config.model_kwargs()[0],
            "processor": self.processor.name, "resumed_epoch": state.epoch, "select_metric": state.select_metric,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        })
        return state

    def _train_epoch(self, epoch: int, state: TrainState) -> None:
        cfg, acc, model = self.cfg, self.accelerator, self.model
        model.train()
        self.train_loader.set_epoch(epoch)
        self.train_loader.dataset.set_epoch(epoch)
        bar = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not self.is_main, unit="batch")
        running = 0.0
        for step, batch in enumerate(bar):
            labels = batch.pop("labels")
            part_targets = batch.pop("part_labels", None)
            with acc.accumulate(model):
                if part_targets is None:
                    logits = model(**batch)
                    loss = self.loss_fn(logits, labels)
                else:  # the processor labelled the parts: its model returns their logits too
                    logits, part_logits, _ = model(**batch, with_parts=True)
                    loss = self.loss_fn(logits, labels) + cfg.part_loss_weight * _part_loss(part_logits, part_targets)
                if cfg.consistency:
                    loss = loss + cfg.consistency * _consistency(*logits.chunk(2))
                acc.backward(loss)
                if acc.sync_gradients and cfg.max_grad_norm:
                    acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
            if acc.sync_gradients:
                state.global_step += 1
            running += loss.item()
            if (step + 1) % cfg.log_every == 0:
                bar.set_postfix(loss=f"{running / cfg.log_every:.4f}")
                self._log({"event": "train", "epoch": epoch + 1, "step": state.global_step,
                           "loss": running / cfg.log_every, "lr": self.scheduler.get_last_lr()[0]})
                running = 0.0

    @torch.no_grad()
    def _evaluate(self) -> tuple[dict[str, Any], np.ndarray]:
        """Dev metrics (with the dev loss) at the thresholds this epoch would be saved with."""
        self.model.eval()
        all_logits, all_labels = [], []
        for batch in self.dev_loader:
            labels = batch.pop("labels")
            logits, labels = self.accelerator.gather_for_metrics((self.model(**batch).float(), labels))
            all_logits.append(logits)
            all_labels.append(labels)
        self.model.train()
        logits, labels = torch.cat(all_logits), torch.cat(all_labels)
        loss = float(self.loss_fn(logits, labels))
        y_dev, s_dev = labels.cpu().numpy(), torch.sigmoid(logits).cpu().numpy()
        if self.cfg.tune_thresholds:
            thresholds = best_f1_thresholds(y_dev, s_dev)
        else:
            thresholds = np.full(len(self.taxonomy), 0.5)
        metrics = compute_metrics(y_dev, s_dev, thresholds, self.taxonomy.ids)
        return {**metrics, **class_view(metrics), "loss": loss}, thresholds
