"""Training an ``ensemble:`` recipe: each member recipe in turn, then one averaged model.

Members are trained by the ordinary :class:`~modelkit.training.trainer.Trainer` on the ensemble
recipe's data (same splits, same folds), each into ``OUTPUT_DIR/members/<k>-<recipe name>``.
The ensemble's thresholds are then fitted on the shared dev split and the result is saved as a
normal checkpoint in ``OUTPUT_DIR``; its ``metrics.json`` also lists every member's dev figures,
so the gain over the best member is visible.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import PartialState

from ..checkpoint import Checkpoint, load_checkpoint
from ..classifier import Classifier
from ..evaluation.metrics import compute_metrics, format_metrics
from ..evaluation.thresholds import best_f1_thresholds
from ..inference.runner import select_device
from ..models.ensemble import EnsembleModel
from ..policy import Policy
from .recipe import RunConfig, dump_run_config, load_member
from .trainer import Trainer, evaluate_test, load_splits, save_trained

logger = logging.getLogger(__name__)


def member_configs(config: RunConfig) -> list[RunConfig]:
    """The member recipes with the ensemble's data, taxonomy and categories put in.

    Members keep their own training seed (two runs of one recipe with different seeds make a
    useful ensemble) but split the data with the ensemble's seed, so they share dev and test.
    """
    assert config.ensemble is not None
    members = []
    for index, spec in enumerate(config.ensemble.members):
        member = load_member(spec)
        member.data = copy.deepcopy(config.data)
        member.data.split_seed = config.split_seed
        member.taxonomy = copy.deepcopy(config.taxonomy)
        member.categories = copy.deepcopy(config.categories)
        member.output_dir = str(Path(config.output_dir) / "members" / f"{index}-{spec.name}")
        members.append(member)
    return members


def train_ensemble(config: RunConfig, resume: bool = False) -> Path:
    """Train every member, assemble the ensemble, fit its thresholds on dev; return its directory."""
    if config.ensemble is None:
        raise ValueError("train_ensemble: the recipe has no ensemble block")
    started = time.perf_counter()
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    dump_run_config(config, output_dir / "run_config.yaml")

    members, member_metrics = [], []
    for member in member_configs(config):
        logger.info("ensemble member %s", member.output_dir)
        directory = Trainer(member, resume=resume).fit()
        checkpoint = load_checkpoint(directory)
        members.append(checkpoint)
        member_metrics.append({"checkpoint": str(directory), "dev": checkpoint.metrics.get("dev", {})})

    # Under torchrun every process trained its share of each member; one process assembles.
    state = PartialState()
    if state.is_main_process:
        _assemble(config, members, member_metrics, started)
    state.wait_for_everyone()
    return output_dir


def _assemble(config: RunConfig, members: list[Checkpoint], member_metrics: list[dict[str, Any]],
              started: float) -> None:
    assert config.ensemble is not None
    taxonomy = config.build_taxonomy()
    splits = load_splits(config, taxonomy)
    model, processor = EnsembleModel.from_members([m.model for m in members], [m.processor for m in members],
                                                  config.ensemble.weights)
    device = select_device()
    classifier = Classifier(model, processor, Policy(taxonomy), device=device)
    scores = classifier.predict_proba(splits.dev.inputs, batch_size=config.train.eval_batch_size)
    if config.train.tune_thresholds:
        thresholds = best_f1_thresholds(splits.dev.labels, scores)
    else:
        thresholds = np.full(len(taxonomy), 0.5)
    metrics: dict[str, Any] = {"dev": compute_metrics(splits.dev.labels, scores, thresholds, taxonomy.ids)}
    metrics["members"] = member_metrics
    metrics["train_seconds"] = time.perf_counter() - started
    logger.info("ensemble dev: %s", format_metrics(metrics["dev"]).splitlines()[0])
    output_dir = save_trained(config, model, processor, taxonomy, thresholds, metrics)
    if splits.test is not None:
        evaluate_test(output_dir, splits.test, device, config.train.eval_batch_size, config.train.num_workers)
