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

from .plugins import Registry

if TYPE_CHECKING:
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
