"""The decisions page: one self-contained HTML file a reviewer opens to check a moderation run.

:func:`render_decisions_page` takes the decision rows ``modelkit moderate`` writes and the posts
they judged, and writes one file that needs no network: styles and the filter script inline,
pictures as ``data:`` URIs. Per post, a card shows the action, the fused scores of the
categories that called for it, and the evidence where it lies: text spans highlighted in their
field (overlapping spans of several categories included), pictures outlined with their heat map
and box drawn over them and their OCR lines listed, the video's flagged segments on a timeline,
and the parts that could not be read. Every piece of user data is escaped.

This module is core (it never imports a modality package): it reads pictures with Pillow and
blends heat maps itself.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from PIL import Image, ImageDraw, ImageOps

from ..explain import blend_heatmap

THUMBNAIL_SIDE = 160
ACTIONS = ("remove", "review", "pass", "error")
# Badge colours (also the header's counts); the page's test finds them in a screenshot.
ACTION_COLOURS = {"pass": "#188038", "review": "#e37400", "remove": "#c5221f", "error": "#5f6368"}
MARK_COLOUR = "#fff176"  # a span of one category
MARK_OVERLAP_COLOUR = "#ffb74d"  # where spans of several categories overlap
FLAGGED_COLOUR = "#d81b60"  # outline of a picture with evidence
# Segments on a video's timeline, per category in the order categories first appear.
SEGMENT_COLOURS = ("#1a73e8", "#9334e6", "#e8710a", "#12b5cb", "#c5221f", "#188038", "#f9ab00", "#5f6368")
# Pictures larger than this are not opened for a thumbnail (decompression bombs).
MAX_PIXELS = 40_000_000
_IMAGE_PART = re.compile(r"^images\[(\d+)\]$")
_TEXT_PART = re.compile(r"^text\.(.+)$")

esc = html.escape


def render_decisions_page(decisions: Iterable[dict], posts: Mapping[str, dict], output: str | os.PathLike,
                          heatmaps: bool = True, title: str = "Moderation decisions") -> Path:
    """Write the decisions page to ``output`` (a file; an existing folder gets
    ``decisions.html``) and return its path.

    ``decisions``: rows of :meth:`Decision.to_dict` (an error row is ``{"id", "error"}``);
    ``posts``: post id -> the post row (``text``, ``images``, ``video``, ``account_id``) with
    paths resolved. ``heatmaps=False`` leaves pictures plain (boxes and outlines are still drawn),
    which is faster for large runs.
    """
    rows = list(decisions)
    colours = CategoryColours()
    cards = [post_card(row, posts.get(str(row.get("id"))), heatmaps, colours) for row in rows]
    return write_cards_page(rows, cards, output, title, "decisions.html")


def write_cards_page(rows: Sequence[Mapping[str, Any]], cards: Sequence[str], output: str | os.PathLike,
                     title: str, default_name: str, intro: str = "") -> Path:
    """A page of ``cards`` (:func:`post_card`, one per decision row of ``rows``) with the counts
    of actions and the action/category filters, written atomically to ``output`` (an existing
    folder gets ``default_name``)."""
    output = Path(output)
    if output.is_dir():
        output = output / default_name
    counts = Counter(_action(row) for row in rows)
    categories = sorted({c for row in rows for c in (row.get("categories") or [])})
    page = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="zh"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        intro,
        _summary(len(rows), counts),
        _filters(counts, categories),
        '<main id="cards">',
        *cards,
        "</main>",
        '<p id="none-shown" hidden>No post matches the filters.</p>',
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
    ])
    return write_atomically(output, lambda path: path.write_text(page, encoding="utf-8"))


def write_atomically(path: Path, write: Callable[[Path], Any]) -> Path:
    """``write`` into a hidden temporary file beside ``path``, renamed when whole: a full disk
    leaves no partial file, and the error names ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two writers never share one
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror or str(err), str(path)) from None
    return path


# --------------------------------------------------------------------------------------------
# Page parts
# --------------------------------------------------------------------------------------------
def _action(row: Mapping[str, Any]) -> str:
    if row.get("error") is not None:
        return "error"
    action = str(row.get("action") or "")
    return action if action in ACTION_COLOURS else "review"


def _badge(action: str, text: str | None = None) -> str:
    return f'<span class="badge {esc(action)}">{esc(text or action)}</span>'


def _summary(total: int, counts: Counter) -> str:
    parts = [f"<strong>{total}</strong> posts"]
    parts += [_badge(action, f"{action} {counts[action]}") for action in ACTIONS if counts[action] or action != "error"]
    return f'<p class="summary">{" ".join(parts)}</p>'


def _filters(counts: Counter, categories: Sequence[str]) -> str:
    boxes = "".join(
        f'<label><input type="checkbox" name="action" value="{esc(action)}" checked> '
        f'{_badge(action)} <span class="muted">({counts[action]})</span></label>'
        for action in ACTIONS if counts[action] or action != "error")
    options = "".join(f'<option value="{esc(c)}">{esc(c)}</option>' for c in categories)
    return (f'<form class="filters" id="filters" onsubmit="return false">'
            f"<span>Action:</span>{boxes}"
            f'<label>Category: <select id="category"><option value="">any</option>{options}</select></label>'
            f'<span class="muted"><span id="shown-count">{sum(counts.values())}</span> shown</span></form>')


def post_card(row: Mapping[str, Any], post: Mapping[str, Any] | None, heatmaps: bool,
              colours: CategoryColours, note: str = "") -> str:
    """One decision's card: its action, scores and evidence over the post's parts; ``note``:
    HTML added to the card's header (what a review item asks)."""
    action = _action(row)
    post_id = str(row.get("id"))
    post = post or {}
    account = row.get("account_id") or post.get("account_id")
    categories = [str(c) for c in (row.get("categories") or [])]
    head = [f'<span class="post-id">{esc(post_id)}</span>']
    if account is not None:
        head.append(f'<span class="muted">account {esc(str(account))}</span>')
    head.append(_badge(action))
    head.append(_scores(row.get("scores") or {}, categories))
    if note:
        head.append(note)
    body: list[str] = []
    if action == "error":
        body.append(f'<p class="error-line">Not moderated: {esc(str(row.get("error")))}</p>')
    if not post:
        body.append('<p class="muted">The post itself is not among the inputs given to the page.</p>')
    evidence = [e for e in (row.get("evidence") or []) if isinstance(e, Mapping)]
    unread = [u for u in (row.get("unread") or []) if isinstance(u, Mapping)]
    used: set[int] = set()
    body.append(_texts(post, evidence, used))
    body.append(_pictures(post, evidence, unread, heatmaps, used))
    body.append(_video(post, evidence, used, colours))
    rest = [e for n, e in enumerate(evidence) if n not in used]
    if rest:
        body.append('<ul class="other">' + "".join(f"<li>{_describe(e)}</li>" for e in rest) + "</ul>")
    if unread:
        lines = "; ".join(f'{esc(str(u.get("part", "?")))}: {esc(str(u.get("error", "")))}' for u in unread)
        body.append(f'<p class="warning">&#9888; Not read: {lines}</p>')
    return (f'<section class="card {esc(action)}" data-action="{esc(action)}" '
            f'data-categories="{esc(" ".join(categories))}" data-id="{esc(post_id)}">'
            f'<header>{" ".join(head)}</header>{"".join(body)}</section>')


def _scores(scores: Mapping[str, Any], categories: Sequence[str]) -> str:
    known = {str(c): s for c, s in scores.items() if isinstance(s, (int, float)) and not isinstance(s, bool)}
    everything = ", ".join(f"{c} {_number(s)}" for c, s in sorted(known.items(), key=lambda kv: -kv[1]))
    if categories:
        chips = [f'<span class="score">{esc(c)} <b>{_number(known[c]) if c in known else "?"}</b></span>'
                 for c in categories]
    else:
        top = sorted(known.items(), key=lambda kv: -kv[1])[:1]
        chips = [f'<span class="score muted">highest: {esc(c)} {_number(s)}</span>' for c, s in top]
    return f'<span class="scores" title="{esc(everything)}">{"".join(chips)}</span>'


def _number(value: Any) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "?"


def _describe(item: Mapping[str, Any]) -> str:
    where = ", ".join(f"{esc(str(k))} {esc(str(v))}" for k, v in item.items()
                      if k not in ("part", "category", "score", "heatmap", "ocr_lines", "member"))
    return (f'{esc(str(item.get("part", "?")))}: {esc(str(item.get("category", "?")))} '
            f'{_number(item.get("score"))}{" (" + where + ")" if where else ""}')


# -- text ----------------------------------------------------------------------------------------
def _text_fields(post: Mapping[str, Any]) -> dict[str, str]:
    text = post.get("text")
    if text is None:
        return {}
    if isinstance(text, str):
        return {"body": text}
    if isinstance(text, Mapping):
        return {str(k): str(v) for k, v in text.items() if v is not None}
    return {"body": str(text)}


def _texts(post: Mapping[str, Any], evidence: list[Mapping[str, Any]], used: set[int]) -> str:
    fields = _text_fields(post)
    blocks = []
    for name, text in fields.items():
        spans, loose = [], []
        for n, item in enumerate(evidence):
            match = _TEXT_PART.match(str(item.get("part", "")))
            if not match or match.group(1) != name:
                continue
            used.add(n)
            span = _span_of(item, text)
            (spans if span else loose).append((span, item))
        marked = _highlight(text, [(start, end, item) for (start, end), item in spans])
        flagged = " flagged" if spans or loose else ""
        notes = "".join(f'<div class="note">{_describe(item)}</div>' for _, item in loose)
        blocks.append(f'<div class="field{flagged}"><div class="label">{esc(name)}</div>'
                      f'<div class="text">{marked}</div>{notes}</div>')
    return f'<div class="texts">{"".join(blocks)}</div>' if blocks else ""


def _span_of(item: Mapping[str, Any], text: str) -> tuple[int, int] | None:
    """The item's ``[start, end)`` in ``text``: its offsets when they hold its quoted text (or it
    quotes none), else where that quote occurs; None when it cannot be placed."""
    start, end, quoted = item.get("start"), item.get("end"), item.get("text")
    if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
        if not isinstance(quoted, str) or text[start:end] == quoted:
            return start, end
    if isinstance(quoted, str) and quoted:
        found = text.find(quoted)
        if found >= 0:
            return found, found + len(quoted)
    return None


def _highlight(text: str, spans: Sequence[tuple[int, int, Mapping[str, Any]]]) -> str:
    """``text`` escaped, each stretch covered by spans in one ``<mark>`` whose title names every
    category (and score) covering it; stretches under several categories look different."""
    cuts = sorted({0, len(text), *(s for s, _, _ in spans), *(e for _, e, _ in spans)})
    out = []
    for start, end in zip(cuts, cuts[1:]):
        piece = esc(text[start:end])
        covering = [item for s, e, item in spans if s <= start and end <= e]
        if not covering:
            out.append(piece)
            continue
        names = sorted({str(item.get("category", "?")) for item in covering})
        tip = "; ".join(f'{item.get("category", "?")} {_number(item.get("score"))}'
                        + (f' (weight {_number(item.get("weight"))})' if item.get("weight") is not None else "")
                        for item in covering)
        overlap = " overlap" if len(names) > 1 else ""
        out.append(f'<mark class="span{overlap}" data-categories="{esc(" ".join(names))}" '
                   f'title="{esc(tip)}">{piece}</mark>')
    return "".join(out)


# -- pictures ------------------------------------------------------------------------------------
def _picture_index(item: Mapping[str, Any]) -> int | None:
    index = item.get("index")
    if isinstance(index, int) and not isinstance(index, bool):
        return index
    match = _IMAGE_PART.match(str(item.get("part", "")))
    return int(match.group(1)) if match else None


def _pictures(post: Mapping[str, Any], evidence: list[Mapping[str, Any]], unread: list[Mapping[str, Any]],
              heatmaps: bool, used: set[int]) -> str:
    paths = list(post.get("images") or [])
    if not paths:
        return ""
    broken = {str(u.get("part")): str(u.get("error", "")) for u in unread}
    figures = []
    for index, path in enumerate(paths):
        part = f"images[{index}]"
        mine = [(n, item) for n, item in enumerate(evidence) if _picture_index(item) == index]
        used.update(n for n, _ in mine)
        items = [item for _, item in mine]
        name = "" if path is None else Path(str(path)).name
        if part in broken:
            figures.append(_placeholder(part, name, broken[part]))
            continue
        try:
            picture, size = _open_picture(path)
        except Exception as err:  # noqa: BLE001 - any file Pillow cannot read becomes a placeholder
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            figures.append(_placeholder(part, name, f"cannot open for the page: {reason}"))
            continue
        ocr = [line for item in items for line in (item.get("ocr_lines") or []) if isinstance(line, Mapping)]
        located = [item for item in items if item.get("box") is not None or item.get("heatmap") is not None]
        unlocated = [item for item in items if all(item is not other for other in located)]
        # With heat maps, a view of the picture per located item (the others captioned on the
        # first); without, one view with every box.
        views = located if (located and heatmaps) else [None]
        for number, item in enumerate(views):
            boxes = [i["box"] for i in (located if item is None else [item]) if _is_box(i.get("box"))]
            uri = _thumbnail(picture, size, item.get("heatmap") if item is not None else None, boxes, ocr)
            flagged = bool(items)
            caption = [f"{esc(part)} <span class='muted'>{esc(name)}</span>"]
            shown = items if item is None else [item] + (unlocated if number == 0 else [])
            caption += [f'<span class="score">{esc(str(i.get("category", "?")))} <b>{_number(i.get("score"))}</b>'
                        + (f' <span class="muted">weight {_number(i.get("weight"))}</span>'
                           if i.get("weight") is not None else "") + "</span>" for i in shown]
            kind = "heatmap" if item is not None and item.get("heatmap") is not None else "picture"
            figures.append(f'<figure class="picture{" flagged" if flagged else ""}" data-kind="{kind}">'
                           f'<img src="{uri}" alt="{esc(part)}" title="{esc(str(path))}">'
                           f'<figcaption>{"<br>".join(caption)}</figcaption></figure>')
        if ocr:
            lines = "".join(f'<li>&#8220;{esc(str(line.get("text", "")))}&#8221; '
                            f'<span class="muted">{_number(line.get("score"))}</span></li>' for line in ocr)
            figures.append(f'<div class="ocr"><div class="label">{esc(part)} text read (OCR)</div>'
                           f'<ul>{lines}</ul></div>')
    return f'<div class="pictures">{"".join(figures)}</div>'


def _placeholder(part: str, name: str, error: str) -> str:
    return (f'<figure class="picture unread"><div class="missing">&#9888; not read</div>'
            f'<figcaption>{esc(part)} <span class="muted">{esc(name)}</span><br>'
            f'<span class="error-text">{esc(error)}</span></figcaption></figure>')


def _is_box(box: Any) -> bool:
    return (isinstance(box, (list, tuple)) and len(box) == 4
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in box))


def _open_picture(path: Any) -> tuple[Image.Image, tuple[int, int]]:
    """The picture upright in RGB (a large JPEG decoded at a reduced scale), and its size as
    shown (EXIF orientation applied): the pixels evidence boxes are given in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(str(path))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValueError(f"{width}x{height} pixels is too large to show")
        if image.getexif().get(0x0112) in (5, 6, 7, 8):  # stored sideways
            width, height = height, width
        if image.format == "JPEG":
            image.draft("RGB", (THUMBNAIL_SIDE * 2, THUMBNAIL_SIDE * 2))
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background, (width, height)
    return image.convert("RGB"), (width, height)


def _draw_box(draw: ImageDraw.ImageDraw, box: Sequence[float], sx: float, sy: float) -> None:
    """An evidence box (original pixels) in red on a picture scaled by ``sx``, ``sy``."""
    x0, y0, x1, y1 = box
    draw.rectangle((x0 * sx, y0 * sy, max(x0 * sx, x1 * sx - 1), max(y0 * sy, y1 * sy - 1)), outline=(255, 0, 0),
                   width=2)


def _thumbnail(picture: Image.Image, size: tuple[int, int], heatmap: Any, boxes: Sequence[Sequence[float]],
               ocr: Sequence[Mapping[str, Any]]) -> str:
    """A JPEG data URI of ``picture`` at most :data:`THUMBNAIL_SIDE` a side, the heat map blended
    over it, evidence boxes in red and OCR lines' quadrilaterals in blue (given in the pixels of
    the picture at its full ``size``)."""
    width, height = size
    thumb = picture.copy()
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    if max(thumb.size) < THUMBNAIL_SIDE // 2:  # a tiny picture is enlarged in whole steps, to be seen
        step = THUMBNAIL_SIDE // 2 // max(thumb.size) + 1
        thumb = thumb.resize((thumb.width * step, thumb.height * step), Image.Resampling.NEAREST)
    sx, sy = thumb.width / width, thumb.height / height
    if heatmap is not None:
        thumb = blend_heatmap(thumb, heatmap)
    draw = ImageDraw.Draw(thumb)
    for line in ocr:
        quad = line.get("box")
        try:
            points = [(float(x) * sx, float(y) * sy) for x, y in quad]
        except (TypeError, ValueError):
            continue
        if len(points) >= 3:
            draw.polygon(points, outline=(26, 115, 232))
    for box in boxes:
        _draw_box(draw, box, sx, sy)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# -- video ---------------------------------------------------------------------------------------
class CategoryColours:
    def __init__(self) -> None:
        self.known: dict[str, str] = {}

    def __call__(self, category: str) -> str:
        if category not in self.known:
            self.known[category] = SEGMENT_COLOURS[len(self.known) % len(SEGMENT_COLOURS)]
        return self.known[category]


def _seconds(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _video(post: Mapping[str, Any], evidence: list[Mapping[str, Any]], used: set[int],
           colours: CategoryColours) -> str:
    segments = []
    for n, item in enumerate(evidence):
        if str(item.get("part", "")) == "video":
            used.add(n)
            segments.append(item)
    video = post.get("video")
    if not video and not segments:
        return ""
    name = esc(Path(str(video)).name) if video else "(no video in the post)"
    placed = [s for s in segments if _seconds(s.get("t0")) is not None and _seconds(s.get("t1")) is not None]
    loose = [s for s in segments if s not in placed]
    timeline = _timeline(placed, colours) if placed else ""
    notes = "".join(f'<div class="note">{_describe(s)}</div>' for s in loose)
    if not segments:
        notes += '<div class="muted">no evidence in the video</div>'
    flagged = " flagged" if segments else ""
    return (f'<div class="video{flagged}"><div class="label">video <span class="muted" title="{esc(str(video))}">'
            f"{name}</span></div>{timeline}{notes}</div>")


def _tick_step(duration: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if duration / step <= 10:
            return float(step)
    return 3600.0 * math.ceil(duration / 36000)


def _clock(seconds: float) -> str:
    """``4.5 s``, or ``1:15.5`` / ``2:00`` from a minute on."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds, 1), 60)
    return f"{int(minutes)}:{rest:02.0f}" if rest == int(rest) else f"{int(minutes)}:{rest:04.1f}"


def _timeline(segments: list[Mapping[str, Any]], colours: CategoryColours) -> str:
    """An inline SVG: the video's duration as a bar per segment (its category at the left), the
    segment drawn on it, its peak marked, times labelled; a time axis below."""
    duration = max([_seconds(s.get("duration_s")) or 0.0 for s in segments]
                   + [_seconds(s.get("t1")) or 0.0 for s in segments] + [0.1])
    label_width, bar_width, right, row_height, top = 130, 520, 20, 34, 6
    width = label_width + bar_width + right

    def x(t: float) -> float:
        return label_width + bar_width * min(max(t, 0.0), duration) / duration

    parts = []
    for row, segment in enumerate(segments):
        y = top + row * row_height
        category = str(segment.get("category", "?"))
        t0, t1 = _seconds(segment["t0"]), _seconds(segment["t1"])
        peak = _seconds(segment.get("peak_t"))
        colour = colours(category)
        tip = f"{category} {_number(segment.get('score'))}: {_clock(t0)} to {_clock(t1)}" + (
            f", peak at {_clock(peak)}" if peak is not None else "")
        parts.append(f'<text x="0" y="{y + 11}" class="cat">{esc(category)} {_number(segment.get("score"))}</text>')
        parts.append(f'<rect x="{label_width}" y="{y + 2}" width="{bar_width}" height="12" rx="2" class="bar"/>')
        x0, x1 = x(t0), x(t1)
        parts.append(f'<rect class="segment" x="{x0:.1f}" y="{y + 2}" width="{max(2.0, x1 - x0):.1f}" height="12" '
                     f'fill="{colour}"><title>{esc(tip)}</title></rect>')
        labels = f"{_clock(t0)} to {_clock(t1)}"
        if peak is not None:
            xp = x(peak)
            parts.append(f'<path class="peak" d="M{xp - 5:.1f},{y - 3} L{xp + 5:.1f},{y - 3} L{xp:.1f},{y + 7} Z">'
                         f"<title>peak {esc(_clock(peak))}</title></path>")
            labels += f", peak {_clock(peak)}"
        anchor = min(max((x0 + x1) / 2, label_width + 60), width - 60)
        parts.append(f'<text x="{anchor:.1f}" y="{y + 27}" text-anchor="middle" class="time">{esc(labels)}</text>')
    axis_y = top + len(segments) * row_height + 4
    parts.append(f'<line x1="{label_width}" y1="{axis_y}" x2="{label_width + bar_width}" y2="{axis_y}" class="axis"/>')
    step = _tick_step(duration)
    ticks = [k * step for k in range(int(duration / step + 1e-9) + 1)]
    if duration - ticks[-1] > 0.25 * step:
        ticks.append(duration)
    for t in ticks:
        parts.append(f'<line x1="{x(t):.1f}" y1="{axis_y}" x2="{x(t):.1f}" y2="{axis_y + 4}" class="axis"/>'
                     f'<text x="{x(t):.1f}" y="{axis_y + 15}" text-anchor="middle" class="time">{esc(_clock(t))}</text>')
    height = axis_y + 20
    return (f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="video timeline, {esc(_clock(duration))}">'
            f'{"".join(parts)}</svg>')


# --------------------------------------------------------------------------------------------
_STYLE = f"""
body{{font-family:-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC","Microsoft YaHei",sans-serif;
margin:1.5em auto;max-width:1100px;color:#222;padding:0 1em;background:#fafafa}}
h1{{margin:0 0 0.3em}} .muted{{color:#666;font-size:0.9em}}
.badge{{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600;font-size:0.85em}}
.badge.pass{{background:{ACTION_COLOURS['pass']}}} .badge.review{{background:{ACTION_COLOURS['review']}}}
.badge.remove{{background:{ACTION_COLOURS['remove']}}} .badge.error{{background:{ACTION_COLOURS['error']}}}
.summary .badge{{margin-left:0.4em}}
.filters{{position:sticky;top:0;z-index:2;background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px 10px;
margin:0.8em 0;display:flex;flex-wrap:wrap;gap:0.4em 1.2em;align-items:center}}
.filters label{{cursor:pointer}}
.card{{background:#fff;border:1px solid #ddd;border-left:6px solid #bbb;border-radius:6px;padding:10px 14px;
margin:0 0 14px}}
.card.pass{{border-left-color:{ACTION_COLOURS['pass']}}} .card.review{{border-left-color:{ACTION_COLOURS['review']}}}
.card.remove{{border-left-color:{ACTION_COLOURS['remove']}}} .card.error{{border-left-color:{ACTION_COLOURS['error']}}}
.card header{{display:flex;flex-wrap:wrap;gap:0.6em;align-items:center;margin-bottom:6px}}
.post-id{{font-weight:700;font-family:monospace;font-size:1.05em}}
.scores .score,.picture .score{{margin-right:0.6em}}
.label{{font-size:0.8em;color:#555;text-transform:uppercase;letter-spacing:0.03em;margin:6px 0 2px}}
.label .muted{{text-transform:none;letter-spacing:0}}
.text{{white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.6;border:1px solid #eee;border-radius:4px;
padding:4px 8px;background:#fcfcfc}}
mark.span{{background:{MARK_COLOUR};padding:1px 0;border-radius:2px}}
mark.span.overlap{{background:{MARK_OVERLAP_COLOUR};border-bottom:2px solid #e65100}}
.pictures{{display:flex;flex-wrap:wrap;gap:10px;margin-top:8px;align-items:flex-start}}
figure.picture{{margin:0;width:{THUMBNAIL_SIDE + 6}px;font-size:0.8em}}
figure.picture img{{display:block;max-width:{THUMBNAIL_SIDE}px;max-height:{THUMBNAIL_SIDE}px;border:3px solid #eee;
border-radius:3px}}
figure.picture.flagged img{{border-color:{FLAGGED_COLOUR}}}
.missing{{width:{THUMBNAIL_SIDE}px;height:{THUMBNAIL_SIDE // 2}px;display:flex;align-items:center;
justify-content:center;background:#fff4e5;border:3px dashed #e37400;color:#a04c00}}
figcaption{{overflow-wrap:anywhere;margin-top:2px}}
.ocr{{font-size:0.85em;max-width:260px}} .ocr ul{{margin:2px 0;padding-left:1.2em}}
.video{{margin-top:8px}} svg.timeline{{display:block;max-width:100%;height:auto;font-size:11px}}
svg .bar{{fill:#e8eaed}} svg .peak{{fill:#202124}} svg .axis{{stroke:#888}} svg .time{{fill:#444}}
svg .cat{{fill:#222;font-weight:600}}
.warning{{background:#fff4e5;border:1px solid #f0c36d;border-radius:4px;padding:4px 8px;margin:8px 0 0}}
.error-line{{background:#fce8e6;border:1px solid #f5b7b1;border-radius:4px;padding:4px 8px;color:#a50e0e}}
.error-text{{color:#a50e0e}} .note{{font-size:0.85em;color:#444}} .other{{font-size:0.85em}}
[hidden]{{display:none !important}}
"""

_SCRIPT = """
(function () {
  const form = document.getElementById("filters");
  const select = document.getElementById("category");
  function apply() {
    const actions = new Set(Array.from(form.querySelectorAll('input[name="action"]:checked'), (e) => e.value));
    const category = select.value;
    let shown = 0;
    for (const card of document.querySelectorAll("#cards > .card")) {
      const categories = card.dataset.categories ? card.dataset.categories.split(" ") : [];
      const visible = actions.has(card.dataset.action) && (!category || categories.includes(category));
      card.hidden = !visible;
      if (visible) shown += 1;
    }
    document.getElementById("shown-count").textContent = String(shown);
    document.getElementById("none-shown").hidden = shown > 0;
  }
  form.addEventListener("change", apply);
  apply();
})();
"""


def heatmap_image(picture_path: Any, item: Mapping[str, Any], max_side: int = 512) -> Image.Image:
    """An evidence item's heat map blended over its picture (its box outlined), at most
    ``max_side`` pixels a side (``modelkit moderate --heatmaps``)."""
    picture, (width, height) = _open_picture(picture_path)
    picture.thumbnail((max_side, max_side))
    image = blend_heatmap(picture, item.get("heatmap"), opacity=0.6)
    box = item.get("box")
    if _is_box(box):
        _draw_box(ImageDraw.Draw(image), box, image.width / width, image.height / height)
    return image


def write_png(image: Image.Image, path: Path) -> Path:
    return write_atomically(path, lambda temporary: image.save(temporary, format="PNG"))
