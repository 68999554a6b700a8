"""Registers the text modality, its processors and models (the ``modelkit.plugins`` entry point:
the core imports this module the first time a registry lookup misses)."""

from ..data.synthetic import register_planter, register_synthetic
from ..explain import register_explainer
from ..processing import register_modality
from . import models, processors  # noqa: F401  (register processors and models)
from .processors import check_text

register_modality("text", check_text, hub_task="text-classification", languages=("zh", "en"))
register_synthetic("text", "modelkit.text.synthetic:write_synthetic_splits")
register_planter("text", "modelkit.text.synthetic:plant_text")
register_explainer("ngram", "modelkit.text.explain:explain_ngram")
register_explainer("text", "modelkit.text.explain:explain_occlusion")
