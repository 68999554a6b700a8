"""Deterministic synthetic images with one learnable visual motif per category, for demos and tests.

Each category draws its own shape in its own hue, at a random place, scale and tint, over a random
background. About one violating image in ten carries a second category's motif (multi-label). Any
image, clean ones included, may hold neutral grey blobs, so "something is drawn" predicts nothing.
It is *not* real moderation data.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..data.synthetic import write_splits
from ..taxonomy import Taxonomy

# Motifs are drawn on a mask this many times larger and shrunk, which anti-aliases their edges.
SUPERSAMPLE = 4

# Draws a motif in white on an "L" mask: (draw, centre x, centre y, radius, rotation in radians).
Shape = Callable[[ImageDraw.ImageDraw, float, float, float, float], None]
Points = list[tuple[float, float]]


def _place(points: Points, cx: float, cy: float, r: float, angle: float) -> Points:
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)) for x, y in points]


def _regular(corners: int, inner: float | None = None) -> Points:
    """A regular polygon on the unit circle, or a star when ``inner`` (the inner radius) is given."""
    radii = [1.0] if inner is None else [1.0, inner]
    steps = corners * len(radii)
    return [(radii[k % len(radii)] * math.sin(2 * math.pi * k / steps),
             -radii[k % len(radii)] * math.cos(2 * math.pi * k / steps)) for k in range(steps)]


def _box(x0: float, y0: float, x1: float, y1: float) -> Points:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _polygons(*parts: Points, holes: tuple[Points, ...] = ()) -> Shape:
    def shape(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
        for fill, polygons in ((255, parts), (0, holes)):
            for points in polygons:
                draw.polygon(_place(points, cx, cy, r, angle), fill=fill)

    return shape


def _circle(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)


def _ellipse(aspect: float) -> Shape:
    def shape(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
        draw.ellipse((cx - r, cy - aspect * r, cx + r, cy + aspect * r), fill=255)

    return shape


def _ring(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=255, width=max(1, round(0.3 * r)))


def _crescent(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    _circle(draw, cx, cy, r, angle)
    dx, dy = 0.45 * r * math.cos(angle), 0.45 * r * math.sin(angle)
    draw.ellipse((cx + dx - 0.8 * r, cy + dy - 0.8 * r, cx + dx + 0.8 * r, cy + dy + 0.8 * r), fill=0)


def _half_disc(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    start = math.degrees(angle)
    draw.pieslice((cx - r, cy - r, cx + r, cy + r), start, start + 180, fill=255)


def _dots(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    grid = [(x, y) for x in (-0.65, 0, 0.65) for y in (-0.65, 0, 0.65)]
    for x, y in _place(grid, cx, cy, r, angle):
        draw.ellipse((x - 0.25 * r, y - 0.25 * r, x + 0.25 * r, y + 0.25 * r), fill=255)


_PLUS = (_box(-1, -0.3, 1, 0.3), _box(-0.3, -1, 0.3, 1))
# Ordered so that the first categories, the ones most often used, differ most in shape.
MOTIFS: dict[str, Shape] = {
    "circle": _circle,
    "square": _polygons(_box(-0.8, -0.8, 0.8, 0.8)),
    "triangle": _polygons(_regular(3)),
    "cross": _polygons(*_PLUS),
    "ring": _ring,
    "star": _polygons(_regular(5, inner=0.42)),
    "diamond": _polygons([(0, -1), (0.6, 0), (0, 1), (-0.6, 0)]),
    "stripes": _polygons(*(_box(-0.9, y, 0.9, y + 0.36) for y in (-0.9, -0.18, 0.54))),
    "checker": _polygons(*(_box(-0.9 + 0.45 * i, -0.9 + 0.45 * j, -0.45 + 0.45 * i, -0.45 + 0.45 * j)
                           for i in range(4) for j in range(4) if (i + j) % 2 == 0)),
    "x": _polygons(*(_place(part, 0, 0, 1, math.pi / 4) for part in _PLUS)),
    "hexagon": _polygons(_regular(6)),
    "frame": _polygons(_box(-0.85, -0.85, 0.85, 0.85), holes=(_box(-0.5, -0.5, 0.5, 0.5),)),
    "crescent": _crescent,
    "arrow": _polygons([(-0.9, -0.25), (0.1, -0.25), (0.1, -0.65), (0.9, 0), (0.1, 0.65), (0.1, 0.25), (-0.9, 0.25)]),
    "half_disc": _half_disc,
    "dots": _dots,
}
# A hue per motif; stepping 5/16 round the colour wheel keeps consecutive categories' hues far apart.
# One motif per category of the default taxonomy (tests/test_synthetic_images.py checks there are enough).
CATEGORIES = Taxonomy.load().enabled().ids
_STYLES: dict[str, tuple[Shape, float]] = {
    category: (shape, (5 * i % 16) / 16) for i, (category, shape) in enumerate(zip(CATEGORIES, MOTIFS.values()))
}


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(hue % 1, saturation, value)
    return round(255 * red), round(255 * green), round(255 * blue)


def noisy_gradient(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A noisy gradient between two random muted colours."""
    # Muted colours, so that no background mimics a motif's saturated hue.
    start, end = (np.array(_rgb(rng.random(), rng.uniform(0, 0.4), rng.uniform(0.2, 0.9))) for _ in range(2))
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    ramp = (ramp - ramp.min()) / np.ptp(ramp)
    pixels = start + (end - start) * ramp[..., None] + rng.normal(0, rng.uniform(0, 12), (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _paint(image: Image.Image, colour: tuple[int, int, int], shape: Shape, cx: float, cy: float, r: float,
           angle: float) -> None:
    mask = Image.new("L", (image.width * SUPERSAMPLE, image.height * SUPERSAMPLE))
    shape(ImageDraw.Draw(mask), cx * SUPERSAMPLE, cy * SUPERSAMPLE, r * SUPERSAMPLE, angle)
    image.paste(colour, (0, 0, image.width, image.height), mask.resize(image.size, Image.Resampling.BOX))


def paint_blob(image: Image.Image, grey: int, aspect: float, cx: float, cy: float, r: float) -> None:
    """A neutral grey ellipse (``aspect`` = height / width), a distractor that means no category."""
    _paint(image, (grey, grey, grey), _ellipse(aspect), cx, cy, r, 0)


def motif_colour(category: str, rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated colour near the category's hue: with the shape, the cue a model learns."""
    hue = _STYLES[category][1]
    return _rgb(hue + rng.normal(0, 0.02), rng.uniform(0.7, 1), rng.uniform(0.7, 1))


def paint_motif(image: Image.Image, category: str, colour: tuple[int, int, int], cx: float, cy: float, r: float,
                angle: float) -> None:
    """The category's shape, centred at (``cx``, ``cy``) with radius ``r`` and rotated by ``angle`` radians."""
    _paint(image, colour, _STYLES[category][0], cx, cy, r, angle)


def borderline_colour(category: str, rng: np.random.Generator) -> tuple[int, int, int]:
    """The category's hue, washed out: a motif that only hints at the category."""
    hue = _STYLES[category][1]
    return _rgb(hue + rng.normal(0, 0.02), rng.uniform(0.35, 0.5), rng.uniform(0.55, 0.75))


def _draw_image(labels: list[str], size: int, rng: np.random.Generator, borderline: str | None = None,
                ) -> tuple[Image.Image, list[float] | None]:
    """A picture with ``labels``' motifs (and a washed-out ``borderline`` one); the box of the last motif."""
    image = noisy_gradient(size, size, rng)
    for _ in range(int(rng.integers(3))):
        grey = int(rng.integers(60, 200))
        aspect = rng.uniform(0.5, 2)
        paint_blob(image, grey, aspect, *rng.uniform(0, size, 2), rng.uniform(0.08, 0.2) * size)
    box = None
    for category, colour_of in [(c, motif_colour) for c in labels] + [(borderline, borderline_colour)] * bool(borderline):
        r = rng.uniform(0.25, 0.45) * size / 2
        colour = colour_of(category, rng)
        cx, cy = rng.uniform(r, size - r, 2)
        paint_motif(image, category, colour, cx, cy, r, rng.uniform(-0.3, 0.3))
        box = [float(cx - r), float(cy - r), float(cx + r), float(cy + r)]
    return image, box


def plant_image(rng: np.random.Generator, category: str | None, borderline: bool, path: Path | None,
                size: int = 64) -> dict:
    """A synthetic post's picture (the ``image`` planter of :mod:`modelkit.data.synthetic`): a
    category's motif (washed out when ``borderline``) at a random place, written to ``path``."""
    if path is None:
        raise ValueError("a picture part needs a path to write to")
    if category is not None:
        check_categories([category])
    labels = [category] if category is not None and not borderline else []
    image, box = _draw_image(labels, size, rng, category if borderline else None)
    image.save(path)
    return {"value": str(path), "location": None if category is None else {"box": [round(v, 1) for v in box]}}


def check_categories(categories: list[str]) -> None:
    """Raise ValueError naming any category without a motif."""
    unknown = [c for c in categories if c not in _STYLES]
    if unknown:
        raise ValueError(f"no synthetic motifs for {unknown}; available: {', '.join(CATEGORIES)}")


def make_synthetic_images(
    directory: str | Path,
    rows_per_category: int = 40,
    clean_rows: int = 120,
    size: int = 64,
    seed: int = 0,
    categories: list[str] | None = None,
    image_format: str = "png",
    borderline_rows_per_category: int = 0,
    borderline_positive: float = 0.3,
) -> list[dict]:
    """Write images into ``directory/images/``; rows ``{"id", "image", "labels"}``, ``image`` relative to it.

    ``image_format`` is the file suffix, from which Pillow picks the encoder: png, jpg, webp ...
    ``borderline_rows_per_category`` pictures per category show its motif washed out, labelled
    with the category with probability ``borderline_positive``: a hint annotators disagree on,
    which a model learns as a middling score (what a post's other parts can tip either way).
    """
    rng = np.random.default_rng(seed)
    categories = categories or list(CATEGORIES)
    check_categories(categories)

    labels = []
    for category in categories:
        others = [c for c in categories if c != category]
        for _ in range(rows_per_category):
            second = others and rng.random() < 0.1
            labels.append([category, others[int(rng.integers(len(others)))]] if second else [category])
    labels += [[] for _ in range(clean_rows)]
    hints: list[str | None] = [None] * len(labels)
    for category in categories:
        for _ in range(borderline_rows_per_category):
            hints.append(category)
            labels.append([category] if rng.random() < borderline_positive else [])
    order = rng.permutation(len(labels))

    images = Path(directory) / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, i in enumerate(order):
        name = f"img-{n}.{image_format}"
        # An rng per image: an image does not change when rows are added or removed around it.
        image, _ = _draw_image(labels[i] if hints[i] is None else [], size, np.random.default_rng([seed, n]), hints[i])
        image.save(images / name)
        rows.append({"id": f"img-{n}", "image": f"images/{name}", "labels": labels[i]})
    return rows


def write_synthetic_image_splits(directory: str | Path, seed: int = 0, **kwargs) -> dict[str, Path]:
    """Write ``train.jsonl``, ``dev.jsonl`` and ``test.jsonl`` (70/15/15) and their shared ``images/``."""
    directory = Path(directory)
    rows = make_synthetic_images(directory, seed=seed, **kwargs)  # already in a seeded random order
    return write_splits(directory, rows)
