"""``exported_onnx``: a model exported by ``modelkit export``, run by ONNX Runtime.

The checkpoint keeps the processor of the model it was exported from; ``model.safetensors``
holds the ONNX graph itself as bytes (no external data, nothing unpickled), and ``config.json``
the names of the graph's inputs. Models that score windows (text) export their per-window
logits; the maximum over an input's windows is taken here, as the original model does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import ConfigError
from .base import ModerationModel, pool_windows, whole_numbers
from .registry import register_model


@dataclass
class ExportedOnnxConfig:
    # Batch tensors the graph reads, in order.
    inputs: list[str]
    # Registry name of the model that was exported (a record, shown in the model card).
    exported_from: str
    # The graph outputs per-window logits, pooled here with the batch's window_rows.
    pools_windows: bool = False
    # Size of the graph in bytes, so that loading can allocate its buffer before the weights.
    graph_bytes: int = 0
    opset: int = 17

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("inputs: the graph reads at least one batch tensor")
        if self.graph_bytes < 1:
            raise ValueError(f"graph_bytes must be >= 1, got {self.graph_bytes}")


@register_model("exported_onnx")
class ExportedOnnxModel(ModerationModel):
    """An exported graph behind the ModerationModel interface; runs on the CPU in ONNX Runtime."""

    config_class = ExportedOnnxConfig
    exportable = False

    def __init__(self, config: ExportedOnnxConfig, num_labels: int, graph: bytes | None = None) -> None:
        super().__init__(config, num_labels)
        buffer = np.frombuffer(graph, dtype=np.uint8).copy() if graph else np.zeros(config.graph_bytes, np.uint8)
        self.register_buffer("graph", torch.from_numpy(buffer))
        self._session: Any = None

    @classmethod
    def minimum_parameters(cls, config: dict[str, Any], num_labels: int, processor: Any) -> int | None:
        sizes = whole_numbers(config, "graph_bytes")
        return None if sizes is None else sizes[0]

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        from .onnx_graph import self_contained

        super()._load_from_state_dict(*args, **kwargs)
        self._session = None  # a new graph arrived
        self_contained(self.graph.cpu().numpy().tobytes())  # refused at load, not at the first input

    def session(self):
        if self._session is None:
            from .onnx_graph import OnnxSession

            try:
                self._session = OnnxSession(self.graph.cpu().numpy().tobytes())
            except Exception as err:  # onnxruntime reports a bad graph with its own exception types
                raise ConfigError(f"model: cannot load the exported ONNX graph ({err})") from None
        return self._session

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        return pool_windows(*self.part_logits(**batch))

    def part_logits(self, **batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [name for name in self.config.inputs if name not in batch]
        if missing:
            raise ConfigError(f"model: the exported graph reads {missing}, which the processor's batch lacks")
        logits = torch.from_numpy(self.session()({name: batch[name].cpu() for name in self.config.inputs}))
        rows = batch["window_rows"].cpu() if self.config.pools_windows else torch.arange(len(logits))
        return logits.to(self.graph.device), rows.to(self.graph.device)
