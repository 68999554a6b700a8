"""Small deterministic data sets for demos and tests: bilingual text, images, text rendered into images
and videos.

Not real moderation data. Only Pillow and numpy (videos import PyAV, the video extra, when they are written):
the core package never imports a modality package.
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
from .videos import (
    load_background_clip,
    make_synthetic_video,
    write_synthetic_video_splits,
    write_text_overlay_splits,
)

__all__ = [
    "CUES",
    "FILLERS",
    "FontNotFoundError",
    "find_cjk_font",
    "load_background_clip",
    "make_synthetic",
    "make_synthetic_images",
    "make_synthetic_video",
    "render_rows",
    "render_text",
    "write_rendered_manifest",
    "write_synthetic_image_splits",
    "write_synthetic_splits",
    "write_synthetic_video_splits",
    "write_text_overlay_splits",
]
