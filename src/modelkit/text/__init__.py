"""The text modality: normaliser, Chinese defences, augmentation, n-gram features, the
``text_ngram`` / ``text_tokenizer`` processors and the ``ngram`` / ``transformer`` models.

Importing this package registers them (the core finds it through the ``modelkit.plugins``
entry point, so ``modelkit.load`` and recipes need no import of it).
"""

from ..cli import register_command
from ..processing import register_modality
from . import models, processors  # noqa: F401  (register processors and models)
from .bootstrap import add_arguments, run_command
from .processors import check_text

register_modality("text", check_text)
register_command("bootstrap", "start a category with no labels: rules + seeds -> model -> questions",
                 add_arguments, run_command)
