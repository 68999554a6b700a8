"""Deterministic synthetic videos for demos and tests of the video modality: a moving background with a
planted signal, a category's motif (images.py) or a rendered text (rendered.py), visible from a known
start to a known end.

Frame ``i`` is shown at ``i / fps`` seconds and carries the signal iff ``start_s <= i / fps < end_s``, so
``start_s`` is the time of the first frame with the signal, ``end_s`` the time of the first frame after
the last one with it, and ``end_s - start_s`` is how long it is visible. Backgrounds move either way:
a panning noisy gradient with drifting grey blobs, or real footage; clean videos get the same
backgrounds, and for text optionally harmless text, so neither "something moves" nor "there is text"
gives a label away. Not real moderation data.

Videos are H.264 (libx264, yuv420p) in .mp4, written with PyAV (the ``video`` extra), which is imported
only where a video is written or read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from ..image.rendered import render_text
from ..image.synthetic import check_categories, motif_colour, noisy_gradient, paint_blob, paint_motif
from ..data.synthetic import write_jsonl
from ..text.synthetic import CUES

SignalKind = Literal["motif", "text"]
# "procedural", a clip's frames from load_background_clip, or a clip's path (decoded for this one video).
Background = str | Path | np.ndarray

# The first motifs differ most in shape and hue (see images.py).
DEFAULT_CATEGORIES = list(CUES)[:3]
# CRF 20 keeps glyph edges crisp enough for OCR at 24 px; "medium" is fast enough at these sizes. No
# macroblock tree: with it, x264's AVX-512 code (core 165, in PyAV 18's wheels) encoded the same frames
# to different bytes from one run to the next.
X264_OPTIONS = {"crf": "20", "preset": "medium", "x264-params": "mbtree=0"}
# Resized frames kept per background clip by the split writers; a longer clip is cut to a random window.
CLIP_MEMORY_BYTES = 96 * 2**20
# Text glyphs are this fraction of the frame height: 24-35 px at 270 p, readable by OCR after H.264.
TEXT_HEIGHTS = (0.09, 0.13)

Overlay = Callable[[Image.Image, int], None]  # paints the signal onto a frame, given its index in the signal


def load_background_clip(
    path: str | Path,
    size: tuple[int, int],
    fps: int,
    *,
    max_frames: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A clip's frames as ``(frames, height, width, 3)`` uint8, scaled to cover ``size`` and centre-cropped.

    Resampled to ``fps``: each output frame is the clip frame on screen at its time. At most ``max_frames``
    are kept, a window starting at a random frame when ``rng`` is given, else at the start.
    """
    import av

    width, height = size
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        step = 1 / float(stream.average_rate or fps)  # how long one clip frame stays on screen
        first = 0
        if max_frames is not None and rng is not None:
            estimate = int(float(container.duration or 0) / av.time_base * fps)
            first = int(rng.integers(max(estimate - max_frames, 0) + 1))
        frames: list[np.ndarray] = []
        tick = 0  # the next output frame
        for j, frame in enumerate(container.decode(stream)):
            shown_until = (j * step if frame.time is None else float(frame.time)) + step
            covered = tick
            while tick / fps < shown_until:
                tick += 1
            if tick > max(covered, first):
                frames += [_cover(frame, width, height)] * (tick - max(covered, first))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"no frames decoded from {path}")
    return np.stack(frames[:max_frames])


def _cover(frame, width: int, height: int) -> np.ndarray:
    scale = max(width / frame.width, height / frame.height)
    scaled_w, scaled_h = max(width, round(frame.width * scale)), max(height, round(frame.height * scale))
    pixels = frame.reformat(width=scaled_w, height=scaled_h, format="rgb24", interpolation="AREA").to_ndarray()
    left, top = (scaled_w - width) // 2, (scaled_h - height) // 2
    return pixels[top : top + height, left : left + width]


def _ping_pong(clip: np.ndarray, frames: int, rng: np.random.Generator) -> Iterator[Image.Image]:
    """The clip from a random frame (and direction), played forwards and backwards for as long as needed."""
    period = max(2 * (len(clip) - 1), 1)
    offset = int(rng.integers(period))
    for i in range(frames):
        k = (offset + i) % period
        yield Image.fromarray(clip[k if k < len(clip) else period - k])


def _texture(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth grey blotches about 32 px across, so that the panning is visible on flat gradients."""
    cells = rng.normal(0, 20, (height // 32 + 2, width // 32 + 2)).astype(np.float32)
    return np.asarray(Image.fromarray(cells).resize((width, height), Image.Resampling.BICUBIC))


def _procedural(frames: int, size: tuple[int, int], rng: np.random.Generator) -> Iterator[Image.Image]:
    """A window panning across a larger textured gradient, under one to three drifting grey blobs."""
    sides = np.array(size, dtype=float)
    pan = rng.uniform(0.1, 0.3, 2) * sides * rng.choice([-1, 1], 2)  # over the whole video, in pixels
    canvas_w, canvas_h = (sides + np.ceil(np.abs(pan))).astype(int)
    canvas = np.asarray(noisy_gradient(canvas_w, canvas_h, rng), dtype=np.float32)
    canvas = np.clip(canvas + _texture(canvas_w, canvas_h, rng)[..., None], 0, 255).astype(np.uint8)
    blobs = []  # grey, aspect, centre at the start and at the end, radius
    for _ in range(int(rng.integers(1, 4))):
        grey, aspect, start = int(rng.integers(60, 200)), rng.uniform(0.5, 2), rng.uniform(0, 1, 2) * sides
        end = start + rng.uniform(-0.4, 0.4, 2) * sides
        blobs.append((grey, aspect, start, end, rng.uniform(0.08, 0.2) * min(size)))
    corner = np.where(pan < 0, -pan, 0)
    for i in range(frames):
        progress = i / max(frames - 1, 1)
        left, top = np.round(corner + progress * pan).astype(int)
        image = Image.fromarray(canvas[top : top + size[1], left : left + size[0]])
        for grey, aspect, begin, end, r in blobs:
            paint_blob(image, grey, aspect, *(begin + progress * (end - begin)), r)
        yield image


def _background_frames(background: Background, frames: int, size: tuple[int, int], fps: int,
                       rng: np.random.Generator) -> Iterator[Image.Image]:
    if isinstance(background, str) and background == "procedural":
        return _procedural(frames, size, rng)
    if isinstance(background, np.ndarray):
        clip = background
    else:  # one video's worth, from a random place
        clip = load_background_clip(background, size, fps, max_frames=frames, rng=rng)
    if clip.ndim != 4 or clip.shape[1:] != (size[1], size[0], 3):
        raise ValueError(f"background frames have shape {clip.shape}, expected (frames, {size[1]}, {size[0]}, 3)")
    return _ping_pong(clip, frames, rng)


def _motif_overlay(category: str, frames: int, size: tuple[int, int], rng: np.random.Generator) -> Overlay:
    """The motif at images.py's scale, drifting, growing or shrinking and turning a little while visible."""
    sides = np.array(size, dtype=float)
    colour = motif_colour(category, rng)
    radii = rng.uniform(0.25, 0.45) * min(size) / 2 * np.array([1, rng.uniform(0.85, 1.15)])
    reach = radii.max()  # the whole motif stays in the frame
    start = rng.uniform(reach, sides - reach)
    end = np.clip(start + rng.uniform(-0.1, 0.1, 2) * sides, reach, sides - reach)
    angles = rng.uniform(-0.3, 0.3) + np.array([0, rng.uniform(-0.3, 0.3)])

    def paint(image: Image.Image, k: int) -> None:
        progress = k / max(frames - 1, 1)
        r, angle = radii[0] + progress * (radii[1] - radii[0]), angles[0] + progress * (angles[1] - angles[0])
        paint_motif(image, category, colour, *(start + progress * (end - start)), r, angle)

    return paint


def _text_overlay(text: str, size: tuple[int, int], rng: np.random.Generator, font_path: str | Path | None) -> Overlay:
    """A rendered text block at a fixed place, like a burnt-in caption or an advert."""
    width, height = size
    glyphs = tuple(max(8, round(fraction * height)) for fraction in TEXT_HEIGHTS)
    block = render_text(text, rng, font_path, width=int(rng.uniform(0.6, 0.95) * width),
                        font_sizes=(glyphs[0], glyphs[1] + 1))
    # Long texts or steep tilts can outgrow the frame: shrink them, at the cost of smaller glyphs.
    scale = min(1.0, 0.95 * width / block.width, 0.7 * height / block.height)
    if scale < 1:
        block = block.resize((round(block.width * scale), round(block.height * scale)), Image.Resampling.LANCZOS)
    place = (int(rng.integers(width - block.width + 1)), int(rng.integers(height - block.height + 1)))
    return lambda image, k: image.paste(block, place)


def _visible_frames(start_s: float, end_s: float, frames: int, fps: int) -> tuple[int, int]:
    """``first, stop``: the frames ``first <= i < stop`` are those with ``start_s <= i / fps < end_s``."""
    if not 0 <= start_s < end_s:
        raise ValueError(f"need 0 <= start_s < end_s, got {start_s}, {end_s}")

    def first_at_or_after(t: float) -> int:
        i = min(max(math.ceil(t * fps), 0), frames)
        # t * fps and i / fps round differently: settle on the docstring's own comparison.
        while i > 0 and (i - 1) / fps >= t:
            i -= 1
        while i < frames and i / fps < t:
            i += 1
        return i

    first, stop = first_at_or_after(start_s), first_at_or_after(end_s)
    if first == stop:
        raise ValueError(f"no frame at {fps} fps falls in [{start_s}, {end_s}) of a {frames / fps} s video")
    return first, stop


def _encode(path: Path, frames: Iterator[Image.Image], size: tuple[int, int], fps: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options=X264_OPTIONS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        # x264's output depends on its thread count: one thread gives the same bytes on any machine.
        stream.codec_context.thread_count = 1
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_image(image)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def make_synthetic_video(
    path: str | Path,
    *,
    duration_s: float = 8.0,
    fps: int = 10,
    size: tuple[int, int] = (160, 120),
    signal: SignalKind | None = None,
    category: str | None = None,
    text: str | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    background: Background = "procedural",
    seed: int = 0,
    font_path: str | Path | None = None,
) -> dict:
    """Write one video; return its manifest row ``{"video", "labels", "segments"}`` (no ``id``).

    ``signal="motif"`` paints ``category``'s motif, ``signal="text"`` composites ``text`` rendered with
    ``font_path`` (default: find_cjk_font()) onto the frames with ``start_s <= i / fps < end_s``
    (``end_s`` defaults to the end; times past it are cut to it). Text with ``category=None`` is harmless: drawn, but no label or
    segment. ``segments`` holds ``{"category", "start_s", "end_s"}`` with the times of the first frame
    with the signal and of the first frame after it (given times are moved onto frames), empty for clean
    videos. ``size`` is (width, height), both even (yuv420p); ``duration_s * fps`` is rounded to whole
    frames. ``background`` is "procedural", frames from load_background_clip at this size and fps, or
    a clip's path. The same seed gives the same background whatever the signal, and the same file.
    """
    path, (width, height), frames = Path(path), size, round(duration_s * fps)
    if width % 2 or height % 2 or width <= 0 or height <= 0:
        raise ValueError(f"size must be two positive even numbers (width, height), got {size}")
    if frames < 1:
        raise ValueError(f"duration_s={duration_s} at {fps} fps is no frame")
    first, stop = 0, 0
    if signal is not None:
        first, stop = _visible_frames(start_s, frames / fps if end_s is None else end_s, frames, fps)
    # Separate generators: the background does not depend on the signal, so tests can render it alone.
    background_rng, signal_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    overlay = _overlay(signal, category, text, stop - first, size, signal_rng, font_path)
    images = _background_frames(background, frames, size, fps, background_rng)

    def with_signal() -> Iterator[Image.Image]:
        for i, image in enumerate(images):
            if overlay is not None and first <= i < stop:
                overlay(image, i - first)
            yield image

    _encode(path, with_signal(), size, fps)
    if signal is None or category is None:
        return {"video": str(path), "labels": [], "segments": []}
    return {"video": str(path), "labels": [category],
            "segments": [{"category": category, "start_s": first / fps, "end_s": stop / fps}]}


def _overlay(signal: SignalKind | None, category: str | None, text: str | None, frames: int, size: tuple[int, int],
             rng: np.random.Generator, font_path: str | Path | None) -> Overlay | None:
    if signal is None:
        if category is not None or text is not None:
            raise ValueError("category and text need a signal ('motif' or 'text')")
        return None
    if signal == "motif":
        if category is None or text is not None:
            raise ValueError("signal='motif' needs a category and no text")
        check_categories([category])
        return _motif_overlay(category, frames, size, rng)
    if signal == "text":
        if not text:
            raise ValueError("signal='text' needs a text")
        return _text_overlay(text, size, rng, font_path)
    raise ValueError(f"signal must be 'motif', 'text' or None, got {signal!r}")


def _write_video_splits(
    directory: str | Path,
    counts: dict[str, int],
    positives: list[dict],
    negatives: list[dict],
    *,
    clean_fraction: float,
    duration_s: tuple[float, float],
    signal_s: tuple[float, float],
    fps: int,
    size: tuple[int, int],
    backgrounds: Sequence[str | Path],
    seed: int,
    font_path: str | Path | None = None,
) -> dict[str, Path]:
    """Per split, ``round(clean_fraction * count)`` videos get a negative's arguments for make_synthetic_video,
    the others a positive's, in a seeded order. Each list is shuffled once, then taken in turn: a list of
    categories stays balanced, and a long list of texts sorted by category is not taken one category at a time."""
    if not 0 <= clean_fraction <= 1:
        raise ValueError(f"clean_fraction must be in [0, 1], got {clean_fraction}")
    if not 0 < signal_s[0] <= signal_s[1] <= duration_s[0] <= duration_s[1]:
        raise ValueError(f"need 0 < signal lengths {signal_s} <= durations {duration_s}")
    directory = Path(directory)
    (directory / "videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pools = {"positive": [positives[i] for i in rng.permutation(len(positives))],
             "negative": [negatives[i] for i in rng.permutation(len(negatives))]}
    max_frames = max(1, CLIP_MEMORY_BYTES // (size[0] * size[1] * 3))
    choices: list[Background] = ["procedural"]
    choices += [load_background_clip(p, size, fps, max_frames=max_frames, rng=rng) for p in backgrounds]

    paths, n, taken = {}, 0, {"positive": 0, "negative": 0}
    for split, count in counts.items():
        clean = round(clean_fraction * count)
        kinds = ["negative"] * clean + ["positive"] * (count - clean)
        rows = []
        for kind in (kinds[i] for i in rng.permutation(count)):
            signal = pools[kind][taken[kind] % len(pools[kind])]
            taken[kind] += 1
            # A generator per video: its length, timing, background and look depend on its number only.
            video_rng = np.random.default_rng([seed, n])
            frames = int(video_rng.integers(round(duration_s[0] * fps), round(duration_s[1] * fps) + 1))
            shown = min(int(video_rng.integers(round(signal_s[0] * fps), round(signal_s[1] * fps) + 1)), frames)
            first = int(video_rng.integers(frames - shown + 1))
            background = choices[int(video_rng.integers(len(choices)))]
            name = f"video-{n}"
            row = make_synthetic_video(
                directory / "videos" / f"{name}.mp4", duration_s=frames / fps, fps=fps, size=size, **signal,
                start_s=first / fps, end_s=(first + shown) / fps, background=background,
                seed=int(video_rng.integers(2**31)), font_path=font_path)
            rows.append({"id": name, **row, "video": f"videos/{name}.mp4"})
            n += 1
        paths[split] = write_jsonl(directory / f"{split}.jsonl", rows)
    return paths


def write_synthetic_video_splits(
    directory: str | Path,
    *,
    categories: list[str] | None = None,
    train: int = 80,
    dev: int = 20,
    test: int = 20,
    clean_fraction: float = 0.4,
    duration_s: tuple[float, float] = (6.0, 10.0),
    min_signal_s: float = 2.0,
    max_signal_s: float = 4.0,
    fps: int = 10,
    size: tuple[int, int] = (160, 120),
    backgrounds: Sequence[str | Path] = (),
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``directory/videos/*.mp4`` and ``{train,dev,test}.jsonl`` of motif videos.

    Rows are ``{"id", "video", "labels", "segments"}``, ``video`` relative to the manifest. A violating
    video shows one category's motif (``categories``, default DEFAULT_CATEGORIES) for ``min_signal_s`` to
    ``max_signal_s`` seconds from a random time; ``clean_fraction`` of each split shows none. Durations
    are drawn from the ``duration_s`` range. Each video's background is the procedural one or one of the
    clips in ``backgrounds`` (decoded once here, from a random place when long), chosen uniformly.
    """
    categories = categories or DEFAULT_CATEGORIES
    check_categories(categories)
    return _write_video_splits(
        directory, {"train": train, "dev": dev, "test": test},
        [{"signal": "motif", "category": c} for c in categories], [{"signal": None}],
        clean_fraction=clean_fraction, duration_s=duration_s, signal_s=(min_signal_s, max_signal_s), fps=fps,
        size=size, backgrounds=backgrounds, seed=seed)


def write_text_overlay_splits(
    directory: str | Path,
    *,
    positives: list[tuple[str, str]],
    negatives: Sequence[str] = (),
    train: int = 40,
    dev: int = 10,
    test: int = 10,
    clean_fraction: float = 0.4,
    duration_s: tuple[float, float] = (6.0, 10.0),
    min_signal_s: float = 2.0,
    max_signal_s: float = 4.0,
    fps: int = 10,
    size: tuple[int, int] = (480, 270),
    backgrounds: Sequence[str | Path] = (),
    font_path: str | Path | None = None,
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``directory/videos/*.mp4`` and ``{train,dev,test}.jsonl`` of videos with burnt-in text.

    Same rows and choices as write_synthetic_video_splits, but a violating video shows a ``(text,
    category)`` of ``positives`` as a rendered caption, and a clean one a text of ``negatives`` (no
    segment), or nothing when there are none. Texts are used in turn, so with few of them the splits
    share texts. Keep them to a line or two (about 12 Chinese characters per line at 480x270), or they
    are shrunk to fit the frame and may become unreadable.
    """
    if not positives:
        raise ValueError("positives must hold at least one (text, category)")
    return _write_video_splits(
        directory, {"train": train, "dev": dev, "test": test},
        [{"signal": "text", "text": text, "category": category} for text, category in positives],
        [{"signal": "text", "text": text} for text in negatives] or [{"signal": None}],
        clean_fraction=clean_fraction, duration_s=duration_s, signal_s=(min_signal_s, max_signal_s), fps=fps,
        size=size, backgrounds=backgrounds, seed=seed, font_path=font_path)


def plant_video(rng: np.random.Generator, category: str | None, borderline: bool, path: Path | None,
                duration_s: tuple[float, float] = (5.0, 8.0), signal_s: tuple[float, float] = (2.0, 3.5), fps: int = 8,
                size: tuple[int, int] = (96, 72)) -> dict:
    """A synthetic post's video (the ``video`` planter of :mod:`modelkit.data.synthetic`):
    ``category``'s motif from ``t0`` to ``t1`` seconds of a procedural clip, written to ``path``."""
    if path is None:
        raise ValueError("a video part needs a path to write to")
    if borderline:
        raise ValueError("synthetic videos have no borderline form; plant a borderline text or picture")
    frames = int(rng.integers(round(duration_s[0] * fps), round(duration_s[1] * fps) + 1))
    seed = int(rng.integers(2**31))
    if category is None:
        make_synthetic_video(path, duration_s=frames / fps, fps=fps, size=size, seed=seed)
        return {"value": str(path), "location": None}
    shown = min(int(rng.integers(round(signal_s[0] * fps), round(signal_s[1] * fps) + 1)), frames)
    first = int(rng.integers(frames - shown + 1))
    row = make_synthetic_video(path, duration_s=frames / fps, fps=fps, size=size, signal="motif", category=category,
                               start_s=first / fps, end_s=(first + shown) / fps, seed=seed)
    segment = row["segments"][0]
    return {"value": str(path), "location": {"t0": segment["start_s"], "t1": segment["end_s"]}}
