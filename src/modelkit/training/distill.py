"""Knowledge distillation: ``modelkit distill TEACHER_CHECKPOINT STUDENT_RECIPE``.

The student recipe is trained as usual, except that its training targets are the teacher's
scores: over the labelled training rows (mixed with their gold labels, ``distill.gold_weight``)
and over unlabelled inputs (``distill.unlabelled``, ``--unlabelled``), which only the teacher
labels. Dev and test keep their gold labels, so early stopping, thresholds and the reported
figures judge the student against the truth, never against the teacher. ``distill.copies``
adds perturbed copies of the training rows (the processor's ``transfer_copy``), which the
teacher labels like unlabelled rows: its scores on rows it was trained on are close to their
gold labels, on perturbed copies they carry more of what it knows.

The teacher scores every transfer row once per run; the scores are cached in
``OUTPUT_DIR/teacher_scores.safetensors`` (and its dev scores, which the model card reports, in
``teacher_dev_scores.safetensors``) under a key of the teacher's weights and the rows,
so re-running a student with other training settings does not score them again.

Under ``--cv K`` fold ``k``'s student learns from ``TEACHER/fold-k``, which must have been
trained on the same folds (checked against its ``run_config.yaml``): a teacher that saw the
student's test fold would leak it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
from ..checkpoint import CheckpointError
from ..classifier import Classifier
from ..config import ConfigError
from ..data.records import DataError, Records, read_records, take_rows
from ..evaluation.metrics import compute_metrics
from ..processing import create_processor
from .cv import check_held_out, cross_validate
from .losses import teacher_targets
from .recipe import RunConfig, load_run_config
from .trainer import Splits, Trainer

logger = logging.getLogger(__name__)

SCORES_FILE = "teacher_scores.safetensors"  # the transfer set's
DEV_SCORES_FILE = "teacher_dev_scores.safetensors"


def distill(
    teacher: str | Path,
    config: str | Path | dict[str, Any] | RunConfig,
    unlabelled: list[str | Path] | None = None,
    overrides: list[str] | None = None,
    data_root: str | Path | None = None,
    folds: int | None = None,
) -> Path | dict[str, Any]:
    """Train the student ``config`` on the scores of the ``teacher`` checkpoint.

    Returns the student's checkpoint directory, or with ``folds`` the cross-validation summary
    (:func:`~modelkit.training.cv.cross_validate`), fold ``k`` taught by ``teacher/fold-k``.
    """
    # A copy: --unlabelled files are added to it, and the caller's RunConfig stays as it was.
    config = copy.deepcopy(config) if isinstance(config, RunConfig) else load_run_config(config, overrides, data_root)
    if config.ensemble is not None:
        raise ConfigError("distill: the student recipe is an ensemble; distil into one model (e.g. ngram)")
    config.distill.unlabelled += [str(path) for path in unlabelled or []]
    teacher = Path(teacher)
    if folds is None:
        return DistillTrainer(config, teacher).fit()
    return cross_validate(config, folds, fit=lambda run: DistillTrainer(run, teacher / f"fold-{run.data.fold}").fit())


class DistillTrainer(Trainer):
    """A :class:`Trainer` whose training split is the transfer set with the teacher's targets."""

    def __init__(self, config: RunConfig, teacher: Path) -> None:
        super().__init__(config)
        self.teacher_dir = teacher
        if config.data.folds:
            check_held_out(teacher, config)
        try:
            self.teacher = Classifier.load(teacher)
        except (CheckpointError, FileNotFoundError) as err:
            raise ConfigError(f"distill: teacher {teacher}: {err}") from None
        missing = [c for c in self.taxonomy.ids if c not in self.teacher.categories]
        if missing:
            raise ConfigError(f"distill: the teacher {teacher} has no score for {', '.join(missing)} "
                              f"(it scores {', '.join(self.teacher.categories)})")
        self.columns = [self.teacher.categories.index(c) for c in self.taxonomy.ids]

    def load_splits(self) -> Splits:
        splits = super().load_splits()
        settings = self.config.distill
        labelled = list(splits.train.inputs)
        unlabelled = [value for records in self._unlabelled(splits) for value in records.inputs]
        unlabelled += self._copies(labelled)
        inputs = labelled + unlabelled
        scores = self._teacher_scores(inputs, SCORES_FILE)
        targets = teacher_targets(scores, self.cfg.loss, settings.temperature)
        gold = splits.train.labels.astype(np.float32)
        targets[:len(labelled)] = settings.gold_weight * gold + (1 - settings.gold_weight) * targets[:len(labelled)]
        modalities = list(splits.train.columns)
        columns = ({modalities[0]: inputs} if len(modalities) == 1 else
                   {m: [value[m] for value in inputs] for m in modalities})
        transfer = Records(columns, targets, list(splits.train.ids) + [f"transfer-{k}" for k in range(len(unlabelled))],
                           None, f"{splits.train.source} + {len(unlabelled)} rows the teacher labels")
        teacher_dev = self._teacher_scores(list(splits.dev.inputs), DEV_SCORES_FILE)
        dev = compute_metrics(splits.dev.labels, teacher_dev, self.teacher.threshold_vector[self.columns],
                              self.taxonomy.ids)
        self.extra = {"distilled_from": {
            "teacher": str(self.teacher_dir),
            "teacher_model": self.teacher.model.registry_name,
            "teacher_fingerprint": self.teacher.fingerprint(),
            "teacher_dev": {k: dev[k] for k in ("accuracy", "macro_f1", "micro_f1", "macro_roc_auc") if k in dev},
            "labelled_rows": len(labelled),
            "unlabelled_rows": len(unlabelled) - len(labelled) * settings.copies,
            "copies": settings.copies,
            "unlabelled_files": list(settings.unlabelled),
            "unlabelled_left_out": self.left_out,
            "gold_weight": settings.gold_weight,
            "temperature": settings.temperature,
        }}
        logger.info("distill: %d labelled + %d teacher-labelled rows; teacher dev %s", len(labelled), len(unlabelled),
                    {k: round(v, 4) for k, v in self.extra["distilled_from"]["teacher_dev"].items()})
        return Splits(transfer, splits.dev, splits.test)

    def _unlabelled(self, splits: Splits) -> list[Records]:
        """The unlabelled files' usable rows, less any input that is also a dev or test input (the
        teacher's view of a held-out row must not reach the student)."""
        settings, data = self.config.distill, copy.deepcopy(self.config.data)
        data.format = None  # each file by its own extension
        held_out = {_key(value) for records in (splits.dev, splits.test) if records is not None
                    for value in records.inputs}
        out, rng = [], np.random.default_rng(self.config.split_seed)
        self.left_out = 0
        for path in settings.unlabelled:
            if not Path(path).is_file():
                raise DataError(f"distill.unlabelled: {path}: no such file")
            records = read_records(path, data, None, require_labels=False)
            keep = [row for row, value in enumerate(records.inputs)
                    if records.problem(row) is None and _key(value) not in held_out]
            if len(keep) < len(records):
                logger.warning("%s: left out %d unlabelled row(s) that are invalid or also in dev/test", path,
                               len(records) - len(keep))
                self.left_out += len(records) - len(keep)
            out.append(take_rows(records, keep))
        total = sum(len(r) for r in out)
        if settings.max_unlabelled is not None and total > settings.max_unlabelled:
            chosen = np.sort(rng.choice(total, settings.max_unlabelled, replace=False))
            starts = np.cumsum([0] + [len(r) for r in out])
            out = [take_rows(r, chosen[(chosen >= lo) & (chosen < hi)] - lo) for r, lo, hi in
                   zip(out, starts[:-1], starts[1:])]
        return out

    def _copies(self, inputs: list[Any]) -> list[Any]:
        """``distill.copies`` perturbed copies of every labelled input, seeded."""
        copies = self.config.distill.copies
        if not copies:
            return []
        name, params = self.config.processor_kwargs()
        processor = create_processor(name, **params)
        rng = random.Random(self.config.split_seed)
        out = [processor.transfer_copy(value, rng) for _ in range(copies) for value in inputs]
        if inputs and out[0] is None:
            raise ConfigError(f"distill.copies: processor {name} makes no transfer copies; set distill.copies: 0")
        return out

    def _teacher_scores(self, inputs: list[Any], filename: str) -> np.ndarray:
        """The teacher's scores for ``inputs`` (student category order), from the cache file
        ``filename`` if it holds this teacher's scores of exactly these rows."""
        from safetensors.numpy import load_file, save_file

        digest = hashlib.sha256(self.teacher.fingerprint().encode())
        for value in inputs:
            digest.update(_key(value).encode("utf-8", "surrogatepass") + b"\0")
        key = digest.hexdigest()
        cache = self.output_dir / filename
        if cache.is_file():
            from safetensors import safe_open

            try:
                with safe_open(str(cache), "np") as handle:
                    if (handle.metadata() or {}).get("key") == key:
                        scores = load_file(str(cache))["scores"]
                        if scores.shape == (len(inputs), len(self.columns)):
                            logger.info("distill: teacher scores from %s", cache)
                            return scores
            except Exception as err:  # an unreadable cache is only a cache: score again
                logger.warning("distill: ignoring %s (%s)", cache, err)
        logger.info("distill: the teacher scores %d rows", len(inputs))
        scores = self.teacher.predict_proba(inputs, batch_size=self.cfg.eval_batch_size, progress=True)
        scores = np.ascontiguousarray(scores[:, self.columns], dtype=np.float32)
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            partial = cache.with_name(cache.name + ".tmp")  # a kill mid-write leaves no half cache
            save_file({"scores": scores}, str(partial), metadata={"key": key})
            os.replace(partial, cache)
        return scores


def _key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
