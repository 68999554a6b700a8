"""Evidence a reviewer can check: which place of an input drove a category's score.

Explainers belong to the modality that knows the input (a text's characters, a picture's
pixels) and register here by the model's registry name (``ngram``: exact n-gram contributions)
or by modality (``text``: occlusion, for any text model); the post moderator asks
:func:`explain` without importing a modality.

An explainer is ``explainer(classifier, inputs, categories) -> list[list[dict]]``: for input
``i``, one evidence item per category of ``categories[i]`` (those worth explaining, usually the
flagged ones), each a dict with ``category`` and ``weight`` (how much of the score it explains,
in logits) and the place: ``start``/``end`` character offsets into the text as given, or
``box`` ``[x0, y0, x1, y1]`` in the picture's pixels and ``heatmap`` (rows of values in [0, 1]).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .plugins import Registry

if TYPE_CHECKING:
    from PIL import Image

    from .classifier import Classifier

Explainer = Callable[["Classifier", Sequence[Any], Sequence[Sequence[str]]], list[list[dict[str, Any]]]]
_EXPLAINERS: Registry[Explainer | str] = Registry("explainer", "explain")


def register_explainer(name: str, explainer: Explainer | str) -> None:
    """Explain the scores of models named ``name`` (a model registry name, or a modality for
    every model of it): a function, or ``"module:function"`` imported when first used."""
    _EXPLAINERS.add(name, explainer)


def explainer_for(classifier: Classifier) -> Explainer | None:
    """The explainer of the classifier's model, else of its modality; None when there is none."""
    known = _EXPLAINERS.names()  # loads the plugins, which register their explainers
    for name in (classifier.model.registry_name, classifier.processor.modality):
        if name in known:
            explainer = _EXPLAINERS.get(name)
            if isinstance(explainer, str):
                module, function = explainer.split(":")
                explainer = getattr(importlib.import_module(module), function)
            return explainer
    return None


def explain(classifier: Classifier, inputs: Sequence[Any], categories: Sequence[Sequence[str]]
            ) -> list[list[dict[str, Any]]]:
    """Evidence items for each input and each of its ``categories`` (see the module docstring);
    inputs whose model has no explainer get none."""
    if len(inputs) != len(categories):
        raise ValueError(f"explain: {len(inputs)} inputs but {len(categories)} lists of categories")
    explainer = explainer_for(classifier)
    wanted = [i for i, names in enumerate(categories) if names]
    if explainer is None or not wanted:
        return [[] for _ in inputs]
    found = explainer(classifier, [inputs[i] for i in wanted], [list(categories[i]) for i in wanted])
    evidence: list[list[dict[str, Any]]] = [[] for _ in inputs]
    for position, items in zip(wanted, found):
        evidence[position] = items
    return evidence


def _heat_colours(heat: np.ndarray) -> np.ndarray:
    """Heat in [0, 1] -> RGB on a blue-green-yellow-red ramp."""
    stops = np.array([[0, 0, 160], [0, 170, 255], [60, 220, 90], [255, 220, 0], [230, 30, 20]], dtype=np.float32)
    position = np.clip(heat, 0, 1) * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    fraction = (position - low)[..., None]
    return stops[low] * (1 - fraction) + stops[low + 1] * fraction


def blend_heatmap(picture: Image.Image, heatmap: Any, opacity: float = 0.55) -> Image.Image:
    """``heatmap`` (an evidence item's grid over the whole picture) stretched over ``picture``
    (RGB), hot places most opaque: what the decisions page and heat-map PNGs show. A grid that is
    not a finite 2-D array leaves the picture as it is."""
    from PIL import Image

    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2 or heat.size == 0 or not np.isfinite(heat).all():
        return picture
    heat = np.clip(heat, 0, 1)
    heat = np.asarray(Image.fromarray(heat, mode="F").resize(picture.size, Image.Resampling.BILINEAR)).clip(0, 1)
    alpha = (opacity * heat)[..., None]
    blended = np.asarray(picture.convert("RGB"), dtype=np.float32) * (1 - alpha) + _heat_colours(heat) * alpha
    return Image.fromarray(blended.round().clip(0, 255).astype(np.uint8))
