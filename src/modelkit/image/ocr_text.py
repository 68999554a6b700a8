"""``ocr_text``: score the text in a picture (gambling adverts, illicit-ad screenshots, abusive memes).

The ``image_ocr`` processor reads a picture's text (:mod:`modelkit.image.ocr`) and hands it to a
text processor; the ``ocr_text`` model is a text model over that text. The text model comes from

* ``text_recipe``: the model and processor blocks of a text recipe, trained by the ordinary
  trainer on the recognised text of the image data (so it learns OCR's mistakes too), or
* ``text_checkpoint``: a trained text checkpoint, fine-tuned on the recognised text (or used as
  it is, see :func:`ocr_classifier`).

Predictions carry the recognised text and its boxes as evidence.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..config import ConfigError, from_dict
from ..models.base import InnerModel, ModerationModel
from ..models.registry import get_model_class, register_model, stored_minimum_parameters
from ..processing import CompositeProcessor, InputError, Processor, register_processor
from .decode import DEFAULT_MAX_PIXELS, decode_image, read_bytes, source_name
from .ocr import OcrConfig, OcrLine, TextReader, join_lines

# The logit of every category for a picture without text: a score of about 1e-13 (and still
# under 0.2 at the largest calibration temperature, 20).
NO_TEXT_LOGIT = -30.0


@dataclass
class OcrItem:
    text_item: Any  # what the text processor decoded
    text: str
    lines: list[OcrLine]


@dataclass
class OcrProcessorConfig:
    # The text processor of the text model (name + its fields), as in a recipe's processor block.
    text: dict[str, Any] = field(default_factory=lambda: {"name": "text_ngram"})
    ocr: OcrConfig = field(default_factory=OcrConfig)
    max_pixels: int = DEFAULT_MAX_PIXELS


@register_processor("image_ocr")
class OcrProcessor(CompositeProcessor):
    """Picture -> recognised text -> the text processor's item; batches are the text processor's."""

    modality = "image"
    config_class = OcrProcessorConfig
    part_names = ("text",)

    def __init__(self, config: OcrProcessorConfig, parts: Mapping[str, Processor] | None = None) -> None:
        super().__init__(config, parts)
        self.reader = TextReader(config.ocr)

    def check_parts(self) -> None:
        if self.text.modality != "text":
            raise ConfigError(f"processor.text: {self.text.name} reads {self.text.modality} inputs, not text")

    @property
    def text(self) -> Processor:
        return self.parts["text"]

    def read_text(self, value: Any) -> tuple[str, list[OcrLine]]:
        """The text in one picture, and its lines with boxes."""
        content = read_bytes(value)
        if content is None:  # an in-memory picture: hash its pixels
            image = decode_image(value, self.config.max_pixels)
            content = f"{image.mode}{image.size}".encode() + image.tobytes()
        elif not content:
            raise InputError(f"{source_name(value)}: empty file (0 bytes)")
        lines = self.reader.read(self.reader.key(content), lambda: decode_image(value, self.config.max_pixels))
        return join_lines([line.text for line in lines]), lines

    def decode_value(self, value: Any, labels: np.ndarray | None, rng: random.Random | None) -> OcrItem:
        text, lines = self.read_text(value)
        return OcrItem(self.text.decode(text, labels, rng), text, lines)

    def collate(self, items: Sequence[OcrItem]) -> dict[str, torch.Tensor]:
        batch = self.text.collate([item.text_item for item in items])
        batch["has_text"] = torch.tensor([bool(item.text.strip()) for item in items])
        return batch

    def evidence(self, item: OcrItem) -> dict[str, Any]:
        return {"ocr_text": item.text, "ocr_lines": [asdict(line) for line in item.lines]}


@dataclass
class OcrTextConfig:
    # A text recipe (YAML): its model and processor blocks make the text model.
    text_recipe: str | None = None
    # Or a trained text checkpoint directory to start from.
    text_checkpoint: str | None = None
    # The text model's stored config (name + fields); written by checkpoints.
    text_model: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        given = [name for name in ("text_recipe", "text_checkpoint", "text_model") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("ocr_text needs exactly one of model.text_recipe (a text recipe to train) and "
                             f"model.text_checkpoint (a trained text model); got {given or 'neither'}")


def _text_processor_config(config: OcrTextConfig) -> dict[str, Any]:
    from ..checkpoint import load_processor
    from ..training.recipe import load_run_config

    if config.text_recipe:
        name, params = load_run_config(config.text_recipe).processor_kwargs()
        return {"name": name, **params}
    directory = Path(str(config.text_checkpoint))
    stored = load_processor(directory).to_config()
    if "tokenizer" in stored:  # a saved tokenizer processor names its folder inside the checkpoint
        stored["tokenizer"] = str(directory / stored["tokenizer"])
    return stored


@register_model("ocr_text")
class OcrTextModel(ModerationModel):
    """A text model over the text OCR reads in a picture."""

    config_class = OcrTextConfig
    default_processor = "image_ocr"
    path_fields = ("text_recipe", "text_checkpoint")

    def __init__(self, config: OcrTextConfig, num_labels: int, text: ModerationModel | None = None) -> None:
        super().__init__(config, num_labels)
        if text is None:
            raise ConfigError("ocr_text is built by create_model or loaded from a checkpoint")
        if text.num_labels != num_labels:
            raise ConfigError(f"model.text_checkpoint scores {text.num_labels} categories, the run {num_labels}")
        self.text = text

    @property
    def has_sparse_gradients(self) -> bool:  # type: ignore[override]
        return self.text.has_sparse_gradients

    @classmethod
    def processor_defaults(cls, model_config: dict[str, Any]) -> dict[str, Any]:
        parsed = from_dict(OcrTextConfig, dict(model_config), where="model")
        if parsed.text_model:
            return {"name": cls.default_processor}
        return {"name": cls.default_processor, "text": _text_processor_config(parsed)}

    @classmethod
    def inner_models(cls, config: OcrTextConfig) -> dict[str, InnerModel]:
        if config.text_recipe:
            return {"text": InnerModel(recipe=str(config.text_recipe), processor_part="text")}
        return {"text": InnerModel(checkpoint=str(config.text_checkpoint), processor_part="text")}

    @classmethod
    def build(cls, config: OcrTextConfig, num_labels: int, processor: Processor | None = None,
              inner: Mapping[str, ModerationModel] | None = None) -> OcrTextModel:
        if not isinstance(processor, OcrProcessor):
            raise ConfigError("model ocr_text reads text from pictures: its processor is image_ocr")
        text = (inner or {})["text"]
        config.text_model = text.checkpoint_config()
        return cls(config, num_labels, text)

    def forward(self, has_text: torch.Tensor | None = None, **batch: torch.Tensor) -> torch.Tensor:
        logits = self.text(**batch)
        if has_text is None:
            return logits
        # A picture in which OCR read nothing shows no text-borne violation; the text model would
        # answer with its bias alone (for an empty string), a prior, not evidence.
        return torch.where(has_text[:, None], logits, logits.new_tensor(NO_TEXT_LOGIT))

    @classmethod
    def minimum_parameters(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> int | None:
        return stored_minimum_parameters(config.get("text_model"), num_labels, getattr(processor, "text", None))

    def checkpoint_config(self) -> dict[str, Any]:
        return {"name": self.registry_name, "text_model": self.text.checkpoint_config()}

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], num_labels: int, processor: Processor) -> ModerationModel:
        parsed = from_dict(OcrTextConfig, config, where="config.json: model")
        if not parsed.text_model or not isinstance(processor, OcrProcessor):
            raise ConfigError("model.text_model: an ocr_text checkpoint stores its text model and an image_ocr processor")
        member = dict(parsed.text_model)
        text = get_model_class(str(member.pop("name", ""))).from_checkpoint(member, num_labels, processor.text)
        return cls(parsed, num_labels, text)


def ocr_classifier(text_checkpoint: str | Path, ocr: OcrConfig | None = None, **load_options: Any):
    """A :class:`~modelkit.Classifier` for pictures from a trained text checkpoint, untrained further:
    its thresholds, temperatures and metrics are the text model's.

    >>> clf = ocr_classifier("runs/text-chineseharm")
    >>> clf.predict(["advert.jpg"])[0].evidence["ocr_text"]
    """
    from ..checkpoint import load_checkpoint
    from ..classifier import Classifier

    text = load_checkpoint(text_checkpoint)
    processor = OcrProcessor(OcrProcessorConfig(text=text.processor.to_config(), ocr=ocr or OcrConfig()),
                             {"text": text.processor})
    model = OcrTextModel(OcrTextConfig(text_model=text.model.checkpoint_config()), text.model.num_labels, text.model)
    return Classifier(model, processor, text.policy, metrics=text.metrics, calibration=text.calibration, **load_options)
