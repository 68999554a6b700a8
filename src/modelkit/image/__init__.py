"""The image modality: robust decoding, the ``image`` processor, the ``image`` (torchvision /
timm) and ``onnx`` (peer model) classifiers, and ``ocr_text`` (text in pictures, read by OCR).

Importing this package registers them; the core finds it through the ``modelkit.plugins`` entry
point, so ``modelkit.load`` and recipes need no import of it.
"""

from ..data.records import register_reader
from ..data.synthetic import register_planter, register_synthetic
from ..explain import register_explainer
from ..processing import register_modality
from . import models, ocr_text, processors  # noqa: F401  (register processors and models)
from .decode import check_image, decode_image, thumbnail
from .ocr_text import ocr_classifier
from .tables import FOLDER_TREE, IDX_FILES

register_modality("image", check_image, files=True, preview=thumbnail, hub_task="image-classification")
register_reader("folder_tree", FOLDER_TREE)
register_reader("idx", IDX_FILES)
register_synthetic("image", "modelkit.image.synthetic:write_synthetic_image_splits")
register_explainer("image", "modelkit.image.explain:explain_image")
register_planter("image", "modelkit.image.synthetic:plant_image")

__all__ = ["decode_image", "ocr_classifier"]
