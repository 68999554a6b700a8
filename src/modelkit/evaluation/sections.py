"""What the report, its renderers and the modalities share: block and plot names, and the
report sections a modality adds.

A report is a list of blocks (``("heading", level, text)``, ``("text", text)``, ``("table",
headers, rows)``, ``("image", plot name, caption)``) rendered to Markdown and HTML alike. The core
builds the sections every classifier has (metrics per category, slices); a modality whose outputs
say more (a video's segments) registers a :class:`ReportSection`, as it registers CLI commands,
and ``evaluate`` builds it from the run's :class:`~modelkit.outputs.Outputs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..plugins import Registry

if TYPE_CHECKING:
    from ..data.records import Records
    from ..outputs import Outputs

Block = tuple
OPERATING_POINTS = ("f1", "precision@0.9", "precision@0.95", "precision@0.99", "recall@0.9", "recall@0.95")


def plot_name(category: str, kind: str = "") -> str:
    """The report folder's file name of a category's plot (``kind`` tells plots apart)."""
    return f"plots/{kind}" + (re.sub(r"[^0-9A-Za-z_.-]+", "_", category) or "category") + ".png"


def number(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class ReportSection:
    """A report section a modality adds. ``build(outputs, records)`` gives the section's JSON (None
    when the run has nothing for it), stored as ``report[name]``; ``blocks(section)`` renders it;
    ``figures(section, thresholds)`` draws its plots, ``{plot name: PNG bytes}``, which its image
    blocks name."""

    name: str
    build: Callable[[Outputs, Records], dict[str, Any] | None]
    blocks: Callable[[dict[str, Any]], list[Block]]
    figures: Callable[[dict[str, Any], Mapping[str, float]], dict[str, bytes]] | None = None


_SECTIONS: Registry[ReportSection] = Registry("report section", "report.sections")


def register_report_section(section: ReportSection) -> ReportSection:
    """Add ``section`` to every report whose run it has something for."""
    return _SECTIONS.add(section.name, section)


def report_sections() -> list[ReportSection]:
    """The registered sections (the installed modalities' included), in name order."""
    return [_SECTIONS.get(name) for name in _SECTIONS.names()]
