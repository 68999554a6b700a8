"""ONNX graphs: export a module, check a graph holds all of its data, run it in ONNX Runtime.

The low level under :class:`~modelkit.models.exported.ExportedOnnxModel`, the ``onnx`` image
model and the runner's ONNX backend (:mod:`modelkit.inference.onnx`).
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..config import ConfigError

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
