"""Knowledge distillation: ``modelkit distill TEACHER_CHECKPOINT STUDENT_RECIPE``.

The student recipe is trained as usual, except that its training targets are the teacher's
scores: over the labelled training rows (mixed with their gold labels, ``distill.gold_weight``)
and over unlabelled inputs (``distill.unlabelled``, ``--unlabelled``), which only the teacher
labels. Dev and test keep their gold labels, so early stopping, thresholds and the reported
figures judge the student against the truth, never against the teacher. ``distill.copies``
adds perturbed copies of the training rows (the processor's ``transfer_copy``), which the
teacher labels like unlabelled rows: its scores on rows it was trained on are close to their
gold labels, on perturbed copies they carry more of what it knows.

The teacher scores each row once: its scores are kept in ``OUTPUT_DIR/teacher_scores.safetensors``,
one per distinct input (transfer rows and the dev rows the model card reports on), for the
teacher's weights. A rerun with other training settings, more copies or more unlabelled files
scores only the rows it has not seen.

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

SCORES_FILE = "teacher_scores.safetensors"


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
        reads = list(config.data.input_columns)
        if self.teacher.processor.modality not in reads:
            raise ConfigError(f"distill: the teacher {teacher} reads {self.teacher.processor.modality} inputs, the "
                              f"student recipe reads {', '.join(reads)}; a teacher must score the student's inputs")
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
        scores = self._teacher_scores(inputs + list(splits.dev.inputs))
        scores, teacher_dev = scores[:len(inputs)], scores[len(inputs):]
        targets = teacher_targets(scores, self.cfg.loss, settings.temperature)
        gold = splits.train.labels.astype(np.float32)
        targets[:len(labelled)] = settings.gold_weight * gold + (1 - settings.gold_weight) * targets[:len(labelled)]
        modalities = list(splits.train.columns)
        columns = ({modalities[0]: inputs} if len(modalities) == 1 else
                   {m: [value[m] for value in inputs] for m in modalities})
        transfer = Records(columns, targets, list(splits.train.ids) + [f"transfer-{k}" for k in range(len(unlabelled))],
                           None, f"{splits.train.source} + {len(unlabelled)} rows the teacher labels")
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

    def _teacher_scores(self, inputs: list[Any]) -> np.ndarray:
        """The teacher's scores for ``inputs`` (student category order): those of inputs already
        in the cache file, the rest scored now and added to it."""
        cache = self.output_dir / SCORES_FILE
        fingerprint = self.teacher.fingerprint()
        digests = [_digest(value) for value in inputs]
        known_digests, known = _read_cache(cache, fingerprint, len(self.teacher.categories))
        row_of = {digest.tobytes(): k for k, digest in enumerate(known_digests)}
        new = []  # one per distinct input not in the cache: a repeated text is scored once
        for k, digest in enumerate(digests):
            if digest not in row_of:
                row_of[digest] = len(known) + len(new)
                new.append(k)
        if new:
            cached = sum(1 for d in digests if row_of[d] < len(known))
            logger.info("distill: the teacher scores %d rows (%d cached)", len(new), cached)
            known = self._score(inputs, new, digests, known_digests, known, cache, fingerprint)
        else:
            logger.info("distill: teacher scores of all %d rows from %s", len(inputs), cache)
        return np.ascontiguousarray(known[[row_of[d] for d in digests]][:, self.columns])

    def _score(self, inputs: list[Any], new: list[int], digests: list[bytes], known_digests: np.ndarray,
               known: np.ndarray, cache: Path, fingerprint: str) -> np.ndarray:
        """The cached scores followed by the teacher's scores of ``inputs[new]``, scored chunk by
        chunk, the cache rewritten after each: a run killed while a slow teacher scores loses one
        chunk, not hours."""
        from tqdm.auto import tqdm

        with tqdm(total=len(new), desc="teacher", unit="input", disable=not self.is_main) as bar:
            for start in range(0, len(new), _CHUNK):
                rows = new[start:start + _CHUNK]
                scores = self.teacher.predict_proba([inputs[k] for k in rows], batch_size=self.cfg.eval_batch_size)
                known = np.concatenate([known, scores.astype(np.float32)])
                known_digests = np.concatenate([known_digests, _as_array([digests[k] for k in rows])])
                if self.is_main:
                    _write_cache(cache, fingerprint, known_digests, known)
                bar.update(len(rows))
        return known


_CHUNK = 4096  # inputs the teacher scores between two cache writes
_DIGEST = 16  # bytes of blake2b per input: collisions are out of reach at any data size


def _digest(value: Any) -> bytes:
    return hashlib.blake2b(_key(value).encode("utf-8", "surrogatepass"), digest_size=_DIGEST).digest()


def _as_array(digests: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, _DIGEST)


def _read_cache(path: Path, fingerprint: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The (digests, scores) in a cache file written for this teacher; empty when there is none,
    it belongs to other weights, or it cannot be read (it is only a cache: score again)."""
    empty = np.zeros((0, _DIGEST), dtype=np.uint8), np.zeros((0, width), dtype=np.float32)
    if not path.is_file():
        return empty
    from safetensors import safe_open

    try:
        with safe_open(str(path), "np") as handle:
            if (handle.metadata() or {}).get("teacher") != fingerprint:
                logger.info("distill: %s holds another teacher's scores; scoring again", path)
                return empty
            digests, scores = handle.get_tensor("digests"), handle.get_tensor("scores")
    except Exception as err:
        logger.warning("distill: ignoring %s (%s)", path, err)
        return empty
    if digests.shape != (len(scores), _DIGEST) or scores.shape[1:] != (width,):
        logger.warning("distill: ignoring %s (shapes %s and %s)", path, digests.shape, scores.shape)
        return empty
    return digests, scores


def _write_cache(path: Path, fingerprint: str, digests: np.ndarray, scores: np.ndarray) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")  # a kill mid-write leaves the old cache whole
    save_file({"digests": np.ascontiguousarray(digests), "scores": np.ascontiguousarray(scores)}, str(partial),
              metadata={"teacher": fingerprint})
    os.replace(partial, path)


def _key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
