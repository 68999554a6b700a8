"""Text in pictures: RapidOCR (PP-OCRv4 detection + recognition, ONNX models in its wheel), with a
disk cache keyed by the picture's content hash.

OCR costs about 0.2 s per picture on 2 CPU cores, far more than scoring the text, and training
reads every picture once per epoch: the cache makes every read after the first free. It lives in
``$MODELKIT_OCR_CACHE`` (default ``~/.cache/modelkit/ocr``; ``off`` disables it) and holds only
recognised text, one JSON file per picture and OCR setting. Its place is never read from a
checkpoint, so a downloaded checkpoint cannot make the library write elsewhere.

What the cache says a picture says is what a classifier scores, so an entry is only believed when
it was written by this user (the folder is private: a folder that others could write to is not
used) for this very picture (its SHA-256), by this engine version and these settings.

Evasions the reader undoes: text turned a quarter or half turn (read again upside down when the
upright read finds text regions but no confident line), and text in long screenshots (read in
overlapping tiles, which detection does not shrink until small text vanishes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import stat
import tempfile
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..config import ConfigError

CACHE_ENV = "MODELKIT_OCR_CACHE"
# The layout of a cache entry; entries of another layout are read again.
CACHE_FORMAT = 2
# What reading a picture means (2: tiles and turns); bumped whenever it changes what a picture
# yields, so that entries of an older reader are read again.
READER_VERSION = 2
# The upright read is believed when one of its lines scores at least this; recognition reads
# turned text as garbage scoring at most about 0.55, upright text at 0.9 and more.
CONFIDENT = 0.8
# RapidOCR 1.4 shrinks every picture to this many pixels on its longer side, whatever
# det_limit_side_len says (it only counts under det_limit_type "min"). Pictures longer than that and
# than TILE_ABOVE times their breadth are read in tiles of TILE_ASPECT times their breadth (or of
# ENGINE_MAX_SIDE, if longer); phone screenshots, about 2.2:1, are read whole.
ENGINE_MAX_SIDE = 2000
TILE_ABOVE = 2.5
TILE_ASPECT = 2.0
# Tiles overlap by this share of their length, so that a line cut by a boundary is whole next door.
TILE_OVERLAP = 0.25
# RapidOCR turns a detected region a quarter turn before recognition when it is this much taller
# than wide: such lines run down the picture.
ENGINE_TALL = 1.5
ANGLES = (0, 90, 180, 270)

logger = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass
class OcrConfig:
    # Lines recognised with a lower confidence are dropped.
    min_score: float = 0.5
    # Detection shrinks pictures whose longer side exceeds this (never enlarges: RapidOCR's
    # default enlarges every picture to 736 px on the shorter side, 5x slower on screenshots).
    max_side: int = 960

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"ocr.min_score must be in [0, 1], got {self.min_score}")
        if self.max_side < 32:
            raise ValueError(f"ocr.max_side must be >= 32, got {self.max_side}")


@dataclass
class OcrLine:
    text: str
    box: list[list[float]]  # four corners in picture pixels, clockwise from the top left
    score: float
    # How far the line is turned clockwise from upright, in degrees: 90 runs down the picture,
    # 180 is upside down.
    angle: int = 0


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def join_lines(lines: list[str]) -> str:
    """One text from OCR lines: no space where a line break splits Chinese (which has no spaces),
    a space elsewhere (between English words)."""
    text = ""
    for line in lines:
        if text and not (_wide(text[-1]) and _wide(line[0])):
            text += " "
        text += line
    return text


def cache_dir() -> Path | None:
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() == "off":
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "modelkit" / "ocr"


def _not_private(info: os.stat_result) -> str | None:
    """Why someone other than this user could have put there what is there, or None."""
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link"
    if info.st_uid != os.geteuid():
        return f"it belongs to user id {info.st_uid}, not to this user ({os.geteuid()})"
    if info.st_mode & 0o022:
        return f"others may write to it (mode {stat.filemode(info.st_mode)})"
    return None


def private_cache_dir() -> Path | None:
    """The cache folder (created 0700 where missing), or None when the cache is off or others could
    plant entries in it (then a warning, once per process and folder)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        reason = _not_private(folder.lstat())
    except OSError as error:
        reason = f"it cannot be made ({error.strerror})"
    if reason is None:
        return folder
    if str(folder) not in _warned:
        _warned.add(str(folder))
        logger.warning("OCR cache %s is not used, pictures are read every time: %s. Use a folder only "
                       "you can write to (chmod 700), or set %s=off.", folder, reason, CACHE_ENV)
    return None


def _engine_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rapidocr-onnxruntime")
    except PackageNotFoundError:
        return "missing"


def _read_private(path: Path) -> Any:
    """A JSON file that this user wrote (not a link, nobody else may write to it), else None."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with open(fd, encoding="utf-8") as handle:
        return None if _not_private(os.fstat(fd)) else json.load(handle)


def _line(stored: dict[str, Any]) -> OcrLine:
    """A line of a cache entry, checked field by field (ValueError or TypeError when damaged)."""
    text, box, angle = stored["text"], [[float(x), float(y)] for x, y in stored["box"]], stored["angle"]
    score = float(stored["score"])
    if not isinstance(text, str) or len(box) != 4 or not 0.0 <= score <= 1.0 or angle not in ANGLES:
        raise ValueError(f"bad OCR line {stored!r}")
    return OcrLine(text, box, score, angle)


# -- geometry of lines ---------------------------------------------------------------------------
def _bounds(box: list[list[float]]) -> tuple[float, float, float, float]:
    xs, ys = [x for x, _ in box], [y for _, y in box]
    return min(xs), min(ys), max(xs), max(ys)


def _around(lines: list[OcrLine]) -> tuple[float, float, float, float]:
    """The bounding rectangle of several lines."""
    x0s, y0s, x1s, y1s = zip(*(_bounds(line.box) for line in lines))
    return min(x0s), min(y0s), max(x1s), max(y1s)


def _rectangle(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _sides(box: list[list[float]]) -> tuple[float, float]:
    """The width and height of a region, measured as RapidOCR does to cut it out."""
    p0, p1, p2, p3 = np.asarray(box, float)
    return (max(np.linalg.norm(p0 - p1), np.linalg.norm(p2 - p3)),
            max(np.linalg.norm(p0 - p3), np.linalg.norm(p1 - p2)))


def _runs_down(box: list[list[float]]) -> bool:
    """Whether RapidOCR recognises this region turned a quarter turn counter-clockwise."""
    width, height = _sides(box)
    return height >= ENGINE_TALL * width


def _straightened(image: Image.Image, box: list[list[float]]) -> Image.Image:
    """The region cut out of the picture as RapidOCR cuts it for recognition: straightened, and
    turned a quarter turn counter-clockwise when it runs down."""
    width, height = (max(round(side), 1) for side in _sides(box))
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = box
    region = image.transform((width, height), Image.Transform.QUAD, (x0, y0, x3, y3, x2, y2, x1, y1),
                             Image.Resampling.BICUBIC)
    return region.transpose(Image.Transpose.ROTATE_90) if _runs_down(box) else region


def _span_overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


def _shared(a: OcrLine, b: OcrLine) -> float:
    """The share of the smaller line's bounding rectangle that the other covers."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = _bounds(a.box), _bounds(b.box)
    across, down = _span_overlap((ax0, ax1), (bx0, bx1)), _span_overlap((ay0, ay1), (by0, by1))
    smaller = min((ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0))
    return max(across, 0.0) * max(down, 0.0) / smaller if smaller > 0 else 0.0


def _confident(lines: list[OcrLine]) -> bool:
    return any(line.score >= CONFIDENT for line in lines)


def _weight(lines: list[OcrLine]) -> float:
    """How much confident text a read found: letters, digits and Chinese characters (recognition
    reads textures as rows of symbols, confidently)."""
    return sum(line.score * sum(char.isalnum() for char in line.text) for line in lines)


def _upright(line: OcrLine, turns: int) -> tuple[float, float, float]:
    """The line's centre in the picture turned ``turns`` quarter turns counter-clockwise, and its
    thickness."""
    x0, y0, x1, y1 = _bounds(line.box)
    x, y = (x0 + x1) / 2, (y0 + y1) / 2
    for _ in range(turns):
        x, y = y, -x
    return x, y, min(x1 - x0, y1 - y0)


def _reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """The lines in the order their reader takes them: rows from the top, each from the left, in
    the picture turned so that most lines stand upright (lines less than half a line apart across
    share a row)."""
    turns = Counter(line.angle for line in lines).most_common(1)[0][0] // 90 if lines else 0
    rows: list[tuple[float, list[OcrLine]]] = []
    for line in sorted(lines, key=lambda line: _upright(line, turns)[1]):
        _, across, thickness = _upright(line, turns)
        if rows and across - rows[-1][0] < thickness / 2:
            rows[-1][1].append(line)
        else:
            rows.append((across, [line]))
    return [line for _, row in rows for line in sorted(row, key=lambda line: _upright(line, turns)[0])]


# -- tiles ---------------------------------------------------------------------------------------
def tile_spans(length: int, breadth: int) -> list[tuple[int, int]]:
    """Where to cut a picture along its longer side: nowhere for most pictures; a long one (which
    the engine would shrink until small text vanishes) in tiles overlapping by TILE_OVERLAP or more."""
    if length <= max(ENGINE_MAX_SIDE, TILE_ABOVE * breadth):
        return [(0, length)]
    tile = max(round(TILE_ASPECT * breadth), ENGINE_MAX_SIDE)
    overlap = round(TILE_OVERLAP * tile)
    count = math.ceil((length - overlap) / (tile - overlap))
    return [(int(start), int(start) + tile) for start in np.linspace(0, length - tile, count).round()]


def _in_picture(line: OcrLine, start: int, tall: bool) -> OcrLine:
    """A tile's line in the coordinates of the picture the tile was cut from."""
    shift = [0.0, float(start)] if tall else [float(start), 0.0]
    return OcrLine(line.text, [[x + shift[0], y + shift[1]] for x, y in line.box], line.score, line.angle)


def _maybe_cut(line: OcrLine, span: tuple[int, int], length: int, tall: bool) -> bool:
    """Whether a tile boundary inside the picture may cut the line: it comes within a character
    (its thickness) of one, as detection leaves out characters the boundary cuts."""
    x0, y0, x1, y1 = _bounds(line.box)
    low, high = (y0, y1) if tall else (x0, x1)
    margin = min(x1 - x0, y1 - y0)
    return (span[0] > 0 and low <= span[0] + margin) or (span[1] < length and high >= span[1] - margin)


def _same_line(a: OcrLine, b: OcrLine, tall: bool) -> bool:
    """Whether two pieces cut from neighbouring tiles are parts of one line: they meet along the
    tiling direction and lie mostly side by side across it."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = _bounds(a.box), _bounds(b.box)
    along, across = ((ay0, ay1), (by0, by1)), ((ax0, ax1), (bx0, bx1))
    if not tall:
        along, across = across, along
    narrower = min(across[0][1] - across[0][0], across[1][1] - across[1][0])
    return _span_overlap(*along) >= 0 and _span_overlap(*across) >= 0.5 * narrower


def _pieces(cut: list[OcrLine], tall: bool) -> list[list[OcrLine]]:
    """The cut lines grouped into the lines they were cut from."""
    groups: list[list[OcrLine]] = []
    for line in cut:
        joined = [group for group in groups if any(_same_line(line, other, tall) for other in group)]
        groups = [group for group in groups if all(group is not other for other in joined)]
        groups.append([line, *(member for group in joined for member in group)])
    return groups


def _unique(lines: list[OcrLine]) -> list[OcrLine]:
    """Lines read whole in two overlapping tiles, once (the more confident read)."""
    kept: list[OcrLine] = []
    for line in lines:
        twin = next((index for index, other in enumerate(kept) if _shared(line, other) >= 0.5), None)
        if twin is None:
            kept.append(line)
        elif line.score > kept[twin].score:
            kept[twin] = line
    return kept


class TextReader:
    """Reads the lines of text in a picture. The OCR engine is created on first use in each
    process (ONNX sessions cannot be sent to DataLoader workers)."""

    def __init__(self, config: OcrConfig) -> None:
        self.config = config
        self._engine = None
        # Everything an entry must match besides the picture; it also names the entry's file, so
        # that readers with other settings keep their own entries.
        self._identity = {"format": CACHE_FORMAT, "engine": f"rapidocr-onnxruntime {_engine_version()}",
                          "settings": {**asdict(config), "reader": READER_VERSION}}
        self._salt = hashlib.sha256(json.dumps(self._identity, sort_keys=True).encode()).digest()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_engine": None}

    def _get_engine(self):
        if self._engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError:
                raise ConfigError("ocr_text needs RapidOCR: pip install 'modelkit[image]' "
                                  "(rapidocr-onnxruntime)") from None
            # Every region comes back, however unsure: whether to read them again turned over
            # depends on them; min_score filters afterwards.
            self._engine = RapidOCR(det_limit_type="max", det_limit_side_len=self.config.max_side, text_score=0.0)
        return self._engine

    # -- cache -----------------------------------------------------------------------------------
    def key(self, content: bytes) -> str:
        """The picture's digest (SHA-256 of its content), under which its lines are cached."""
        return hashlib.sha256(content).hexdigest()

    def _entry_path(self, folder: Path, digest: str) -> Path:
        name = hashlib.sha256(self._salt + digest.encode()).hexdigest()
        return folder / name[:2] / f"{name}.json"

    def cached(self, digest: str) -> list[OcrLine] | None:
        """The lines cached for the picture, or None when the entry is missing or not this
        picture's, this engine's and these settings' (old, misfiled, damaged or planted)."""
        folder = private_cache_dir()
        if folder is None:
            return None
        try:
            entry = _read_private(self._entry_path(folder, digest))
            if not isinstance(entry, dict) or entry.get("digest") != digest or any(
                    entry.get(field) != value for field, value in self._identity.items()):
                return None
            return [_line(stored) for stored in entry["lines"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _store(self, digest: str, lines: list[OcrLine]) -> None:
        folder = private_cache_dir()
        if folder is None:
            return
        target = self._entry_path(folder, digest)
        entry = {**self._identity, "digest": digest, "lines": [asdict(line) for line in lines]}
        try:
            target.parent.mkdir(mode=0o700, exist_ok=True)
            # Written whole, then renamed: workers reading the same picture never see half a file.
            # The temporary file is made 0600, so the entry is the user's alone.
            with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, suffix=".tmp",
                                             encoding="utf-8") as handle:
                json.dump(entry, handle, ensure_ascii=False)
            os.replace(handle.name, target)
        except OSError:
            pass  # a read-only or full cache costs time, never a result

    # -- reading ---------------------------------------------------------------------------------
    def read(self, digest: str, load: Callable[[], Image.Image]) -> list[OcrLine]:
        """The lines of the picture ``load()`` decodes (RGB), from the cache under ``digest`` (see
        :meth:`key`) when there (then the picture is not even decoded)."""
        lines = self.cached(digest)
        if lines is None:
            lines = self._read_picture(load())
            self._store(digest, lines)
        return lines

    def _read_picture(self, image: Image.Image) -> list[OcrLine]:
        """The lines scoring min_score or more, in reading order. Every text region is read upright;
        when none reads confidently, each is read again turned over, and the turned reads win when
        confident and weightier. RapidOCR reads regions taller than wide a quarter turn counter-clockwise,
        so the two reads cover text turned by any quarter turn."""
        regions = self._read_tiles(image)
        lines = self._kept(regions)
        if regions and not _confident(lines):
            turned = self._kept([self._read_turned_over(image, region) for region in regions])
            if _confident(turned) and _weight(turned) > _weight(lines):
                lines = turned
        return _reading_order(lines)

    def _kept(self, lines: list[OcrLine]) -> list[OcrLine]:
        return [line for line in lines if line.text and line.score >= self.config.min_score]

    def _read_tiles(self, image: Image.Image) -> list[OcrLine]:
        """Every text region of the picture, read in tiles (see :func:`tile_spans`). A line cut by
        a tile boundary is dropped where a neighbour read it whole, or else read again from its
        joined pieces."""
        pixels = np.asarray(image)
        height, width = pixels.shape[:2]
        tall = height >= width
        length = max(height, width)
        spans = tile_spans(length, min(height, width))
        if len(spans) == 1:
            return self._read_whole(pixels)
        whole, cut = [], []
        for span in spans:
            tile = np.ascontiguousarray(pixels[span[0]:span[1]] if tall else pixels[:, span[0]:span[1]])
            for line in self._read_whole(tile):
                line = _in_picture(line, span[0], tall)
                (cut if _maybe_cut(line, span, length, tall) else whole).append(line)
        whole = _unique(whole)
        pieces = [line for line in cut if all(_shared(line, other) < 0.5 for other in whole)]
        return whole + [self._read_joined(image, group) for group in _pieces(pieces, tall)]

    def _read_whole(self, pixels: np.ndarray) -> list[OcrLine]:
        """Every text region detection finds, read upright (however unsure)."""
        result, _ = self._get_engine()(pixels, use_cls=False)
        lines = []
        for box, text, score in result or []:
            corners = np.asarray(box, float).tolist()
            lines.append(OcrLine(str(text), corners, float(score), 90 if _runs_down(corners) else 0))
        return lines

    def _read_joined(self, image: Image.Image, pieces: list[OcrLine]) -> OcrLine:
        """The line whose pieces these are, read in the rectangle around them."""
        box = _rectangle(*_around(pieces))
        text, score = self._recognise(_straightened(image, box))
        return OcrLine(text, box, score, 90 if _runs_down(box) else 0)

    def _read_turned_over(self, image: Image.Image, region: OcrLine) -> OcrLine:
        """The region read after a half turn."""
        text, score = self._recognise(_straightened(image, region.box).rotate(180))
        return OcrLine(text, region.box, score, (region.angle + 180) % 360)

    def _recognise(self, line: Image.Image) -> tuple[str, float]:
        """The text of a picture of one line, and its score (recognition only)."""
        result, _ = self._get_engine()(np.asarray(line), use_det=False, use_cls=False)
        return (str(result[0][0]), float(result[0][1])) if result else ("", 0.0)
