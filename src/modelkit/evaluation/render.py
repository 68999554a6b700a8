"""Render a report dict as Markdown and as one self-contained HTML page.

Both come from the same list of blocks (headings, paragraphs, tables, images), so the two files
always say the same thing. Every piece of data, input text above all, is escaped: a post that
contains ``<script>`` is shown as text in both.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .sections import OPERATING_POINTS, Block, number, plot_name, report_sections

# Only inline JPEG/PNG data written by modelkit's previews is shown as a picture.
_THUMBNAIL = re.compile(r"data:image/(jpeg|png);base64,[A-Za-z0-9+/=]+")


@dataclass(frozen=True)
class Thumbnail:
    """A table cell showing a small picture (HTML) or its caption (Markdown)."""

    uri: str
    caption: str

    def __str__(self) -> str:
        return self.caption


def _html_cell(cell: Any) -> str:
    if isinstance(cell, Thumbnail) and _THUMBNAIL.fullmatch(cell.uri):
        caption = html.escape(cell.caption)
        return f'<img class="thumb" src="{cell.uri}" alt="{caption}" title="{caption}"><br>{caption}'
    return html.escape(str(cell))


def with_interval(value: float | None, ci: Sequence[float] | None) -> str:
    if value is None:
        return "undefined"
    return number(value) if ci is None else f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def report_blocks(report: dict[str, Any]) -> list[Block]:
    head = report["header"]
    overall = report["overall"]
    blocks: list[Block] = [("heading", 1, "Evaluation report")]
    checkpoint = head.get("checkpoint") or {}
    blocks.append(("table", ["", ""], [
        ["data", str(head.get("data", "(in memory)"))],
        ["rows", str(head["rows"])],
        ["label counts", _counts(head["label_counts"])],
        ["checkpoint", str(checkpoint.get("path", "(none)"))],
        ["model", str(checkpoint.get("model", ""))],
        ["taxonomy", f"{head.get('taxonomy', '')}: {', '.join(head['categories'])}"],
        ["thresholds", ", ".join(f"{c} {t:.3f}" for c, t in head["thresholds"].items())],
        ["created", head["created"]],
        ["modelkit", head["modelkit_version"]],
        ["intervals", f"95 % percentile bootstrap, {head['bootstrap']['resamples']} resamples, seed {head['bootstrap']['seed']}"],
    ]))

    blocks += [("heading", 2, "Overall"), ("text", f"Exact-match accuracy {overall['accuracy']:.4f} over {overall['n']} rows.")]
    blocks.append(("table", ["average", "precision", "recall", "F1", "ROC-AUC", "average precision"], [
        [avg, number(overall[f"{avg}_precision"]), number(overall[f"{avg}_recall"]),
         with_interval(overall[f"{avg}_f1"], overall["ci"][avg]["f1"]),
         with_interval(overall[f"{avg}_roc_auc"], overall["ci"][avg]["roc_auc"]),
         with_interval(overall[f"{avg}_average_precision"], overall["ci"][avg]["average_precision"])]
        for avg in ("micro", "macro", "weighted")
    ]))
    exclusive = overall.get("exclusive")
    if exclusive:
        blocks.append(("text", (
            f"Labels are mutually exclusive, so each row also gets one class (its highest-scoring flagged category, "
            f"or none): accuracy {exclusive['accuracy']:.4f}, weighted F1 {exclusive['weighted_f1']:.4f}, "
            f"macro F1 {exclusive['macro_f1']:.4f}."
        )))
        blocks.append(("table", ["class", "support", "precision", "recall", "F1"], [
            [name, str(m["support"]), number(m["precision"]), number(m["recall"]), number(m["f1"])]
            for name, m in exclusive["per_class"].items()
        ]))
        blocks.append(("image", "plots/class_confusion.png", "class confusion matrix"))

    blocks += [("heading", 2, "Categories")]
    blocks.append(("table", ["category", "support", "threshold", "precision", "recall", "F1", "ROC-AUC", "average precision", "ECE"], [
        [name, str(m["support"]), number(m["threshold"]), number(m["precision"]), number(m["recall"]),
         with_interval(m["f1"], m["ci"]["f1"]), with_interval(m["roc_auc"], m["ci"]["roc_auc"]),
         with_interval(m["average_precision"], m["ci"]["average_precision"]), number(m["ece"])]
        for name, m in report["categories"].items()
    ]))
    for name, m in report["categories"].items():
        blocks += _category_blocks(name, m)
    for field, sliced in report.get("slices", {}).items():
        blocks += _slice_blocks(field, sliced, head["categories"])
    for section in report_sections():
        if report.get(section.name):
            blocks += section.blocks(report[section.name])
    return blocks


def _category_blocks(name: str, m: dict[str, Any]) -> list[Block]:
    c = m["confusion"]
    blocks: list[Block] = [
        ("heading", 3, name),
        ("text", f"At threshold {m['threshold']:.3f}: {c['tp']} true positives, {c['fp']} false positives, "
                 f"{c['fn']} false negatives, {c['tn']} true negatives; expected calibration error "
                 f"{m['calibration']['ece']:.4f}."),
        ("image", plot_name(name), f"{name}: precision-recall, ROC, score histograms, reliability, confusion"),
        ("heading", 4, "Operating points"),
    ]
    rows = []
    for objective in OPERATING_POINTS:
        point = m["operating_points"].get(objective)
        if point is None:
            rows.append([objective, "not reachable", "", "", ""])
        else:
            rows.append([objective, number(point["threshold"]), number(point["precision"]), number(point["recall"]), number(point["f1"])])
    blocks.append(("table", ["objective", "threshold", "precision", "recall", "F1"], rows))
    blocks.append(("heading", 4, "Threshold table"))
    blocks.append(("table", ["threshold", "precision", "recall", "F1", "flagged"], [
        [number(r["threshold"], 2), number(r["precision"]), number(r["recall"]), number(r["f1"]), str(r["flagged"])]
        for r in m["threshold_table"]
    ]))
    for kind, title in (("false_positives", "Top false positives"), ("false_negatives", "Top false negatives")):
        examples = m["errors"][kind]
        blocks.append(("heading", 4, f"{title} ({len(examples)})"))
        if examples:
            blocks.append(("table", ["id", "score", "true labels", "input"], [
                [str(e["id"]), number(e["score"]), ", ".join(e["labels"]) or "none",
                 Thumbnail(e["thumbnail"], e["input"]) if e.get("thumbnail") else e["input"]] for e in examples
            ]))
    return blocks


def _slice_blocks(field: str, sliced: dict[str, Any], categories: Sequence[str]) -> list[Block]:
    groups = sliced["groups"]
    blocks: list[Block] = [("heading", 2, f"Slices by {field}")]
    if sliced["shown"] < sliced["values"]:
        blocks.append(("text", f"The {sliced['shown']} largest of {sliced['values']} values are shown."))
    blocks.append(("table", ["value", "rows", "label counts", "accuracy", "macro F1"], [
        [value, str(g["n"]), _counts(g["label_counts"]), number(g["accuracy"]),
         with_interval(g["macro_f1"], g["ci"]["macro"]["f1"])]
        for value, g in groups.items()
    ]))
    for category in categories:
        blocks.append(("heading", 3, f"{category} by {field}"))
        blocks.append(("table", ["value", "support", "precision", "recall", "F1", "ROC-AUC", "average precision", "ECE"], [
            [value, str(m["support"]), number(m["precision"]), number(m["recall"]), with_interval(m["f1"], m["ci"]["f1"]),
             with_interval(m["roc_auc"], m["ci"]["roc_auc"]),
             with_interval(m["average_precision"], m["ci"]["average_precision"]), number(m["ece"])]
            for value, g in groups.items()
            for m in [g["categories"][category]]
        ]))
    return blocks


# --------------------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    # Markdown viewers render inline HTML, so data is entity-escaped here too.
    return html.escape(str(text)).replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def render_markdown(report: dict[str, Any]) -> str:
    return _render_markdown(report_blocks(report))


def _render_markdown(blocks: Iterable[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "heading":
            lines += ["#" * block[1] + " " + _md_cell(block[2]), ""]
        elif kind == "text":
            lines += [_md_cell(block[1]), ""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
            lines.append("|" + "---|" * len(headers))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "image":
            lines += [f"![{_md_cell(block[2])}]({block[1]})", ""]
    return "\n".join(lines)


_STYLE = """
body{font-family:-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC","Microsoft YaHei",sans-serif;
margin:2em auto;max-width:1400px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;max-width:700px;
overflow-wrap:anywhere}
th{background:#f2f2f2} tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0} img.thumb{max-width:96px;max-height:96px;margin:0}
h2{border-bottom:2px solid #444;padding-bottom:4px;margin-top:2em} h3{margin-top:1.5em}
"""


def render_html(report: dict[str, Any], images: Mapping[str, bytes]) -> str:
    """One HTML file with its images inlined as data URIs: opens with no network access."""
    return _render_html(report_blocks(report), images)


def _render_html(blocks: Iterable[Block], images: Mapping[str, bytes], title: str = "modelkit evaluation report") -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind == "heading":
            parts.append(f"<h{block[1]}>{esc(block[2])}</h{block[1]}>")
        elif kind == "text":
            parts.append(f"<p>{esc(block[1])}</p>")
        elif kind == "table":
            headers, rows = block[1], block[2]
            head = "".join(f"<th>{esc(str(h))}</th>" for h in headers)
            body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "image" and block[1] in images:
            data = base64.b64encode(images[block[1]]).decode("ascii")
            parts.append(f'<img alt="{esc(block[2])}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts)


def comparison_blocks(result: dict[str, Any]) -> list[Block]:
    def signed(value: float | None) -> str:
        return "undefined" if value is None else f"{value:+.4f}"

    return [
        ("heading", 1, "Model comparison"),
        ("text", f"A: {result['a']}"),
        ("text", f"B: {result['b']}"),
        ("text", f"{result['rows']} rows paired by id; paired bootstrap with {result['resamples']} resamples "
                 f"(seed {result['seed']}). delta = B - A; p is two-sided."),
        ("table", ["scope", "metric", "A", "B", "delta", "95 % CI of delta", "p-value"], [
            [m["scope"], m["metric"], number(m["a"], 4), number(m["b"], 4), signed(m["delta"]),
             "undefined" if m["ci"] is None else f"[{m['ci'][0]:+.4f}, {m['ci'][1]:+.4f}]",
             number(m["p_value"], 4)]
            for m in result["metrics"]
        ]),
    ]


def render_comparison(result: dict[str, Any]) -> tuple[str, str]:
    """The comparison as (Markdown, HTML)."""
    blocks = comparison_blocks(result)
    return _render_markdown(blocks), _render_html(blocks, {}, title="modelkit model comparison")
