"""Batch inference above the classifier: sources (files, folders, datasets, iterables) in, a
resumable folder of shards out, locally, one process per GPU, or on a Ray cluster.

It drives a :class:`~modelkit.Classifier` through its public methods (``stream_outputs``,
``data_config``, ``fingerprint``) and writes the columns of the one output path
(:class:`~modelkit.outputs.Outputs`).
"""

from .engine import RunSummary, predict_files
from .shards import read_predictions

__all__ = ["RunSummary", "predict_files", "read_predictions"]
