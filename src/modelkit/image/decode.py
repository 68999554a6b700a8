"""One image decoder for training, evaluation and inference: any input -> an RGB ``PIL.Image``.

Accepted inputs: a file path, encoded bytes, a ``datasets`` Image value (``{"bytes", "path"}``),
a ``PIL.Image`` or an ``HxW`` / ``HxWx3`` / ``HxWx4`` uint8 array. What real uploads need:

* the EXIF orientation applied (phone photos are stored sideways);
* every mode made RGB: L, P (palette transparency included), CMYK, RGBA / LA (composited on
  white, so a transparent sticker is not black), 16-bit greyscale (scaled, not clipped);
* the first frame of an animated GIF / WebP / APNG;
* a pixel limit checked from the header, before any pixel is decoded, against decompression
  bombs (a 20000x20000 PNG of a few KB would otherwise take 1.2 GB).
"""

from __future__ import annotations

import base64
import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..processing import InputError

# 40 megapixels: a 48 MP phone photo must be resized first; a bomb fails fast.
DEFAULT_MAX_PIXELS = 40_000_000
WHITE = (255, 255, 255)


def check_image(value: Any) -> str | None:
    """What makes a valid image input (cheap: files are not opened, only looked up)."""
    if isinstance(value, str):
        if not value:
            return "empty image path"
        return None if os.path.isfile(value) else f"image file not found: {value}"
    if isinstance(value, Path):
        return check_image(str(value))
    if isinstance(value, (bytes, bytearray)):
        return None if value else "empty image bytes"
    if isinstance(value, dict):
        if value.get("bytes"):
            return None
        if value.get("path"):
            return check_image(str(value["path"]))
        return "image record has neither 'bytes' nor 'path'"
    if isinstance(value, Image.Image):
        return None
    if isinstance(value, np.ndarray):
        if value.dtype == np.uint8 and (value.ndim == 2 or (value.ndim == 3 and value.shape[2] in (1, 3, 4))):
            return None
        return f"image array must be uint8 HxW or HxWxC (C = 1, 3, 4), got {value.dtype} {value.shape}"
    return f"expected an image path, bytes or PIL.Image, got {type(value).__name__}"


def source_name(value: Any) -> str:
    """How messages name an input: its path, else its kind."""
    if isinstance(value, (str, Path)):
        return str(value)
    if isinstance(value, dict) and value.get("path"):
        return str(value["path"])
    return f"<{type(value).__name__} image>"


def read_bytes(value: Any) -> bytes | None:
    """The encoded bytes of a file-like input (for content hashes), None for in-memory pictures."""
    if isinstance(value, (str, Path)):
        try:
            return Path(value).read_bytes()
        except OSError as err:
            raise InputError(f"{value}: cannot read ({err.strerror or err})") from None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dict):
        return bytes(value["bytes"]) if value.get("bytes") else read_bytes(str(value.get("path") or ""))
    return None


def _too_large(name: str, pixels: str, max_pixels: int) -> InputError:
    return InputError(f"{name}: {pixels} pixels is over the limit of {max_pixels:,} (a decompression bomb, or a "
                      "picture to resize first; processor.max_pixels)")


def _open(value: Any, name: str, max_pixels: int) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray):
        problem = check_image(value)
        if problem:
            raise InputError(f"{name}: {problem}")
        # From the shape, before Pillow copies it: a broadcast view of 20000x20000 costs nothing until then.
        height, width = value.shape[:2]
        if width * height > max_pixels:
            raise _too_large(name, f"{width}x{height}", max_pixels)
        return Image.fromarray(value[:, :, 0] if value.ndim == 3 and value.shape[2] == 1 else value)
    data = read_bytes(value)
    if not data:
        raise InputError(f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels decides
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image file Pillow can read") from None
    except Image.DecompressionBombError:  # Pillow's own hard limit, above ours
        raise _too_large(name, "more than 178 million", max_pixels) from None
    except (OSError, ValueError, SyntaxError) as err:
        raise InputError(f"{name}: cannot decode image ({err})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        image = Image.fromarray(np.clip(pixels * (255.0 / top), 0, 255).astype(np.uint8))
    elif image.mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(pixels * 255.0 if pixels.max() <= 1.0 else pixels, 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_image(value: Any, max_pixels: int = DEFAULT_MAX_PIXELS, at_least: int | None = None) -> Image.Image:
    """Any accepted input -> an upright RGB image; :class:`InputError` naming the input otherwise.

    ``at_least``: the caller only needs both sides >= this many pixels, so a large JPEG may be
    decoded at 1/2, 1/4 or 1/8 of its size (libjpeg scales in the DCT domain: a 12-megapixel
    photo decodes about ten times faster at 1/8).
    """
    name = source_name(value)
    image = _open(value, name, max_pixels)
    width, height = image.size
    if width * height > max_pixels:
        raise _too_large(name, f"{width}x{height}", max_pixels)
    if width == 0 or height == 0:
        raise InputError(f"{name}: image has no pixels ({width}x{height})")
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)  # animated: the first frame stands for the file
        if at_least and image.format == "JPEG":
            image.draft(image.mode, (at_least, at_least))
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise InputError(f"{name}: cannot decode image ({err})") from None


def thumbnail(value: Any, size: int = 96) -> dict[str, str]:
    """A report's view of an image input: its name and a small inline JPEG."""
    preview = {"text": source_name(value)}
    try:
        image = decode_image(value, at_least=size)
    except InputError as err:
        return {"text": str(err)}
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    preview["thumbnail"] = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return preview
