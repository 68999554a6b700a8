"""Text in pictures: RapidOCR (PP-OCRv4 detection + recognition, ONNX models in its wheel), with a
disk cache keyed by the picture's content hash.

OCR costs about 0.2 s per picture on 2 CPU cores, far more than scoring the text, and training
reads every picture once per epoch: the cache makes every read after the first free. It lives in
``$MODELKIT_OCR_CACHE`` (default ``~/.cache/modelkit/ocr``; ``off`` disables it) and holds only
recognised text, one JSON file per picture and OCR setting. Its place is never read from a
checkpoint, so a downloaded checkpoint cannot make the library write elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..config import ConfigError

CACHE_ENV = "MODELKIT_OCR_CACHE"


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
    box: list[list[float]]  # four corners, clockwise from top left, in pixels
    score: float


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


def _engine_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rapidocr-onnxruntime")
    except PackageNotFoundError:
        return "missing"


class TextReader:
    """Reads the lines of text in a picture. The OCR engine is created on first use in each
    process (ONNX sessions cannot be sent to DataLoader workers)."""

    def __init__(self, config: OcrConfig) -> None:
        self.config = config
        self._engine = None
        settings = json.dumps({**asdict(config), "engine": _engine_version()}, sort_keys=True)
        self._salt = hashlib.sha256(settings.encode()).digest()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_engine": None}

    def _get_engine(self):
        if self._engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError:
                raise ConfigError("ocr_text needs RapidOCR: pip install 'modelkit[image]' "
                                  "(rapidocr-onnxruntime)") from None
            self._engine = RapidOCR(det_limit_type="max", det_limit_side_len=self.config.max_side,
                                    text_score=self.config.min_score)
        return self._engine

    def key(self, content: bytes) -> str:
        return hashlib.sha256(self._salt + content).hexdigest()

    def cached(self, key: str) -> list[OcrLine] | None:
        folder = cache_dir()
        if folder is None:
            return None
        try:
            stored = json.loads((folder / key[:2] / f"{key}.json").read_text(encoding="utf-8"))
            return [OcrLine(str(line["text"]), line["box"], float(line["score"])) for line in stored]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _store(self, key: str, lines: list[OcrLine]) -> None:
        folder = cache_dir()
        if folder is None:
            return
        target = folder / key[:2] / f"{key}.json"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Written whole, then renamed: workers reading the same picture never see half a file.
            with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, suffix=".tmp",
                                             encoding="utf-8") as handle:
                json.dump([asdict(line) for line in lines], handle, ensure_ascii=False)
            os.replace(handle.name, target)
        except OSError:
            pass  # a read-only or full cache costs time, never a result

    def read(self, key: str, load: Callable[[], Image.Image]) -> list[OcrLine]:
        """The lines of the picture ``load()`` decodes (RGB), from the cache under ``key`` when there
        (then the picture is not even decoded)."""
        lines = self.cached(key)
        if lines is None:
            result, _ = self._get_engine()(np.asarray(load()), use_cls=False)
            lines = [OcrLine(str(text), [[float(x), float(y)] for x, y in box], float(score))
                     for box, text, score in (result or []) if float(score) >= self.config.min_score]
            self._store(key, lines)
        return lines
