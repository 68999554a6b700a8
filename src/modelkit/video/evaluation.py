"""Segment evaluation for timestamped detections: temporal IoU, matching metrics, timeline plots,
and the report's Segments section (registered in :mod:`modelkit.video`).

Segments are plain dicts ``{"category", "start_s", "end_s", ...}`` (extra keys are ignored), the
format detectors return and annotators' truth files hold.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..evaluation.sections import Block, ReportSection, number, plot_name

if TYPE_CHECKING:
    from ..data.records import Records
    from ..outputs import Outputs

LOCALISED_IOU = 0.5  # the fixed bar of "videos_with_iou_ge_0.5", whatever the matching threshold
SCORE_COLOR, TRUTH_COLOR, PREDICTED_COLOR = "tab:blue", "tab:red", "tab:orange"


def temporal_iou(a: dict, b: dict) -> float:
    """Intersection over union of the [start_s, end_s] intervals of two segments; 0.0 when they
    are disjoint. Two zero-length segments at the same instant are the same segment (1.0); a
    zero-length segment overlaps nothing else (0.0)."""
    length_a = a["end_s"] - a["start_s"]
    length_b = b["end_s"] - b["start_s"]
    intersection = max(0.0, min(a["end_s"], b["end_s"]) - max(a["start_s"], b["start_s"]))
    union = length_a + length_b - intersection
    if union <= 0:
        return 1.0 if a["start_s"] == b["start_s"] else 0.0
    return float(intersection / union)


@dataclass
class _Counts:
    """Tallies of one category (or, pooled, of all) over the videos."""

    true_segments: int = 0
    predicted_segments: int = 0
    matched: int = 0
    best_ious: list[float] = field(default_factory=list)  # one per true segment
    videos_with_truth: int = 0
    videos_localised: int = 0  # of those, videos whose best IoU reaches LOCALISED_IOU
    false_alarm_videos: int = 0

    def add_video(self, truth: list[dict], predicted: list[dict], iou_threshold: float) -> None:
        self.true_segments += len(truth)
        self.predicted_segments += len(predicted)
        ious = np.array([[temporal_iou(t, p) for p in predicted] for t in truth]).reshape(len(truth), len(predicted))
        self.matched += _greedy_matches(ious, iou_threshold)
        best = ious.max(axis=1) if predicted else np.zeros(len(truth))
        self.best_ious.extend(best.tolist())
        if truth:
            self.videos_with_truth += 1
            self.videos_localised += int(best.max() >= LOCALISED_IOU)
        elif predicted:
            self.false_alarm_videos += 1


def _greedy_matches(ious: np.ndarray, threshold: float) -> int:
    """One-to-one matches, highest IoU first (ties: earlier truth, then earlier prediction)."""
    pairs = sorted((-iou, t, p) for (t, p), iou in np.ndenumerate(ious) if iou >= threshold)
    used_truth: set[int] = set()
    used_predicted: set[int] = set()
    for _, t, p in pairs:
        if t not in used_truth and p not in used_predicted:
            used_truth.add(t)
            used_predicted.add(p)
    return len(used_truth)


def _pooled(counts: Iterable[_Counts]) -> _Counts:
    total = _Counts()
    for c in counts:
        for name in ("true_segments", "predicted_segments", "matched", "videos_with_truth",
                     "videos_localised", "false_alarm_videos"):
            setattr(total, name, getattr(total, name) + getattr(c, name))
        total.best_ious.extend(c.best_ious)
    return total


def _ratio(numerator: float, denominator: float) -> float | None:
    # None rather than 0 or NaN: an undefined rate must not read as a bad one, and JSON has no NaN.
    return numerator / denominator if denominator else None


def _summary(c: _Counts) -> dict[str, Any]:
    return {
        "true_segments": c.true_segments,
        "predicted_segments": c.predicted_segments,
        "matched": c.matched,
        "precision": _ratio(c.matched, c.predicted_segments),
        "recall": _ratio(c.matched, c.true_segments),
        # 2TP / (2TP + FP + FN): 0 when there is truth and nothing is found, None only when
        # there is neither truth nor prediction.
        "f1": _ratio(2 * c.matched, c.predicted_segments + c.true_segments),
        "mean_iou": float(np.mean(c.best_ious)) if c.best_ious else None,
        "videos_with_iou_ge_0.5": _ratio(c.videos_localised, c.videos_with_truth),
        "videos_with_truth": c.videos_with_truth,
        "false_alarm_videos": c.false_alarm_videos,
    }


def _check_segments(segments: Sequence[dict], kind: str, video: int, categories: list[str]) -> None:
    for position, segment in enumerate(segments):
        where = f"video {video}: {kind} segment {position}"
        if not isinstance(segment, dict) or not {"category", "start_s", "end_s"} <= segment.keys():
            raise ValueError(f"{where}: expected a dict with category, start_s and end_s, got {segment!r}")
        if segment["category"] not in categories:
            raise ValueError(f"{where}: unknown category {segment['category']!r}; known: {', '.join(categories)}")
        start, end = segment["start_s"], segment["end_s"]
        if not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in (start, end)):
            raise ValueError(f"{where}: start_s and end_s must be finite numbers, got {start!r}, {end!r}")
        if end < start:
            raise ValueError(f"{where}: end_s {end} is before start_s {start}")


def segment_metrics(predicted: list[list[dict]], truth: list[list[dict]], categories: list[str],
                    iou_threshold: float = 0.5) -> dict[str, dict[str, Any]]:
    """Segment detection quality over a set of videos.

    ``predicted[i]`` and ``truth[i]`` are the segments of video ``i`` (all categories mixed).
    A prediction matches a true segment of the same video and category at IoU >= ``iou_threshold``,
    one-to-one, greedily by IoU. Returns per category, plus ``"overall"`` (micro-average: the
    counts pooled over categories, video counts then being (video, category) pairs)::

        {"true_segments", "predicted_segments", "matched", "precision", "recall", "f1",
         "mean_iou",                # over true segments, of the best IoU with a prediction (0 if none)
         "videos_with_iou_ge_0.5",  # of videos with truth, those whose best IoU is >= 0.5
         "videos_with_truth", "false_alarm_videos"}  # the latter: no truth but a prediction

    Rates that are undefined (no predictions, no truth) are None.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"predicted holds {len(predicted)} videos but truth holds {len(truth)}; "
                         "they must list the same videos in the same order")
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    if "overall" in categories:
        raise ValueError("'overall' names the micro-average and cannot be a category")
    for video, (video_predicted, video_truth) in enumerate(zip(predicted, truth)):
        _check_segments(video_truth, "truth", video, categories)
        _check_segments(video_predicted, "predicted", video, categories)

    counts = {category: _Counts() for category in categories}
    for video_predicted, video_truth in zip(predicted, truth):
        for category, tally in counts.items():
            tally.add_video(_of_category(video_truth, category), _of_category(video_predicted, category),
                            iou_threshold)
    result = {category: _summary(tally) for category, tally in counts.items()}
    result["overall"] = _summary(_pooled(counts.values()))
    return result


def _of_category(segments: Sequence[dict], category: str) -> list[dict]:
    return [s for s in segments if s["category"] == category]


def _timeline_row(ax, category: str, video: dict, threshold: float) -> None:
    times = np.asarray(video["times"], dtype=float)
    scores = np.asarray(video["scores"], dtype=float)
    if times.shape != scores.shape:
        raise ValueError(f"video {video['id']!r}: {times.size} times but {scores.size} scores")
    truth = _of_category(video["truth"], category)
    predicted = _of_category(video["predicted"], category)

    for segment in truth:
        ax.axvspan(segment["start_s"], segment["end_s"], color=TRUTH_COLOR, alpha=0.2, linewidth=0)
    # An edge as wide as the fill keeps a zero-length (single-frame) prediction visible.
    ax.broken_barh([(s["start_s"], s["end_s"] - s["start_s"]) for s in predicted], (-0.17, 0.1),
                   facecolor=PREDICTED_COLOR, edgecolor=PREDICTED_COLOR, linewidth=1)
    if times.size:
        ax.plot(times, scores, color=SCORE_COLOR, marker=".", markersize=4, linewidth=1)
    else:
        ax.text(0.5, 0.5, "no frames", ha="center", va="center", color="gray", transform=ax.transAxes)
    ax.axhline(threshold, color="black", linestyle="--", linewidth=1)

    ends = [*times.tolist(), *(s["end_s"] for s in truth + predicted)]
    right = max(ends, default=0.0) or 1.0
    ax.set_xlim(-0.01 * right, 1.01 * right)  # the margin keeps frames at 0 and at the end in sight
    ax.set_ylim(-0.2, 1.05)
    ax.set_yticks([0, 0.5, 1])
    ax.set_ylabel("score")
    ax.set_title(f"{video['id']}: {len(truth)} true, {len(predicted)} predicted", loc="left", fontsize=9)


def timeline_figure(category: str, videos: list[dict], threshold: float) -> bytes:
    """PNG of one row per video: the category's frame scores over time with the threshold, true
    segments shaded and predicted segments as bars under the curve.

    Each video is ``{"id", "times": [s], "scores": [...], "truth": [segments], "predicted":
    [segments]}``; segments of other categories are ignored. Meant for a dozen videos or so.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from ..evaluation.plots import figure_png, mark_undefined

    if not videos:
        figure, ax = plt.subplots(figsize=(12, 2))
        mark_undefined(ax, f"{category}: segments over time", "no videos")
        return figure_png(figure)
    figure, axes = plt.subplots(len(videos), 1, figsize=(12, 1.7 * len(videos) + 1), squeeze=False,
                                layout="constrained")
    for ax, video in zip(axes[:, 0], videos):
        _timeline_row(ax, category, video, threshold)
    axes[-1, 0].set_xlabel("time (s)")
    # Built by hand so that the legend is whole even when the first rows lack truth or predictions.
    handles = [
        Line2D([], [], color=SCORE_COLOR, marker=".", label="frame score"),
        Line2D([], [], color="black", linestyle="--", label=f"threshold {threshold:.2f}"),
        Patch(color=TRUTH_COLOR, alpha=0.2, label="true segment"),
        Patch(color=PREDICTED_COLOR, label="predicted segment"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8)
    figure.suptitle(f"{category}: frame scores and segments over time")
    return figure_png(figure)


# -- the report's Segments section ---------------------------------------------------------------
def segment_section(outputs: Outputs, records: Records, field: str = "segments",
                    timelines_per_category: int = 8) -> dict[str, Any] | None:
    """Segment metrics against the data's ``segments`` column (when it has one) and, per category,
    the timelines of the videos worth looking at: false alarms, then the worst-localised true
    segments. None when the outputs have no segments (not a video run)."""
    if "segments" not in outputs.fields:
        return None
    table, categories = records.table, outputs.categories
    predicted = [segments or [] for segments in outputs.fields["segments"]]
    truth = [list(row or []) for row in table[field]] if field in table.column_names else None
    section: dict[str, Any] = {"field": field if truth is not None else None}
    if truth is not None:
        section["metrics"] = segment_metrics(predicted, truth, categories)
    section["timelines"] = {}
    for j, category in enumerate(categories):
        ranked = []
        for row, parts in enumerate(outputs.parts):
            mine = [s for s in predicted[row] if s["category"] == category]
            true = [s for s in (truth[row] if truth else []) if s["category"] == category]
            if parts is None or not (mine or true):
                continue
            best = max((temporal_iou(t, p) for t in true for p in mine), default=0.0)
            ranked.append((best if true else -1.0, row, true, mine))
        ranked.sort(key=lambda entry: entry[0])
        section["timelines"][category] = [
            {"id": records.ids[row], "times": outputs.parts[row][0].round(3).tolist(),
             "scores": outputs.parts[row][1][:, j].round(4).tolist(), "truth": true, "predicted": mine}
            for _, row, true, mine in ranked[:timelines_per_category]
        ]
    return section


def segment_blocks(section: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [("heading", 2, "Segments")]
    metrics = section.get("metrics")
    if metrics is None:
        blocks.append(("text", "The data has no segments column, so only predicted segments are shown."))
    else:
        blocks.append(("text", "Predicted segments against the true ones of each video: a prediction matches a true "
                               "segment of its category at temporal IoU >= 0.5 (one to one)."))
        blocks.append(("table", ["category", "true", "predicted", "matched", "precision", "recall", "F1",
                                 "mean IoU", "videos with IoU >= 0.5", "false-alarm videos"], [
            [name, str(m["true_segments"]), str(m["predicted_segments"]), str(m["matched"]), number(m["precision"]),
             number(m["recall"]), number(m["f1"]), number(m["mean_iou"]), number(m["videos_with_iou_ge_0.5"]),
             str(m["false_alarm_videos"])]
            for name, m in metrics.items()
        ]))
    for category, videos in section.get("timelines", {}).items():
        if videos:
            blocks.append(("image", plot_name(category, "timeline_"),
                           f"{category}: frame scores over time, true segments shaded, predicted ones as bars"))
    return blocks


def segment_figures(section: dict[str, Any], thresholds: Mapping[str, float]) -> dict[str, bytes]:
    return {plot_name(category, "timeline_"): timeline_figure(category, videos, thresholds[category])
            for category, videos in section.get("timelines", {}).items() if videos}


SEGMENTS_SECTION = ReportSection("segments", segment_section, segment_blocks, segment_figures)

