"""The ``image`` processor: decode, resize, crop (and augment in train mode), then normalise a batch.

Per image (in DataLoader workers): :func:`~modelkit.image.decode.decode_image`, a Pillow resize
and centre crop, optionally a JPEG re-encode (models trained on JPEGs, such as open_nsfw, score
a re-encoded picture), and in train mode the ``torchvision.transforms.v2`` augmentations. Items
stay uint8 (cheap to send between processes); :meth:`ImageProcessor.collate` scales, reorders
channels and normalises the whole batch at once. Every number here is stored in the
checkpoint's ``processor_config.json``.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import torch
from PIL import Image

from ..processing import Processor, register_processor
from .decode import DEFAULT_MAX_PIXELS, decode_image

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
_RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


@dataclass
class ImageAugmentConfig:
    """Train-mode augmentation (all off by default)."""

    # Probability of a horizontal flip.
    hflip: float = 0.0
    # Random resized crop: the crop covers this range of the resized picture's area ([0.5, 1.0]);
    # replaces the centre crop in train mode. None: off.
    crop_scale: list[float] | None = None
    # Strength of random brightness, contrast and saturation changes (0.2 = +-20 %).
    color_jitter: float = 0.0
    # Largest random rotation, degrees.
    rotation: float = 0.0
    # Probability of a light Gaussian blur.
    blur: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hflip", "blur"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.crop_scale is not None and not (len(self.crop_scale) == 2 and 0 < self.crop_scale[0]
                                                <= self.crop_scale[1] <= 1):
            raise ValueError(f"augment.crop_scale must be [low, high] with 0 < low <= high <= 1, got {self.crop_scale}")
        if self.color_jitter < 0 or self.rotation < 0:
            raise ValueError("augment.color_jitter and augment.rotation must be >= 0")

    @property
    def active(self) -> bool:
        return bool(self.hflip or self.crop_scale or self.color_jitter or self.rotation or self.blur)


def _pair(value: int | list[int] | None, name: str) -> tuple[int, int] | None:
    if value is None:
        return None
    size = (value, value) if isinstance(value, int) else tuple(value)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be a size >= 1 or [height, width], got {value}")
    return int(size[0]), int(size[1])


@dataclass
class ImageProcessorConfig:
    # An int resizes the shorter side to it (aspect kept); [height, width] resizes exactly.
    resize: int | list[int] = 256
    # Centre crop [height, width] (or a square side) after resizing; None: no crop.
    crop: int | list[int] | None = 224
    resample: Literal["nearest", "bilinear", "bicubic", "lanczos"] = "bilinear"
    # Pixel values are scaled to [0, value_range] before mean and std: 1.0 for torchvision and
    # timm models, 255 for Caffe-style ones (open_nsfw subtracts means in 0-255 units).
    value_range: float = 1.0
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    # Channel order the model expects (mean and std are given in that order).
    channel_order: Literal["rgb", "bgr"] = "rgb"
    # Re-encode as JPEG at this quality after cropping (a model trained on JPEGs); None: off.
    jpeg_quality: int | None = None
    # Larger pictures are refused before decoding (decompression bombs).
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Decode large JPEGs at a reduced scale that still covers the resize (several times faster
    # for photos; pixels differ slightly from a full decode, so a peer model whose authors decode
    # in full, such as open_nsfw, turns it off).
    jpeg_draft: bool = True
    augment: ImageAugmentConfig = field(default_factory=ImageAugmentConfig)

    def __post_init__(self) -> None:
        _pair(self.resize, "resize")
        _pair(self.crop, "crop")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values each (std > 0), got {self.mean} and {self.std}")
        if self.value_range <= 0:
            raise ValueError(f"value_range must be > 0, got {self.value_range}")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")

    @property
    def output_size(self) -> tuple[int, int] | None:
        """[height, width] of every item, when crop or an exact resize fixes it."""
        crop = _pair(self.crop, "crop")
        if crop is not None:
            return crop
        return None if isinstance(self.resize, int) else _pair(self.resize, "resize")


def resize_image(image: Image.Image, size: int | list[int], resample: str) -> Image.Image:
    """Shorter side to ``size`` (aspect kept), or exactly ``[height, width]``."""
    if isinstance(size, int):
        width, height = image.size
        scale = size / min(width, height)
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
    else:
        target = (int(size[1]), int(size[0]))
    return image if image.size == target else image.resize(target, resample=_RESAMPLE[resample])


def center_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The centre ``size`` (height, width); a smaller picture is padded with black first."""
    height, width = size
    if image.width < width or image.height < height:
        padded = Image.new("RGB", (max(width, image.width), max(height, image.height)))
        padded.paste(image, ((padded.width - image.width) // 2, (padded.height - image.height) // 2))
        image = padded
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


@register_processor("image")
class ImageProcessor(Processor):
    """Any image input -> a ``pixel_values`` batch ``[batch, 3, height, width]`` (float32)."""

    modality = "image"
    config_class = ImageProcessorConfig

    def __init__(self, config: ImageProcessorConfig) -> None:
        super().__init__(config)
        scale = config.value_range / 255.0
        self._scale = torch.tensor(scale, dtype=torch.float32)
        self._mean = torch.tensor(config.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(config.std, dtype=torch.float32).view(1, 3, 1, 1)
        self._augment = self._build_augment(config) if config.augment.active else None

    @staticmethod
    def _build_augment(config: ImageProcessorConfig):
        from torchvision.transforms import v2

        augment = config.augment
        steps = []
        crop = config.output_size
        if augment.crop_scale and crop is not None:
            steps.append(v2.RandomResizedCrop(crop, scale=tuple(augment.crop_scale), antialias=True))
        if augment.hflip:
            steps.append(v2.RandomHorizontalFlip(augment.hflip))
        if augment.rotation:
            steps.append(v2.RandomRotation(augment.rotation))
        if augment.color_jitter:
            strength = augment.color_jitter
            steps.append(v2.ColorJitter(brightness=strength, contrast=strength, saturation=strength))
        if augment.blur:
            steps.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=augment.blur))
        return v2.Compose(steps)

    @property
    def augments(self) -> bool:
        return self._augment is not None

    def load(self, value: Any) -> Image.Image:
        """The decoded, resized picture before cropping (what OCR and previews read)."""
        resize = self.config.resize
        at_least = (resize if isinstance(resize, int) else max(resize)) if self.config.jpeg_draft else None
        image = decode_image(value, self.config.max_pixels, at_least)
        return resize_image(image, resize, self.config.resample)

    def decode_value(self, value: Any, labels: np.ndarray | None, rng: random.Random | None) -> torch.Tensor:
        image = self.load(value)
        # In train mode a random resized crop (when configured) takes the centre crop's place.
        random_crop = self.training and self._augment is not None and bool(self.config.augment.crop_scale)
        crop = _pair(self.config.crop, "crop")
        if crop is not None and not random_crop:
            image = center_crop(image, crop)
        if self.config.jpeg_quality is not None:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=self.config.jpeg_quality)
            image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
        if self.training and self._augment is not None:
            # torchvision draws from torch's global generator: seed it from this row's rng so an
            # epoch's augmentation is the same whatever the number of workers.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed((rng or random.Random(0)).randrange(2**63))
                pixels = self._augment(pixels)
        return pixels

    def example_inputs(self) -> list[bytes]:
        rng = np.random.default_rng(0)
        examples = []
        for height, width in ((48, 64), (300, 200), (97, 131)):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, format="PNG")
            examples.append(buffer.getvalue())
        return examples

    def collate(self, items: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        shapes = {tuple(item.shape) for item in items}
        if len(shapes) > 1:
            raise ValueError(f"images of different sizes {sorted(shapes)} cannot be batched; set processor.crop "
                             "or an exact processor.resize [height, width]")
        pixels = torch.stack(list(items)).float()
        if self.config.channel_order == "bgr":
            pixels = pixels.flip(1)
        pixels = pixels * self._scale
        return {"pixel_values": (pixels - self._mean) / self._std}
