"""Text drawn into pictures, with varied fonts sizes, colours, backgrounds, tilt and blur, for OCR tests.

Needs a Noto CJK font, so that Chinese renders as glyphs rather than empty boxes (Debian: fonts-noto-cjk).
"""

from __future__ import annotations

import functools
import json
import os
import re
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..data.synthetic import write_jsonl

FONT_ENV = "MODELKIT_CJK_FONT"
FONT_CANDIDATES = [
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/noto/NotoSansCJK-Bold.ttc"),
    Path("/usr/share/fonts/truetype/noto/NotoSerifCJK-Regular.ttc"),
]
# Latin words, numbers and URLs stay whole on a line where they fit; every other character may break.
_TOKEN = re.compile(r"[A-Za-z0-9'@#%&.,;:!?/_-]+|\s|.", re.DOTALL)


class FontNotFoundError(RuntimeError):
    pass


def find_cjk_font() -> Path:
    """The first Noto CJK font found, or the file named by ``$MODELKIT_CJK_FONT``."""
    if os.environ.get(FONT_ENV):
        path = Path(os.environ[FONT_ENV])
        if not path.is_file():
            raise FontNotFoundError(f"{FONT_ENV}={path} is not a file")
        return path
    found = [p for p in FONT_CANDIDATES if p.is_file()] or sorted(Path("/usr/share/fonts").glob("**/Noto*CJK*"))
    if not found:
        raise FontNotFoundError(f"no Noto CJK font found: install Debian's fonts-noto-cjk or set {FONT_ENV}")
    return found[0]


@functools.lru_cache(maxsize=64)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """The Simplified-Chinese face of a font collection (its glyph shapes suit the data), else the first face."""
    for index in range(10):
        try:
            font = ImageFont.truetype(str(path), size, index=index)
        except OSError:  # past the last face of the collection
            break
        if "SC" in font.getname()[0].split():
            return font
    return ImageFont.truetype(str(path), size)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for token in _TOKEN.findall(paragraph):
            if font.getlength(line + token) <= width:
                line += token
            elif font.getlength(token) <= width:  # a whole word moves to the next line
                lines.append(line.rstrip())
                line = token.lstrip()
            else:
                for char in token:
                    if line and font.getlength(line + char) > width:
                        lines.append(line.rstrip())
                        line = char.lstrip()
                    else:
                        line += char
        lines.append(line.rstrip())
    return lines


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """Two background colours and a text colour; the luminances of light (>= 170) and dark (<= 70) differ by 100+."""
    light, dark = (170, 256), (0, 71)
    background, ink = (light, dark) if rng.random() < 0.7 else (dark, light)
    start, end = (rng.integers(*background, 3) for _ in range(2))
    return start, end, tuple(int(c) for c in rng.integers(*ink, 3))


def _background(width: int, height: int, start: np.ndarray, end: np.ndarray, rng: np.random.Generator) -> Image.Image:
    kind = int(rng.integers(3))  # flat, gradient or noise
    pixels = np.broadcast_to(start.astype(np.float32), (height, width, 3))
    if kind == 1:
        if rng.random() < 0.5:
            ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
        else:
            ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
        pixels = pixels + (end - start) * ramp
    elif kind == 2:
        pixels = pixels + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def render_text(
    text: str,
    rng: np.random.Generator,
    font_path: str | Path | None = None,
    width: int | None = None,
    max_chars: int = 400,
    font_sizes: tuple[int, int] = (18, 35),
) -> Image.Image:
    """``text[:max_chars]`` wrapped to the width and drawn with random styling; height follows the lines.

    The font size in pixels is drawn from ``[font_sizes[0], font_sizes[1])``.
    """
    font = _font(Path(font_path or find_cjk_font()), int(rng.integers(*font_sizes)))
    width = width or int(rng.integers(360, 641))
    margin = int(rng.integers(8, 25))
    start, end, ink = _colours(rng)
    line_height = round(font.size * rng.uniform(1.2, 1.5))
    angle = rng.uniform(-6, 6)
    blur = rng.uniform(0.3, 0.8) if rng.random() < 0.3 else 0

    lines = _wrap(text[:max_chars], font, width - 2 * margin)
    image = _background(width, 2 * margin + len(lines) * line_height, start, end, rng)
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((margin, margin + n * line_height), line, fill=ink, font=font)
    image = image.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=tuple(int(c) for c in start))
    return image.filter(ImageFilter.GaussianBlur(blur)) if blur else image


def render_rows(
    rows: list[dict],
    directory: str | Path,
    text_field: str = "text",
    seed: int = 0,
    jpeg_quality: tuple[int, int] = (60, 95),
    max_chars: int = 400,
    font_path: str | Path | None = None,
    skip_existing: bool = False,
) -> list[dict]:
    """Render each row's text to ``directory/images/<index>.jpg``; rows come back with ``image`` for the text."""
    images = Path(directory) / "images"
    images.mkdir(parents=True, exist_ok=True)
    font_path = font_path or find_cjk_font()
    out = []
    for index, row in enumerate(rows):
        if text_field not in row:
            raise ValueError(f"row {index} has no {text_field!r} field")
        path = images / f"{index}.jpg"
        if not (skip_existing and path.exists()):
            rng = np.random.default_rng([seed, index])
            image = render_text(row[text_field], rng, font_path=font_path, max_chars=max_chars)
            image.save(path, quality=int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1)))
        out.append({**{k: v for k, v in row.items() if k != text_field}, "image": f"images/{index}.jpg"})
    return out


def write_rendered_manifest(
    source_jsonl: str | Path, directory: str | Path, limit: int | None = None, seed: int = 0, **render_kwargs
) -> Path:
    """Render the first ``limit`` rows of a JSONL text set into ``directory/manifest.jsonl``.

    Images already there are kept, so a rerun is fast; delete ``directory`` after changing the source or settings.
    """
    with open(source_jsonl, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in islice((line for line in handle if line.strip()), limit)]
    rendered = render_rows(rows, directory, seed=seed, skip_existing=True, **render_kwargs)
    return write_jsonl(Path(directory) / "manifest.jsonl", rendered)
