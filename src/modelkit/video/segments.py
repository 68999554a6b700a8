"""Timestamped violating segments from per-frame category scores.

Frames are samples of a continuous signal taken at known times. A segment opens at a frame whose
score reaches the category's enter threshold and stays open while scores stay at or above the
lower exit threshold (hysteresis), so a score hovering around one threshold does not chop a scene
into pieces. Nearby segments of a category are then merged, and short or thinly supported ones
dropped.

Boundaries are estimated from the frames around the segment, see :func:`frame_cells`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..data.records import DataError, Records, row_name


@dataclass
class SegmentConfig:
    """How frame scores become segments (the ``segments:`` block of a video config)."""

    exit_ratio: float = 0.6  # exit threshold = enter threshold * exit_ratio
    merge_gap_s: float = 1.0  # segments of one category closer than this are merged
    min_duration_s: float = 0.0  # shorter segments are dropped (after merging)
    min_frames: int = 1  # segments with fewer frames at/above the exit threshold are dropped

    def __post_init__(self) -> None:
        if not 0 < self.exit_ratio <= 1:
            raise ValueError(f"segments.exit_ratio must be in (0, 1], got {self.exit_ratio}")
        for name in ("merge_gap_s", "min_duration_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"segments.{name} must be a finite number >= 0, got {value}")
        if self.min_frames < 1:
            raise ValueError(f"segments.min_frames must be >= 1, got {self.min_frames}")


@dataclass
class _Segment:
    start_s: float
    end_s: float
    frames: int  # frames at/above the exit threshold (a merged gap's frames are below it)
    peak: int  # index of the highest-scoring frame, the earliest one on ties


def frame_cells(times: np.ndarray, duration_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The stretch of video each frame stands for, as (starts, ends) in seconds, to the millisecond.

    A signal seen first at frame ``i`` began somewhere after the previous sample, so a segment's
    start is the midpoint ``(t[i-1] + t[i]) / 2`` and its end ``(t[j] + t[j+1]) / 2``: for uniform
    sampling and a boundary that falls anywhere between two samples, the midpoint is the unbiased
    estimate (a segment planted at 2.0-5.0 s and sampled at 2 fps, frames 0.0, 0.5, ..., is
    reported as 1.75-5.25 s). The first frame's stretch begins half the median sampling interval
    earlier, but not before 0; the last frame's ends half that interval later, but not after
    ``duration_s``. The median ignores a dropped frame or two. A single frame has no interval to
    go by: it stands for the whole video, ``[0, duration_s]``, or for its own instant when the
    duration is unknown.
    """
    if times.size == 1:
        if duration_s is None:
            return times.copy(), times.copy()
        return np.array([0.0]), np.array([float(duration_s)])
    middles = (times[:-1] + times[1:]) / 2
    half = float(np.median(np.diff(times))) / 2
    last_end = times[-1] + half if duration_s is None else min(times[-1] + half, duration_s)
    starts = np.concatenate(([max(0.0, times[0] - half)], middles))
    ends = np.concatenate((middles, [last_end]))
    # Every later rule (merge gap, minimum duration) is applied to these reported values, so a
    # reported segment always satisfies the rules as written.
    return np.round(starts, 3), np.round(ends, 3)


def _hysteresis_runs(column: np.ndarray, enter: float, exit_: float) -> list[tuple[int, int]]:
    """[first, last] frame indices of each segment: from the first frame at/above ``enter`` to the
    last of the unbroken run of frames at/above ``exit_`` that contains it."""
    # NaN compares False: a frame that could not be scored never opens or holds a segment.
    held = np.concatenate(([0], (column >= exit_).astype(np.int8), [0]))
    edges = np.diff(held)
    runs = []
    for first, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        entered = np.flatnonzero(column[first:stop] >= enter)
        if entered.size:  # a run that never reaches the enter threshold is no detection
            runs.append((int(first + entered[0]), int(stop - 1)))
    return runs


def _merge(segments: list[_Segment], column: np.ndarray, gap_s: float) -> list[_Segment]:
    merged: list[_Segment] = []
    for segment in segments:
        if merged and round(segment.start_s - merged[-1].end_s, 3) < gap_s:
            last = merged[-1]
            peak = last.peak if column[last.peak] >= column[segment.peak] else segment.peak
            merged[-1] = _Segment(last.start_s, segment.end_s, last.frames + segment.frames, peak)
        else:
            merged.append(segment)
    return merged


def _category_segments(column: np.ndarray, enter: float, cells: tuple[np.ndarray, np.ndarray],
                       config: SegmentConfig) -> list[_Segment]:
    starts, ends = cells
    segments = [
        _Segment(float(starts[first]), float(ends[last]), last - first + 1,
                 first + int(np.argmax(column[first:last + 1])))
        for first, last in _hysteresis_runs(column, enter, enter * config.exit_ratio)
    ]
    return [
        segment for segment in _merge(segments, column, config.merge_gap_s)
        if segment.frames >= config.min_frames
        and round(segment.end_s - segment.start_s, 3) >= config.min_duration_s
    ]


def _check_inputs(times: np.ndarray, scores: np.ndarray, enter: np.ndarray, categories: list[str],
                  duration_s: float | None) -> None:
    if times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(np.diff(times) < 0):
        raise ValueError("times must be a 1-D array of finite, ascending frame times in seconds")
    if scores.shape != (times.size, len(categories)):
        raise ValueError(f"scores must have shape (frames, categories) = ({times.size}, {len(categories)}), "
                         f"got {scores.shape}")
    if enter.shape != (len(categories),) or not np.all(np.isfinite(enter)):
        raise ValueError(f"enter must hold one finite threshold per category ({len(categories)}), got {enter}")
    if duration_s is not None and times.size and not duration_s >= times[-1]:
        raise ValueError(f"duration_s ({duration_s}) is before the last frame time ({times[-1]})")


def find_segments(times: np.ndarray, scores: np.ndarray, enter: np.ndarray, categories: list[str],
                  config: SegmentConfig, duration_s: float | None = None) -> list[dict]:
    """Violating segments of a video from its frame scores.

    ``times`` [T] are frame times in seconds (ascending), ``scores`` [T, C] calibrated
    probabilities, ``enter`` [C] the per-category thresholds. Returns, sorted by
    (start_s, category), dicts ``{"category", "start_s", "end_s", "peak_s", "peak_score"}`` of
    plain floats (seconds to 3 decimals, scores to 4); boundaries as in :func:`frame_cells`.
    """
    times = np.asarray(times, dtype=float)
    scores = np.asarray(scores, dtype=float)
    enter = np.asarray(enter, dtype=float)
    if times.size == 0 and scores.size == 0:
        return []
    _check_inputs(times, scores, enter, categories, duration_s)
    cells = frame_cells(times, duration_s)
    found = []
    for index, category in enumerate(categories):
        column = scores[:, index]
        for segment in _category_segments(column, float(enter[index]), cells, config):
            found.append({
                "category": category,
                "start_s": segment.start_s,
                "end_s": segment.end_s,
                "peak_s": round(float(times[segment.peak]), 3),
                "peak_score": round(float(column[segment.peak]), 4),
            })
    return sorted(found, key=lambda s: (s["start_s"], s["category"]))


# -- timed labels for training: which frames of a labelled video violate ------------------------
def row_segments(records: Records, field: str | None) -> list[list[dict[str, Any]]] | None:
    """Each row's timed labels ``[{category, start_s, end_s}]`` from column ``field``, validated;
    None when the data has no such column."""
    if not field or field not in records.table.column_names:
        return None
    rows = []
    for row, value in enumerate(records.table[field]):
        value = [] if value is None else value
        where = f"{records.source}, {row_name(records.table, row, 'id' if 'id' in records.table.column_names else None)}"
        if not isinstance(value, list):
            raise DataError(f"{where}: {field} must be a list of {{category, start_s, end_s}}, got {type(value).__name__}")
        for segment in value:
            try:
                start, end = float(segment["start_s"]), float(segment["end_s"])
                str(segment["category"])
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{where}: {field} entries need category, start_s and end_s (numbers), got "
                                f"{segment!r}") from None
            if not (math.isfinite(start) and math.isfinite(end) and 0 <= start <= end):
                raise DataError(f"{where}: {field}: need 0 <= start_s <= end_s, got {start} and {end}")
        rows.append(value)
    return rows


def part_labels(times: np.ndarray, labels: np.ndarray, segments: list[dict[str, Any]],
                categories: Sequence[str]) -> np.ndarray:
    """Labels ``[parts, categories]`` of the parts of one input at ``times`` (seconds): a category
    with segments is 1 inside them (start_s <= t < end_s) and 0 elsewhere; one the input is not
    labelled with is 0 everywhere; one it is labelled with but without segments is unknown (NaN),
    left to the input-level label. Segments of categories outside ``categories`` are ignored."""
    times = np.asarray(times, dtype=np.float64)
    out = np.where(np.asarray(labels, dtype=bool)[None, :], np.nan, 0.0).repeat(len(times), axis=0)
    column = {category: j for j, category in enumerate(categories)}
    timed = {column[s["category"]] for s in segments if s["category"] in column}
    for j in timed:
        out[:, j] = 0.0
    for segment in segments:
        j = column.get(segment["category"])
        if j is not None:
            out[(times >= float(segment["start_s"])) & (times < float(segment["end_s"])), j] = 1.0
    return out.astype(np.float32)
