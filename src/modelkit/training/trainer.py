"""Training loop on ``accelerate``: CPU, one GPU or many processes with the same code.

Each epoch ends with an evaluation on the dev split; the checkpoint with the best dev macro-F1
is kept in ``output_dir`` (loadable with ``modelkit.load``), and ``output_dir/last`` holds what
``--resume`` needs to continue after an interruption.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from ..checkpoint import Checkpoint, save_checkpoint, write_json
from ..config import ConfigError
from ..classifier import Classifier
from ..data.augment import Augmenter
from ..data.records import Records, fold_records, read_records, split_records
from ..evaluation.metrics import compute_metrics, format_metrics
from ..evaluation.thresholds import best_f1_thresholds
from ..models.base import ModerationModel
from ..models.registry import create_model
from ..taxonomy import Taxonomy
from .optim import build_optimizer
from .losses import build_loss
from .recipe import RunConfig, TrainConfig, dump_run_config, load_run_config

logger = logging.getLogger(__name__)
LAST = "last"


class _Examples(Dataset):
    """Rows as (input, labels); ``paired``: ((input, its augmented copy), labels)."""

    def __init__(self, records: Records, augment: Augmenter | None = None, paired: bool = False) -> None:
        self.inputs = records.inputs
        self.labels = torch.from_numpy(records.labels)
        self.augment = augment
        self.paired = paired

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        item, labels = self.inputs[index], self.labels[index]
        if self.augment is None:
            return item, labels
        copy = self.augment(item, benign=not bool(labels.any()))
        return ((item, copy) if self.paired else copy), labels


class _LengthGroupedBatches(Sampler[list[int]]):
    """Batches of similar input lengths, so padded models waste little compute.

    For training, rows are shuffled, cut into windows of ``window`` batches, sorted by length
    inside each window and batched; the batch order is shuffled again. A fresh order every
    epoch, seeded. For evaluation (``shuffle=False``) the rows are simply sorted by length.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, window: int = 50,
                 shuffle: bool = True) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.window = window * batch_size
        self.rng = np.random.default_rng(seed)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            for start in range(0, len(order), self.batch_size):
                yield order[start : start + self.batch_size].tolist()
            return
        order = self.rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.window):
            chunk = order[start : start + self.window]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for index in self.rng.permutation(len(batches)):
            yield batches[index]


class _Collate:
    """Raw inputs -> model batch through the model's own preprocessor (same as inference)."""

    def __init__(self, preprocessor, paired: bool = False) -> None:
        self.preprocessor = preprocessor
        self.paired = paired

    def __call__(self, items: Sequence[tuple[Any, torch.Tensor]]) -> dict[str, torch.Tensor]:
        inputs, labels = zip(*items)
        labels = torch.stack(labels)
        if self.paired:  # the rows, then their augmented copies in the same order
            originals, copies = zip(*inputs)
            inputs, labels = originals + copies, torch.cat([labels, labels])
        batch = self.preprocessor(list(inputs))
        batch["labels"] = labels
        return batch


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


def _accelerator_available() -> bool:
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


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


def load_splits(config: RunConfig, taxonomy: Taxonomy) -> tuple[Records, Records, Records | None]:
    """The recipe's train, dev and (optional) test records, folds and seeded dev split applied."""
    data, seed = config.data, config.split_seed
    if not data.train:
        raise ConfigError("data.train: no training file given")
    train = read_records(data.train, data, taxonomy)
    test = read_records(data.test, data, taxonomy) if data.test else None
    if data.folds:
        if test is not None:
            raise ConfigError("data.test: with data.folds the held-out fold is the test split; remove one")
        train, test = fold_records(train, data.folds, data.fold, seed)
    if data.dev:
        dev = read_records(data.dev, data, taxonomy)
    elif data.dev_fraction > 0:
        train, dev = split_records(train, data.dev_fraction, seed)
    else:
        raise ConfigError("data.dev: no dev file and data.dev_fraction is 0; early stopping needs a dev split")
    return train, dev, test


def data_fields(config: RunConfig) -> dict[str, Any]:
    """How the recipe read its records; kept in the checkpoint so evaluation reads files alike."""
    data = config.data
    return {"input_field": data.input_field, "id_field": data.id_field, "label_field": data.label_field,
            "label_columns": data.label_columns, "label_map": data.label_map}


def evaluate_test(output_dir: Path, test: Records, device: torch.device, batch_size: int) -> dict[str, Any]:
    """Score the saved checkpoint on the test split and store the figures in its metrics."""
    classifier = Classifier.load(output_dir, device=device)
    scores = classifier.predict_proba(test.inputs, batch_size=batch_size)
    metrics = compute_metrics(test.labels, scores, classifier.threshold_vector, classifier.categories)
    logger.info("test: %s", format_metrics(metrics).splitlines()[0])
    classifier.metrics["test"] = metrics
    classifier.save(output_dir)
    return metrics


class Trainer:
    """Runs one recipe. ``Trainer(config).fit()`` returns the best checkpoint directory."""

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
        self.train_config = config.train
        self.output_dir = Path(config.output_dir)
        self.resume = resume
        self.accelerator = Accelerator(
            # Without an accelerator, accelerate only forms a multi-process (gloo) group when told
            # it is on CPU; with cpu=False, torchrun's processes would each train alone.
            cpu=not _accelerator_available(),
            mixed_precision=config.train.mixed_precision,
            gradient_accumulation_steps=config.train.grad_accum_steps,
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
        set_seed(config.train.seed)
        self.taxonomy: Taxonomy = config.build_taxonomy()

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    # -- data ---------------------------------------------------------------------------
    def _loader(self, records: Records, model: ModerationModel, shuffle: bool, batch_size: int) -> DataLoader:
        generator = torch.Generator().manual_seed(self.train_config.seed)
        # Only the training loader (the shuffled one) sees augmented inputs.
        augment = self.config.augment
        if shuffle and augment.probability > 0:
            if model.modality != "text":
                raise ConfigError(f"augment: evasion attacks rewrite text; this model's inputs are {model.modality}")
            augmenter = Augmenter(augment, self.train_config.seed + self.accelerator.process_index)
        else:
            augmenter = None
        paired = augmenter is not None and augment.consistency > 0
        examples = _Examples(records, augmenter, paired)
        collate = _Collate(model.preprocessor, paired)
        workers = self.train_config.num_workers
        if self.train_config.group_by_length:
            lengths = [len(x) if isinstance(x, str) else 0 for x in records.inputs]
            batches = _LengthGroupedBatches(lengths, batch_size, self.train_config.seed, shuffle=shuffle)
            return DataLoader(examples, batch_sampler=batches, collate_fn=collate, num_workers=workers)
        return DataLoader(
            examples,
            batch_size=batch_size,
            shuffle=shuffle,
            collate_fn=collate,
            num_workers=workers,
            generator=generator if shuffle else None,
        )

    # -- evaluation ---------------------------------------------------------------------
    @torch.no_grad()
    def _predict(self, model: torch.nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
        model.eval()
        all_scores, all_labels = [], []
        for batch in loader:
            labels = batch.pop("labels")
            logits = model(**batch)
            scores, labels = self.accelerator.gather_for_metrics((torch.sigmoid(logits.float()), labels))
            all_scores.append(scores.cpu().numpy())
            all_labels.append(labels.cpu().numpy())
        model.train()
        return np.concatenate(all_labels), np.concatenate(all_scores)

    # -- resume state -------------------------------------------------------------------
    def _save_last(self, model, optimizer, scheduler, state: dict[str, Any]) -> None:
        # Written beside the previous state and swapped in, so an interruption while saving
        # leaves the last complete epoch to resume from.
        last = self.output_dir / LAST
        staging = self.output_dir / f".{LAST}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        weights = {k: v.detach().cpu().contiguous() for k, v in self.accelerator.unwrap_model(model).state_dict().items()}
        save_file(weights, str(staging / "model.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, staging / "optimizer.pt")
        write_json(staging / "trainer_state.json", state)
        previous = self.output_dir / f".{LAST}.previous"
        if last.exists():
            last.rename(previous)
        staging.rename(last)
        shutil.rmtree(previous, ignore_errors=True)

    def _load_last(self, model, optimizer, scheduler) -> dict[str, Any] | None:
        last = self.output_dir / LAST
        if not (last / "trainer_state.json").is_file():
            return None
        self.accelerator.unwrap_model(model).load_state_dict(load_file(str(last / "model.safetensors")))
        # Our own file; weights_only keeps even a tampered one from running code.
        states = torch.load(last / "optimizer.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(states["optimizer"])
        scheduler.load_state_dict(states["scheduler"])
        return json.loads((last / "trainer_state.json").read_text(encoding="utf-8"))

    def _log(self, record: dict[str, Any]) -> None:
        if self.is_main:
            with open(self.output_dir / "train_log.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    # -- main loop ----------------------------------------------------------------------
    def fit(self) -> Path:
        cfg = self.train_config
        acc = self.accelerator
        self.output_dir.mkdir(parents=True, exist_ok=True)
        train, dev, test = load_splits(self.config, self.taxonomy)
        name, params = self.config.model_kwargs()
        model = create_model(name, self.taxonomy, **params)
        loss_fn = build_loss(cfg, train.labels)
        optimizer = build_optimizer(model, cfg.learning_rate, cfg.weight_decay)
        train_loader = self._loader(train, model, shuffle=True, batch_size=cfg.batch_size)
        dev_loader = self._loader(dev, model, shuffle=False, batch_size=cfg.eval_batch_size)
        # Counted on the unsharded loader: accelerate steps a prepared scheduler once per process
        # for every optimiser step, so the schedule spans the same data whatever the world size.
        steps_per_epoch = math.ceil(len(train_loader) / cfg.grad_accum_steps)
        total_steps = max(1, steps_per_epoch * cfg.epochs)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg, total_steps))
        model, optimizer, train_loader, dev_loader, scheduler = acc.prepare(
            model, optimizer, train_loader, dev_loader, scheduler
        )
        loss_fn.to(acc.device)

        state = {"epoch": 0, "global_step": 0, "best_metric": -1.0, "best_epoch": None, "bad_epochs": 0}
        if self.resume:
            restored = self._load_last(model, optimizer, scheduler)
            if restored is None:
                logger.warning("--resume: no %s/%s state found, starting from scratch", self.output_dir, LAST)
            else:
                state = restored
                logger.info("resumed from epoch %d (best macro-F1 %.4f)", state["epoch"], state["best_metric"])
        elif self.is_main and (self.output_dir / "train_log.jsonl").exists():
            (self.output_dir / "train_log.jsonl").unlink()
        if self.is_main:
            dump_run_config(self.config, self.output_dir / "run_config.yaml")
        self._log({
            "event": "start", "world_size": acc.num_processes, "device": str(acc.device),
            "train_rows": len(train), "dev_rows": len(dev), "model": name, "resumed_epoch": state["epoch"],
            "parameters": sum(p.numel() for p in model.parameters()),
        })

        consistency = self.config.augment.consistency if self.config.augment.probability > 0 else 0.0
        started = time.perf_counter()
        model.train()
        for epoch in range(state["epoch"], cfg.epochs):
            if state["bad_epochs"] >= cfg.early_stopping_patience > 0:
                break
            train_loader.set_epoch(epoch)
            bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not self.is_main, unit="batch")
            running = 0.0
            for step, batch in enumerate(bar):
                labels = batch.pop("labels")
                with acc.accumulate(model):
                    logits = model(**batch)
                    loss = loss_fn(logits, labels)
                    if consistency:
                        loss = loss + consistency * _consistency(*logits.chunk(2))
                    acc.backward(loss)
                    if acc.sync_gradients and cfg.max_grad_norm:
                        acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                if acc.sync_gradients:
                    state["global_step"] += 1
                running += loss.item()
                if (step + 1) % cfg.log_every == 0:
                    bar.set_postfix(loss=f"{running / cfg.log_every:.4f}")
                    self._log({"event": "train", "epoch": epoch + 1, "step": state["global_step"],
                               "loss": running / cfg.log_every, "lr": scheduler.get_last_lr()[0]})
                    running = 0.0

            y_dev, s_dev = self._predict(model, dev_loader)
            thresholds = best_f1_thresholds(y_dev, s_dev) if cfg.tune_thresholds else np.full(len(self.taxonomy), 0.5)
            metrics = compute_metrics(y_dev, s_dev, thresholds, self.taxonomy.ids)
            elapsed = time.perf_counter() - started
            self._log({"event": "eval", "split": "dev", "epoch": epoch + 1, "elapsed_s": round(elapsed, 2),
                       "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                       "micro_f1": metrics["micro_f1"], "macro_roc_auc": metrics["macro_roc_auc"]})
            if self.is_main:
                logger.info("epoch %d dev: %s", epoch + 1, format_metrics(metrics).splitlines()[0])
            state["epoch"] = epoch + 1
            if metrics["macro_f1"] > state["best_metric"]:
                state.update(best_metric=metrics["macro_f1"], best_epoch=epoch + 1, bad_epochs=0)
                if self.is_main:
                    self._save_best(model, thresholds, {"dev": metrics, "epoch": epoch + 1, "train_seconds": elapsed})
            else:
                state["bad_epochs"] += 1
            if self.is_main:
                self._save_last(model, optimizer, scheduler, state)
            acc.wait_for_everyone()

        if test is not None and self.is_main:
            self._evaluate_test(test)
        acc.wait_for_everyone()
        acc.end_training()
        return self.output_dir

    def _save_best(self, model, thresholds: np.ndarray, metrics: dict[str, Any]) -> None:
        checkpoint = Checkpoint(
            self.accelerator.unwrap_model(model),
            self.taxonomy,
            {c: float(t) for c, t in zip(self.taxonomy.ids, thresholds)},
            metrics,
            extra={"data": data_fields(self.config)},
        )
        save_checkpoint(self.output_dir, checkpoint)

    def _evaluate_test(self, test: Records) -> None:
        metrics = evaluate_test(self.output_dir, test, self.accelerator.device, self.train_config.eval_batch_size)
        self._log({"event": "eval", "split": "test", "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]})


def train(config: str | Path | dict[str, Any] | RunConfig, overrides: list[str] | None = None,
          data_root: str | Path | None = None, resume: bool = False) -> Path:
    """Train from a recipe (path, mapping or :class:`RunConfig`); return the checkpoint directory."""
    if not isinstance(config, RunConfig):
        config = load_run_config(config, overrides, data_root)
    if config.ensemble is not None:
        from .ensemble import train_ensemble

        return train_ensemble(config, resume=resume)
    return Trainer(config, resume=resume).fit()
