"""The text modality: normaliser, Chinese defences, augmentation, n-gram features, the
``text_ngram`` / ``text_tokenizer`` processors and the ``ngram`` / ``transformer`` models.

The package itself imports nothing: :mod:`modelkit.text.plugin` registers the processors and
models (the core finds it through the ``modelkit.plugins`` entry point, so ``modelkit.load`` and
recipes need no import of it), and :mod:`modelkit.text.commands` adds ``modelkit bootstrap``.
"""
