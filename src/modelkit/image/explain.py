"""Where in a picture a category's score comes from: Grad-CAM for convolutional networks,
occlusion for everything else (ONNX peer models, backbones without feature maps).

:func:`explain_image` is the ``image`` modality's explainer (see :mod:`modelkit.explain`). Each
picture goes through the classifier's own processor (decode, resize, centre crop), so the heat
map is computed on exactly what the model saw, then mapped back onto the picture as given:

* **Grad-CAM** (Selvaraju et al. 2017), in plain PyTorch hooks: the last convolutional feature
  map of the torch module (``classifier.model``, also when inference runs in ONNX Runtime), each
  channel weighted by the mean gradient of the category's logit, summed, rectified. One forward
  and one backward per batch of pictures.
* **Occlusion**: grey squares (the processor's mean colour: zero after normalisation) slid over
  a grid; a place's heat is how much hiding it lowers the category's logit. All of a picture's
  occluded copies are scored in one batched call.

An item is ``{"category", "weight", "box", "heatmap", "method"}``: ``box`` ``[x0, y0, x1, y1]``
is the hottest region (the connected part of the map above half its peak, around the peak) in
the original picture's pixels; ``weight`` is how much the category's logit drops when that box
is greyed out; ``heatmap`` is a coarse grid (``grid`` cells on the shorter side) of values in
[0, 1] over the whole picture (zero where the centre crop cut the picture off).

Models whose processor is not the ``image`` one (``ocr_text`` reads text in pictures and shows
the OCR lines as its evidence) get no items, and so does a picture that cannot be decoded (a
warning is logged: evidence is extra, never a reason to fail).
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence
from weakref import WeakKeyDictionary

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from ..processing import InputError
from .decode import read_bytes
from .models import OnnxImageClassifier
from .processors import ImageProcessor, _pair

if TYPE_CHECKING:
    from ..classifier import Classifier

logger = logging.getLogger(__name__)

# Region of the map around the peak that makes the box: cells above this share of the peak.
BOX_LEVEL = 0.5
# The box search runs on the map shrunk to at most this many cells a side.
_BOX_RESOLUTION = 64
_POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LPPool2d)
# The feature layer Grad-CAM reads, per model and input size (None: the model has none).
_LAYERS: WeakKeyDictionary[nn.Module, dict[tuple[int, ...], str | None]] = WeakKeyDictionary()


@dataclass
class _View:
    """One picture as the model saw it, and where that lies in the picture as given."""

    pixels: torch.Tensor  # uint8 [3, height, width], the model's input before normalisation
    original: tuple[int, int]  # (width, height) of the picture as given (EXIF orientation applied)
    resized: tuple[int, int]  # (width, height) after the processor's resize
    offset: tuple[int, int]  # (left, top) of the crop in the resized picture (negative: padded)

    @property
    def input_size(self) -> tuple[int, int]:
        return int(self.pixels.shape[2]), int(self.pixels.shape[1])

    def to_original(self, box: Sequence[float]) -> list[int]:
        """A box in model-input pixels -> the same place in the original picture's pixels."""
        (width, height), (rw, rh), (left, top) = self.original, self.resized, self.offset
        x0, y0, x1, y1 = box
        sx, sy = width / rw, height / rh
        x0, x1 = (min(max(x + left, 0), rw) * sx for x in (x0, x1))
        y0, y1 = (min(max(y + top, 0), rh) * sy for y in (y0, y1))
        return [math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)]

    def on_picture(self, heat: np.ndarray, grid: int) -> list[list[float]]:
        """A heat map over the model's input -> a coarse grid over the whole original picture."""
        (width, height), (rw, rh), (left, top) = self.original, self.resized, self.offset
        frame = np.zeros((rh, rw), dtype=np.float32)
        iw, ih = self.input_size
        full = _resize_map(heat, ih, iw)
        # The crop's pixels that lie inside the resized picture (a padded crop has some outside).
        x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + iw, rw), min(top + ih, rh)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = full[y0 - top:y1 - top, x0 - left:x1 - left]
        rows, cols = _grid_shape(width, height, grid)
        coarse = np.asarray(Image.fromarray(frame, mode="F").resize((cols, rows), Image.Resampling.BOX))
        peak = float(coarse.max())
        coarse = coarse / peak if peak > 0 else np.zeros_like(coarse)
        return [[round(float(v), 4) for v in row] for row in np.clip(coarse, 0.0, 1.0)]


def _grid_shape(width: int, height: int, grid: int) -> tuple[int, int]:
    """(rows, cols): ``grid`` cells on the shorter side, at most twice as many on the longer."""
    if width >= height:
        return grid, min(2 * grid, max(grid, round(grid * width / height)))
    return min(2 * grid, max(grid, round(grid * height / width))), grid


def _resize_map(heat: np.ndarray, height: int, width: int) -> np.ndarray:
    if heat.shape == (height, width):
        return heat.astype(np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def _original_size(value: Any) -> tuple[int, int]:
    """(width, height) of the picture as given, EXIF orientation applied, read from the header."""
    if isinstance(value, Image.Image):
        return value.size
    if isinstance(value, np.ndarray):
        return int(value.shape[1]), int(value.shape[0])
    with Image.open(io.BytesIO(read_bytes(value) or b"")) as image:
        width, height = image.size
        if image.getexif().get(0x0112) in (5, 6, 7, 8):  # stored sideways: shown turned a quarter
            width, height = height, width
    return width, height


def _view(processor: ImageProcessor, value: Any) -> _View:
    resized = processor.load(value)
    # The resized picture again: load() leaves it as it is, then the crop (and JPEG round trip)
    # are the processor's own, so the pixels are exactly what inference scores.
    pixels = processor.decode_value(resized, None, None)
    crop = _pair(processor.config.crop, "crop")
    offset = (0, 0) if crop is None else ((resized.width - crop[1]) // 2, (resized.height - crop[0]) // 2)
    try:
        original = _original_size(value)
    except Exception:  # noqa: BLE001 - a source Pillow opens only through the decoder: use what it gave
        original = resized.size
    return _View(pixels, original, resized.size, offset)


# --------------------------------------------------------------------------------------------
# Grad-CAM
# --------------------------------------------------------------------------------------------
def feature_layer(model: nn.Module, batch: dict[str, torch.Tensor]) -> str | None:
    """The name of the module whose output is the model's last convolutional feature map
    (``[N, C, H, W]``, ``H * W > 1``, not a pooling layer), found by running one picture through
    it; None when the model has none (a vision transformer's tokens, an ONNX graph)."""
    key = tuple(batch["pixel_values"].shape[1:])
    known = _LAYERS.setdefault(model, {})
    if key in known:
        return known[key]
    fired: list[tuple[str, torch.Size, bool]] = []
    conv_channels: set[int] = set()

    def record(name: str, module: nn.Module, args: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            return
        if isinstance(module, nn.Conv2d) and output.ndim == 4:
            conv_channels.add(int(output.shape[1]))
        fired.append((name, output.shape, isinstance(module, _POOLING)))

    handles = [module.register_forward_hook(lambda m, a, o, n=name: record(n, m, a, o))
               for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(**{key_: value[:1] for key_, value in batch.items()})
    finally:
        for handle in handles:
            handle.remove()
    chosen = None
    for position, (name, shape, pooling) in enumerate(fired):
        if len(shape) == 4 and shape[2] * shape[3] > 1 and not pooling and int(shape[1]) in conv_channels:
            chosen = (position, name)
    # A feature map that becomes tokens later (a hybrid transformer's stem) is not the one to read.
    if chosen is not None and any(len(shape) == 3 for _, shape, _ in fired[chosen[0] + 1:]):
        chosen = None
    known[key] = None if chosen is None else chosen[1]
    return known[key]


def _gradcam(model: nn.Module, layer: str, batch: dict[str, torch.Tensor], columns: list[list[int]]
             ) -> tuple[list[list[np.ndarray]], torch.Tensor]:
    """Grad-CAM maps (feature-map resolution, [0, 1]) of each picture's wanted logit columns, and
    the logits."""
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        # A leaf of its own: gradients reach it even where the layers before it are frozen.
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf + 0  # not the leaf itself, which an in-place activation after it would refuse

    handle = model.get_submodule(layer).register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(**batch).float()
    finally:
        handle.remove()
    features = captured[-1]
    maps: list[list[np.ndarray]] = [[None] * len(wanted) for wanted in columns]  # type: ignore[list-item]
    for column in sorted({c for wanted in columns for c in wanted}):
        rows = [i for i, wanted in enumerate(columns) if column in wanted]
        (grads,) = torch.autograd.grad(logits[rows, column].sum(), features, retain_graph=True)
        weights = grads[rows].float().mean(dim=(2, 3), keepdim=True)
        cams = torch.relu((weights * features[rows].detach().float()).sum(dim=1))
        for row, cam in zip(rows, cams.cpu().numpy()):
            peak = float(cam.max())
            maps[row][columns[row].index(column)] = cam / peak if peak > 0 else np.zeros_like(cam)
    return maps, logits.detach()


# --------------------------------------------------------------------------------------------
# Occlusion
# --------------------------------------------------------------------------------------------
def _windows(size: int, steps: int, patch: float) -> list[tuple[int, int]]:
    """``steps`` windows of ``patch`` of ``size`` evenly spread from one edge to the other."""
    length = max(1, round(patch * size))
    starts = np.linspace(0, size - length, steps) if steps > 1 else [0.0]
    return [(round(float(s)), round(float(s)) + length) for s in starts]


def _occlusion(model: nn.Module, pixels: torch.Tensor, columns: list[int], steps: int, patch: float
               ) -> tuple[list[np.ndarray], torch.Tensor]:
    """Occlusion maps (input resolution, [0, 1]) of one picture's wanted columns, and its logits."""
    _, height, width = pixels.shape
    places = [(y, x) for y in _windows(height, steps, patch) for x in _windows(width, steps, patch)]
    copies = pixels.unsqueeze(0).repeat(len(places) + 1, 1, 1, 1)
    for n, ((y0, y1), (x0, x1)) in enumerate(places, start=1):
        copies[n, :, y0:y1, x0:x1] = 0.0  # the mean colour, after normalisation
    logits = _score(model, copies)
    drops = (logits[:1] - logits[1:]).clamp(min=0).numpy()  # [places, categories]
    maps = []
    for column in columns:
        heat = np.zeros((height, width), dtype=np.float64)
        cover = np.zeros((height, width), dtype=np.float64)
        for ((y0, y1), (x0, x1)), drop in zip(places, drops[:, column]):
            heat[y0:y1, x0:x1] += drop
            cover[y0:y1, x0:x1] += 1
        heat = heat / np.maximum(cover, 1)
        peak = heat.max()
        maps.append((heat / peak if peak > 0 else heat).astype(np.float32))
    return maps, logits[0]


def _score(model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad():
        return model(pixel_values=pixel_values.to(device)).float().cpu()


# --------------------------------------------------------------------------------------------
# Box, weight and the explainer
# --------------------------------------------------------------------------------------------
def hottest_box(heat: np.ndarray, level: float = BOX_LEVEL) -> list[float]:
    """``[x0, y0, x1, y1]`` (in ``heat``'s cells) around the connected region above ``level`` of
    the peak that holds the peak."""
    height, width = heat.shape
    scale = min(1.0, _BOX_RESOLUTION / max(height, width))
    small = _resize_map(heat, max(1, round(height * scale)), max(1, round(width * scale))) if scale < 1 else heat
    peak = float(small.max())
    if peak <= 0:
        return [0.0, 0.0, float(width), float(height)]
    above = small >= level * peak
    region = np.zeros_like(above)
    region[np.unravel_index(int(np.argmax(small)), small.shape)] = True
    while True:  # grow the peak's cell through its 8-neighbours above the level
        grown = region.copy()
        grown[1:, :] |= region[:-1, :]
        grown[:-1, :] |= region[1:, :]
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
        grown &= above
        if (grown == region).all():
            break
        region = grown
    ys, xs = np.nonzero(region)
    sy, sx = height / small.shape[0], width / small.shape[1]
    return [float(xs.min() * sx), float(ys.min() * sy), float((xs.max() + 1) * sx), float((ys.max() + 1) * sy)]


def _hide(pixels: torch.Tensor, box: Sequence[float]) -> torch.Tensor:
    x0, y0, x1, y1 = math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3])
    hidden = pixels.clone()
    hidden[:, y0:y1, x0:x1] = 0.0
    return hidden


def explain_image(classifier: Classifier, inputs: Sequence[Any], categories: Sequence[Sequence[str]], *,
                  method: str = "auto", grid: int = 7, occlusion_steps: int = 7, occlusion_patch: float = 0.3,
                  batch_size: int = 16) -> list[list[dict[str, Any]]]:
    """Evidence items (see the module docstring) for each picture and each of its ``categories``.

    ``method``: ``auto`` (Grad-CAM where the model has a convolutional feature map, occlusion
    otherwise), ``gradcam`` or ``occlusion``. ``grid``: cells on the heat map's shorter side.
    ``occlusion_steps`` x ``occlusion_steps`` grey squares of ``occlusion_patch`` of the side.
    """
    if method not in ("auto", "gradcam", "occlusion"):
        raise ValueError(f"method {method!r}: expected auto, gradcam or occlusion")
    if len(inputs) != len(categories):
        raise ValueError(f"explain_image: {len(inputs)} inputs but {len(categories)} lists of categories")
    processor = classifier.processor
    if not isinstance(processor, ImageProcessor):
        return [[] for _ in inputs]
    processor = processor.in_mode(False)
    known = {c: i for i, c in enumerate(classifier.categories)}
    for names in categories:
        for name in names:
            if name not in known:
                raise ValueError(f"explain_image: unknown category {name!r} (the model scores {sorted(known)})")
    model = classifier.model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    evidence: list[list[dict[str, Any]]] = [[] for _ in inputs]
    wanted = [i for i, names in enumerate(categories) if names]
    views: dict[int, _View] = {}
    for i in list(wanted):
        try:
            views[i] = _view(processor, processor.value_of(inputs[i]))
        except (InputError, TypeError, OSError) as err:  # evidence is extra: a picture it cannot read gets none
            logger.warning("explain_image: input %d gets no evidence: %s", i, err)
            wanted.remove(i)
    # Pictures of one input size batch together (always, when the processor crops).
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i in wanted:
        by_size.setdefault(tuple(views[i].pixels.shape), []).append(i)
    for group in by_size.values():
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            batch = {k: v.to(device) for k, v in processor.collate([views[i].pixels for i in chunk]).items()}
            columns = [[known[c] for c in categories[i]] for i in chunk]
            layer = None
            if method != "occlusion" and not isinstance(model, OnnxImageClassifier):
                layer = feature_layer(model, batch)
            if method == "gradcam" and layer is None:
                raise ValueError(f"explain_image: model {type(model).__name__} has no convolutional feature map "
                                 "for Grad-CAM; use method='occlusion'")
            pixels = batch["pixel_values"].cpu()
            if layer is not None:
                maps, logits = _gradcam(model, layer, batch, columns)
                used = "gradcam"
            else:
                found = [_occlusion(model, pixels[n], columns[n], occlusion_steps, occlusion_patch)
                         for n in range(len(chunk))]
                maps, logits = [m for m, _ in found], torch.stack([row for _, row in found]).cpu()
                used = "occlusion"
            # The boxes in model-input pixels, then every box greyed out in one batch.
            boxes = [[hottest_box(_resize_map(heat, *pixels.shape[2:])) for heat in picture] for picture in maps]
            hidden = torch.stack([_hide(pixels[n], box) for n in range(len(chunk)) for box in boxes[n]])
            hidden_logits = _score(model, hidden)
            k = 0
            for n, i in enumerate(chunk):
                view = views[i]
                for name, column, heat, box in zip(categories[i], columns[n], maps[n], boxes[n]):
                    weight = float(logits[n, column].cpu() - hidden_logits[k, column])
                    k += 1
                    evidence[i].append({"category": name, "weight": round(weight, 4), "box": view.to_original(box),
                                        "heatmap": view.on_picture(heat, grid), "method": used})
    return evidence
