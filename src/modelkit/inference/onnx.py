"""ONNX Runtime as an inference backend for models that export to ONNX.

On a CPU, ONNX Runtime runs convolutional networks several times faster than eager PyTorch
(MobileNetV2, 2 cores, batch 32, model alone: 244 images/s against 50 in channels_last PyTorch
and 30 in NCHW; end to end with decoding see ``scripts/benchmark_image.py``). A model opts in with
``ModerationModel.onnx_on_cpu``; the runner then exports it once, in memory, on the
first batch, checks the exported graph against PyTorch on that batch and uses it from then on.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch

from ..config import ConfigError

if TYPE_CHECKING:
    from ..models.base import ModerationModel
    from ..models.exported import ExportedOnnxModel

logger = logging.getLogger(__name__)
# Exported and eager outputs differ by float rounding only; more means a broken export.
PARITY_TOLERANCE = 1e-3


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(model: torch.nn.Module, batch: dict[str, torch.Tensor], forward: Any = None,
                opset: int = 17) -> bytes:
    """``forward(**batch)`` (default ``model(**batch)``) as an ONNX graph. Every axis of an
    integer input (token ids, masks, offsets) is dynamic, and the batch axis of the others and
    of the logits: one graph serves every batch size and text length."""
    names = list(batch)
    forward = forward or model

    class Positional(torch.nn.Module):  # the exporter passes inputs by position
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return forward(**dict(zip(names, tensors)))

    axes = {name: ({axis: f"{name}_{axis}" for axis in range(tensor.dim())} if not tensor.is_floating_point()
                   else {0: "batch"}) for name, tensor in batch.items()}
    axes["logits"] = {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(Positional().eval(), tuple(batch.values()), buffer, input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False)
    return buffer.getvalue()


def _graph_tensors(graph: Any) -> Iterator[Any]:
    """Every tensor a graph stores: initializers, sparse ones, node attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _attribute_tensors(node)


def _attribute_tensors(node: Any) -> Iterator[Any]:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        for sparse in [attribute.sparse_tensor] * attribute.HasField("sparse_tensor") + list(attribute.sparse_tensors):
            yield from (sparse.values, sparse.indices)
        for subgraph in [attribute.g] * attribute.HasField("g") + list(attribute.graphs):
            yield from _graph_tensors(subgraph)


def external_data(model: Any) -> list[tuple[Any, str]]:
    """(tensor, location) of every tensor of an ONNX ModelProto whose values live in another file."""
    import onnx

    tensors = list(_graph_tensors(model.graph))
    for function in model.functions:
        for node in function.node:
            tensors += _attribute_tensors(node)
    found = []
    for tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            found.append((tensor, next((entry.value for entry in tensor.external_data if entry.key == "location"), "")))
    return found


def self_contained(graph: bytes) -> bytes:
    """``graph`` after checking that it reads no other file. ONNX Runtime resolves a tensor's
    external data against the working directory when a graph comes as bytes, so a checkpoint's
    graph could read any file the process can: such graphs are refused."""
    try:
        import onnx
    except ImportError:
        raise ConfigError("model: checking an ONNX graph needs onnx (pip install 'modelkit[onnx]')") from None
    try:
        model = onnx.load_model_from_string(graph)
    except Exception as err:  # protobuf's DecodeError and others
        raise ConfigError(f"model: not an ONNX graph ({err})") from None
    outside = external_data(model)
    if outside:
        raise ConfigError(f"model: the ONNX graph keeps tensor {outside[0][0].name!r} as external data in "
                          f"{outside[0][1]!r}; a stored graph must hold its own weights")
    return graph


def read_graph_file(path: str | Path) -> bytes:
    """An .onnx file as one self-contained graph: tensors it keeps as external data are read from
    files beside it (never from outside its folder, even through a link) and embedded."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    path = Path(path)
    model = onnx.load_model(str(path), load_external_data=False)
    folder = path.resolve().parent
    for tensor, location in external_data(model):
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or ".." in Path(location).parts or folder not in target.parents:
            raise ConfigError(f"model.path: {path} keeps tensor {tensor.name!r} as external data in {location!r}, "
                              f"outside its folder {folder}; refused")
    if external_data(model):
        load_external_data_for_model(model, str(folder))
    return model.SerializeToString()


class OnnxSession:
    """An ONNX Runtime session over a graph held in memory (never a path; no external data)."""

    def __init__(self, graph: bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        self_contained(graph)

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch: dict[str, Any]) -> np.ndarray:
        feeds = {name: np.ascontiguousarray(_numpy(batch[name])) for name in self.input_names}
        return self.session.run(None, feeds)[0]


def _numpy(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def export_model(model: ModerationModel, batch: dict[str, torch.Tensor], opset: int = 17) -> ExportedOnnxModel:
    """``model`` as an :class:`ExportedOnnxModel`, traced on ``batch``. A model that scores windows
    exports its per-window logits: how many windows an input has is data, not shape, so the
    pooling over them stays outside the graph."""
    from ..models.exported import ExportedOnnxConfig, ExportedOnnxModel

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
    if model.scores_parts or model.registry_name in ("ensemble", "exported_onnx"):
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
