"""ONNX Runtime as an inference backend for models that export to ONNX.

On a CPU, ONNX Runtime runs convolutional networks several times faster than eager PyTorch
(MobileNetV2, 2 cores, batch 32, model alone: 244 images/s against 50 in channels_last PyTorch
and 30 in NCHW; end to end with decoding see ``scripts/benchmark_image.py``). A model opts in with
``ModerationModel.onnx_on_cpu``; the runner then exports it once, in memory, on the
first batch, checks the exported graph against PyTorch on that batch and uses it from then on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config import ConfigError
from ..models.exported import ExportedOnnxConfig, ExportedOnnxModel
from ..models.onnx_graph import PARITY_TOLERANCE, export_onnx, onnxruntime_available

if TYPE_CHECKING:
    from ..models.base import ModerationModel

logger = logging.getLogger(__name__)


def export_model(model: ModerationModel, batch: dict[str, torch.Tensor], opset: int = 17) -> ExportedOnnxModel:
    """``model`` as an :class:`ExportedOnnxModel`, traced on ``batch``. A model that scores windows
    exports its per-window logits: how many windows an input has is data, not shape, so the
    pooling over them stays outside the graph."""
    inputs = [name for name in batch if not (model.pools_windows and name == "window_rows")]
    forward = model.window_logits if model.pools_windows else None
    graph = export_onnx(model, {name: batch[name] for name in inputs}, forward, opset)
    config = ExportedOnnxConfig(inputs=inputs, exported_from=model.registry_name, pools_windows=model.pools_windows,
                                graph_bytes=len(graph), opset=opset)
    return ExportedOnnxModel(config, model.num_labels, graph)


def exported_session(model: ModerationModel, batch: dict[str, torch.Tensor]) -> ExportedOnnxModel | None:
    """``model`` exported to run in ONNX Runtime, checked against PyTorch on ``batch``; None,
    with a warning, when export or parity fails. Hold it outside any module (a model that kept it
    as an attribute would gain its graph as weights)."""
    try:
        exported = export_model(model, batch)
        with torch.inference_mode():
            got = exported(**batch).numpy()
    except Exception as err:  # exporters fail in many ways; eager PyTorch still works
        logger.warning("ONNX export of %s failed, running it in PyTorch: %s", type(model).__name__, err)
        return None
    with torch.inference_mode():
        eager = model(**batch).float().numpy()
    gap = float(np.max(np.abs(got - eager))) if eager.size else 0.0
    if not gap <= PARITY_TOLERANCE * max(1.0, float(np.max(np.abs(eager))) if eager.size else 1.0):
        logger.warning("ONNX export of %s differs from PyTorch by %.2g, running it in PyTorch", type(model).__name__, gap)
        return None
    return exported


# modelkit export promises this much (max abs logit difference) on inputs it did not trace.
EXPORT_TOLERANCE = 1e-4


def export_checkpoint(directory: str | Path, output: str | Path, opset: int = 17,
                      overwrite: bool = False) -> tuple[Path, float]:
    """Export a checkpoint's model to ONNX as a new checkpoint directory (model ``exported_onnx``,
    same processor, taxonomy, thresholds and calibration). Returns the directory and the largest
    logit difference from PyTorch on inputs other than those traced, which must be <= 1e-4.
    ``output`` must be a new or empty folder unless ``overwrite``; it is written whole or not at
    all (:func:`~modelkit.checkpoint.write_checkpoint_folder`)."""
    from ..checkpoint import Checkpoint, load_checkpoint, write_checkpoint_folder

    if not onnxruntime_available():
        raise ConfigError("export: needs onnx and onnxruntime (pip install 'modelkit[onnx]')")
    output = Path(output)
    checkpoint = load_checkpoint(directory)
    model, processor = checkpoint.model.eval(), checkpoint.processor.eval()
    if not model.exportable:
        raise ConfigError(f"export: model {model.registry_name!r} cannot be exported to ONNX; export the "
                          "checkpoints it is made of (a video model's frame model, an ensemble's members)")
    examples = processor.example_inputs()
    exported = export_model(model, processor(examples), opset)
    check = processor(examples[::-1] + examples[:1])
    with torch.inference_mode():
        gap = float(np.max(np.abs(exported(**check).numpy() - model(**check).float().numpy())))
    if not gap <= EXPORT_TOLERANCE:
        raise ConfigError(f"export: the ONNX graph differs from PyTorch by {gap:.3g} (more than {EXPORT_TOLERANCE}); "
                          "not written")
    extra = {**checkpoint.extra, "exported_from": {"model": model.registry_name, "checkpoint": str(directory),
                                                   "onnx_opset": opset, "max_abs_logit_gap": gap}}
    write_checkpoint_folder(output, Checkpoint(exported, processor, checkpoint.policy, checkpoint.metrics, extra,
                                               checkpoint.calibration), source=directory, overwrite=overwrite)
    return output, gap
