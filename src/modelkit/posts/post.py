"""A post: what a platform acts on, with its text fields, pictures and video.

A manifest row ``{"id", "account_id"?, "created_at"?, "text"?, "images"?, "video"?}`` becomes a :class:`Post`
(paths resolved against the manifest's folder); :meth:`Post.parts` names its parts the way a
decision's evidence does: ``text.<field>``, ``images[i]``, ``video``. A part that cannot be used
(a path that leads out of the folder) is kept with its problem, so the decision lists it as
unread rather than dropping it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Mapping

from ..data.records import DataError, resolve_path

PartKind = Literal["text", "image", "video"]
# A plain string is the post's body: the field a title-less post has.
DEFAULT_TEXT_FIELD = "body"
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_field_name(name: Any) -> bool:
    """A text field's name: ASCII letters, digits and _, not starting with a digit."""
    return isinstance(name, str) and bool(_FIELD_NAME.match(name))


@dataclass(frozen=True, slots=True)
class Part:
    """One scoreable part of a post: ``name`` as evidence names it, its kind, the text field
    (for text), the picture index (for pictures), the value, and why it cannot be read."""

    name: str
    kind: PartKind
    value: Any
    field: str | None = None
    index: int | None = None
    problem: str | None = None


@dataclass
class Post:
    """A post to moderate. ``text`` is a string (the body) or named fields
    (``{"title": ..., "body": ...}``); ``images`` paths of pictures; ``video`` a path.

    >>> Post("p1", text={"title": "周末", "body": "去公园"}, images=["a.jpg"]).part_names
    ['text.title', 'text.body', 'images[0]']
    """

    id: str
    text: str | dict[str, str] | None = None
    images: list[str] = field(default_factory=list)
    video: str | None = None
    account_id: str | None = None
    # When it was posted (seconds since 1970, UTC): what the account ledger dates its strikes by.
    created_at: float | None = None
    # Per part name, why it cannot be read (set when a manifest row is read).
    problems: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        problem = check_post_fields(self.text, self.images, self.video)
        if problem is not None:
            raise DataError(problem)

    @property
    def text_fields(self) -> dict[str, str]:
        if self.text is None:
            return {}
        return {DEFAULT_TEXT_FIELD: self.text} if isinstance(self.text, str) else dict(self.text)

    def parts(self) -> list[Part]:
        problems = self.problems
        parts = [Part(f"text.{name}", "text", value, field=name) for name, value in self.text_fields.items()]
        parts += [Part(name, "image", path, index=i, problem=problems.get(name))
                  for i, path in enumerate(self.images) for name in (f"images[{i}]",)]
        if self.video is not None:
            parts.append(Part("video", "video", self.video, problem=problems.get("video")))
        return parts

    @property
    def part_names(self) -> list[str]:
        return [part.name for part in self.parts()]

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id}
        if self.account_id is not None:
            row["account_id"] = self.account_id
        if self.text is not None:
            row["text"] = self.text
        if self.images:
            row["images"] = list(self.images)
        if self.video is not None:
            row["video"] = self.video
        if self.created_at is not None:
            row["created_at"] = self.created_at
        return row


def check_post_fields(text: Any, images: Any, video: Any) -> str | None:
    """What is wrong with a post's fields (None: nothing), naming the field."""
    if text is not None:
        if isinstance(text, Mapping):
            for name, value in text.items():
                if not is_field_name(name):
                    return f"field 'text': field name {name!r} must be letters, digits and _"
                if not isinstance(value, str):
                    return f"field 'text.{name}': expected a string, got {type(value).__name__}"
        elif not isinstance(text, str):
            return f"field 'text': expected a string or an object of named strings, got {type(text).__name__}"
    if not isinstance(images, list):
        return f"field 'images': expected a list of paths, got {type(images).__name__}"
    for i, path in enumerate(images):
        if not isinstance(path, str) or not path:
            return f"field 'images[{i}]': expected a path, got {path!r}"
    if video is not None and (not isinstance(video, str) or not video):
        return f"field 'video': expected a path, got {video!r}"
    if not (text if isinstance(text, str) else any((text or {}).values()) if text is not None else False) \
            and not images and video is None:
        return "the post has no parts (no text, images or video)"
    return None


def post_from_row(row: Any, post_id: str, base: Path | None) -> Post:
    """A manifest row (already known to have the id ``post_id``) as a :class:`Post`, its paths
    resolved against ``base``; raises :class:`DataError` naming the field that is wrong."""
    if not isinstance(row, Mapping):
        raise DataError(f"expected a post object, got {type(row).__name__}")
    text, images, video = row.get("text"), row.get("images"), row.get("video")
    images = [] if images is None else images
    account = row.get("account_id")
    if account is not None and (isinstance(account, bool) or not isinstance(account, (str, int))):
        raise DataError(f"field 'account_id': expected a string or a number, got {type(account).__name__}")
    problems: dict[str, str] = {}
    if isinstance(images, list):  # anything else is Post's to refuse, naming the field
        resolved = []
        for i, path in enumerate(images):
            if isinstance(path, str) and path:
                path, problem = resolve_path(path, base)
                if problem:
                    problems[f"images[{i}]"] = problem
            resolved.append(path)
        images = resolved
    if isinstance(video, str) and video:
        video, problem = resolve_path(video, base)
        if problem:
            problems["video"] = problem
    return Post(post_id, text, images, video, None if account is None else str(account),
                None if row.get("created_at") is None else parse_time(row["created_at"], "field 'created_at'"),
                problems)


# Times are seconds since 1970 up to the end of year 9999: milliseconds (1e12 and more in 2001..)
# would land in years no calendar prints, and a strike dated there would never count.
LATEST_TIME = 253_402_300_799.0


def parse_time(value: Any, where: str) -> float:
    """Seconds since 1970 (up to year 9999) from a number or an ISO-8601 text (no zone: UTC); a
    :class:`DataError` starting with ``where`` otherwise."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float
            seconds = math.inf
    elif isinstance(value, str):
        try:
            seconds = float(value)  # seconds written as text (a command-line --at)
        except ValueError:
            try:
                moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
                seconds = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
            except (ValueError, OverflowError):
                pass
    if seconds is not None and math.isfinite(seconds):
        if 0.0 <= seconds <= LATEST_TIME:
            return seconds
        raise DataError(f"{where}: {_short(value)} is not between 1970 and 9999 in seconds since 1970 (milliseconds? "
                        "divide by 1000)")
    raise DataError(f"{where}: expected a time (seconds since 1970, or ISO-8601 like 2026-12-06T10:00:00Z), "
                    f"got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 256 else "a huge number"
    return text if len(text) <= 80 else text[:77] + "..."
