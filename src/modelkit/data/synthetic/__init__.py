"""Small deterministic data sets for demos and tests: bilingual text, images and text rendered into images.

Not real moderation data. Only Pillow and numpy: the core package never imports a modality package.
"""

from __future__ import annotations

from .images import make_synthetic_images, write_synthetic_image_splits
from .rendered import (
    FontNotFoundError,
    find_cjk_font,
    render_rows,
    render_text,
    write_rendered_manifest,
)
from .text import CUES, FILLERS, make_synthetic, write_synthetic_splits

__all__ = [
    "CUES",
    "FILLERS",
    "FontNotFoundError",
    "find_cjk_font",
    "make_synthetic",
    "make_synthetic_images",
    "render_rows",
    "render_text",
    "write_rendered_manifest",
    "write_synthetic_image_splits",
    "write_synthetic_splits",
]
