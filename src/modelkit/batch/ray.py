"""``modelkit predict --engine ray``: the same shards, scored by a pool of Ray actors.

The driver claims the output folder and lists the shards no run has finished; Ray Data hands
them to an actor pool (``map_batches``, one shard per call), and each actor, holding one loaded
classifier (on its own GPU with ``gpus_per_actor``), runs the local engine on its shard. Output
format, manifest, atomic parts and resumption are therefore the local engine's. On a cluster the
checkpoint, the input and the output folder must be on storage every node sees.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..config import ConfigError
from .engine import RunSummary, open_run
from .shards import OutputFormat


class _ShardScorer:
    """A Ray actor: one classifier, scoring the shards it is handed."""

    def __init__(self, checkpoint: str, source: str, output: str, options: dict[str, Any],
                 runner: dict[str, Any]) -> None:
        from ..classifier import load

        self.classifier = load(checkpoint, **runner)
        self.source, self.output, self.options = source, output, options

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[int]]:
        from .engine import predict_files

        done: dict[str, list[int]] = {"shard": [], "scored": [], "errors": []}
        for shard in batch["shard"]:
            summary = predict_files(self.classifier, self.source, self.output, shards=[int(shard)], progress=False,
                                    **self.options)
            done["shard"].append(int(shard))
            done["scored"].append(summary.scored)
            done["errors"].append(summary.errors)
        return done


def predict_files_with_ray(
    checkpoint: str | Path,
    source: str | Path,
    output: str | Path,
    *,
    output_format: OutputFormat = "parquet",
    input_field: str | None = None,
    id_field: str | None = None,
    batch_size: int = 256,
    max_batch_tokens: int | None = None,
    shard_size: int | None = None,
    overwrite: bool = False,
    actors: int = 2,
    gpus_per_actor: float = 0.0,
    cpus_per_actor: float = 1.0,
    backend: str = "auto",
    precision: str = "auto",
    address: str | None = None,
) -> RunSummary:
    """Score ``source`` (a file or folder path) into ``output`` with ``actors`` Ray actors, each
    holding the checkpoint; the output is what :func:`~.engine.predict_files` writes."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'modelkit[ray]'") from None
    from ..classifier import load

    if not isinstance(source, (str, Path)):
        raise ConfigError("--engine ray reads a file or folder path that every Ray node can open")
    if actors < 1 or gpus_per_actor < 0:
        raise ConfigError(f"Ray: need actors >= 1 and gpus_per_actor >= 0, got {actors} and {gpus_per_actor}")
    started = time.perf_counter()
    classifier = load(checkpoint, device="cpu", backend="torch")
    run = open_run(classifier, source, output, output_format=output_format, input_field=input_field,
                   id_field=id_field, shard_size=shard_size, overwrite=overwrite)
    pending = run.pending_shards()
    options = {"output_format": output_format, "input_field": input_field, "id_field": id_field,
               "batch_size": batch_size, "max_batch_tokens": max_batch_tokens, "shard_size": run.shard_size}
    runner = {"device": "cuda" if gpus_per_actor > 0 else "cpu", "backend": backend, "precision": precision}
    scored = errors = 0
    if pending:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        shards = ray.data.from_items([{"shard": shard} for shard in pending])
        done = shards.map_batches(
            _ShardScorer, batch_size=1, concurrency=min(actors, len(pending)), num_cpus=cpus_per_actor,
            num_gpus=gpus_per_actor,
            fn_constructor_kwargs={"checkpoint": str(Path(checkpoint).resolve()),
                                   "source": str(Path(source).resolve()), "output": str(Path(output).resolve()),
                                   "options": options, "runner": runner},
        ).take_all()
        scored = sum(row["scored"] for row in done)
        errors = sum(row["errors"] for row in done)
    complete = run.close_manifest()
    return RunSummary(str(output), run.rows, scored, errors, run.rows - scored, time.perf_counter() - started,
                      complete, run.duplicates)
