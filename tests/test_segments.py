"""Video segments: frame scores to timestamped segments (modelkit.video.segments) and their
evaluation and timeline plot (modelkit.video.evaluation)."""

import json
import struct

import numpy as np
import pytest

from modelkit.config import ConfigError, from_dict
from modelkit.video.evaluation import segment_metrics, temporal_iou, timeline_figure
from modelkit.video.segments import SegmentConfig, find_segments, frame_cells

LOW, HIGH = 0.05, 0.9
ENTER = np.array([0.5])  # exit threshold at the default ratio: 0.3


def grid(seconds: float = 10.0, fps: float = 2.0) -> np.ndarray:
    return np.arange(0.0, seconds, 1.0 / fps)


def planted(times: np.ndarray, *spans: tuple[float, float], value: float = HIGH) -> np.ndarray:
    """One category's scores [T, 1]: ``value`` on frames inside the closed spans, LOW elsewhere."""
    scores = np.full(times.size, LOW)
    for start, end in spans:
        scores[(times >= start) & (times <= end)] = value
    return scores[:, None]


def found(times, scores, enter=ENTER, categories=("porn",), duration_s=None, **config) -> list[tuple]:
    segments = find_segments(times, scores, enter, list(categories), SegmentConfig(**config), duration_s)
    return [(s["category"], s["start_s"], s["end_s"]) for s in segments]


def seg(category: str, start: float, end: float) -> dict:
    return {"category": category, "start_s": start, "end_s": end}


# --- find_segments -----------------------------------------------------------------------------

def test_boundaries_are_midpoints_to_the_neighbouring_frames():
    times = grid()
    scores = planted(times, (2.0, 5.0))
    scores[7, 0] = 0.97  # the peak, at 3.5 s
    assert find_segments(times, scores, ENTER, ["porn"], SegmentConfig()) == [
        {"category": "porn", "start_s": 1.75, "end_s": 5.25, "peak_s": 3.5, "peak_score": 0.97}
    ]


def test_output_is_plain_rounded_floats():
    times = grid(3.0, fps=3.0)  # 1/3 s steps: midpoints are not exact in binary
    scores = planted(times, (1.0, 2.0), value=0.876543)
    (segment,) = find_segments(times, scores, ENTER, ["porn"], SegmentConfig())
    assert segment == {"category": "porn", "start_s": 0.833, "end_s": 2.167, "peak_s": 1.0, "peak_score": 0.8765}
    assert all(type(segment[k]) is float for k in ("start_s", "end_s", "peak_s", "peak_score"))


def test_video_edges_use_half_the_median_interval():
    times = grid()  # 0.0 ... 9.5
    scores = planted(times, (0.0, 1.0), (8.0, 9.5))
    assert found(times, scores) == [("porn", 0.0, 1.25), ("porn", 7.75, 9.75)]
    assert found(times, scores, duration_s=9.6) == [("porn", 0.0, 1.25), ("porn", 7.75, 9.6)]
    later = times + 1.0  # the first sample is not at 0: the stretch starts half an interval earlier
    assert found(later, scores)[0] == ("porn", 0.75, 2.25)


def test_irregular_sampling_uses_midpoints_and_the_median_interval():
    times = np.array([0.0, 1.0, 2.0, 3.0, 5.0])  # a dropped frame at 4 s
    scores = np.array([LOW, LOW, HIGH, HIGH, HIGH])[:, None]
    assert found(times, scores) == [("porn", 1.5, 5.5)]
    starts, ends = frame_cells(times)
    assert starts.tolist() == [0.0, 0.5, 1.5, 2.5, 4.0]
    assert ends.tolist() == [0.5, 1.5, 2.5, 4.0, 5.5]


def test_single_frame_video():
    times, scores = np.array([1.5]), np.array([[0.8]])
    assert found(times, scores, duration_s=3.0) == [("porn", 0.0, 3.0)]
    assert found(times, scores) == [("porn", 1.5, 1.5)]  # no duration, no interval: an instant
    assert found(times, scores, min_duration_s=0.5) == []
    assert found(times, np.array([[0.2]]), duration_s=3.0) == []


def test_a_dip_above_the_exit_threshold_does_not_split():
    times = grid()
    scores = planted(times, (2.0, 5.0))
    scores[7, 0] = 0.4  # below enter (0.5), above exit (0.3)
    assert found(times, scores, merge_gap_s=0.0) == [("porn", 1.75, 5.25)]


def test_a_dip_below_the_exit_threshold_splits():
    times = grid()
    scores = planted(times, (2.0, 5.0))
    scores[7, 0] = 0.2
    assert found(times, scores, merge_gap_s=0.0) == [("porn", 1.75, 3.25), ("porn", 3.75, 5.25)]
    # A higher exit ratio makes the 0.4 dip split too.
    scores[7, 0] = 0.4
    assert len(found(times, scores, merge_gap_s=0.0, exit_ratio=0.9)) == 2


def test_a_segment_opens_only_at_the_enter_threshold():
    times = grid()
    scores = planted(times, (2.0, 3.0))
    scores[[2, 3], 0] = 0.4  # 1.0 and 1.5 s: above exit but before any frame reached enter
    scores[[7, 8], 0] = 0.4  # after the enter frames: they hold the segment open
    assert found(times, scores) == [("porn", 1.75, 4.25)]
    # A run that stays between the thresholds is no detection at all.
    assert found(times, planted(times, (2.0, 5.0), value=0.45)) == []


def test_one_noisy_frame_is_not_a_segment_with_min_frames_2():
    times = grid()
    scores = planted(times, (6.0, 6.0))
    assert found(times, scores) == [("porn", 5.75, 6.25)]
    assert found(times, scores, min_frames=2) == []
    assert found(times, planted(times, (6.0, 6.5)), min_frames=2) == [("porn", 5.75, 6.75)]


def test_merge_gap():
    times = grid()
    scores = planted(times, (1.0, 2.0), (3.0, 4.0))  # segments 0.75-2.25 and 2.75-4.25: gap 0.5 s
    assert found(times, scores, merge_gap_s=1.0) == [("porn", 0.75, 4.25)]
    assert found(times, scores, merge_gap_s=0.5) == [("porn", 0.75, 2.25), ("porn", 2.75, 4.25)]
    assert found(times, scores, merge_gap_s=0.0) == [("porn", 0.75, 2.25), ("porn", 2.75, 4.25)]


def test_merged_segment_keeps_the_highest_peak_and_counts_frames_of_both_parts():
    times = grid()
    scores = planted(times, (1.0, 1.0), (2.0, 2.0))  # two single noisy frames 1 s apart
    scores[4, 0] = 0.95
    (segment,) = find_segments(times, scores, ENTER, ["porn"], SegmentConfig(merge_gap_s=1.0, min_frames=2))
    assert (segment["start_s"], segment["end_s"], segment["peak_s"], segment["peak_score"]) == (0.75, 2.25, 2.0, 0.95)
    # Frames below the exit threshold inside the merged gap do not count.
    assert found(times, scores, merge_gap_s=1.0, min_frames=3) == []


def test_min_duration_is_applied_after_merging():
    times = grid()
    scores = planted(times, (2.0, 5.0))  # 3.5 s
    assert found(times, scores, min_duration_s=3.5) == [("porn", 1.75, 5.25)]
    assert found(times, scores, min_duration_s=3.6) == []
    pair = planted(times, (1.0, 1.0), (2.0, 2.0))  # two 0.5 s segments, 1.5 s once merged
    assert found(times, pair, merge_gap_s=0.0, min_duration_s=1.0) == []
    assert found(times, pair, merge_gap_s=1.0, min_duration_s=1.0) == [("porn", 0.75, 2.25)]


def test_min_duration_is_judged_on_the_reported_milliseconds():
    times = grid(2.0, fps=10.0)  # 0.1 s steps: float midpoints such as 0.35000000000000003
    scores = planted(times, (0.4, 0.5))
    assert found(times, scores) == [("porn", 0.35, 0.55)]
    assert found(times, scores, min_duration_s=0.2) == [("porn", 0.35, 0.55)]


def test_categories_interleave_sorted_by_start_then_category():
    times = grid()
    scores = np.full((times.size, 3), LOW)
    scores[(times >= 6.0) & (times <= 7.0), 0] = HIGH   # porn 6-7
    scores[(times >= 1.0) & (times <= 2.0), 1] = 0.6    # abuse 1-2, its own threshold 0.55
    scores[(times >= 3.0) & (times <= 4.0), 2] = HIGH   # gore 3-4
    scores[(times >= 3.0) & (times <= 3.5), 0] = HIGH   # porn 3-3.5: same start as gore
    enter = np.array([0.5, 0.55, 0.5])
    assert found(times, scores, enter, ["porn", "abuse", "gore"]) == [
        ("abuse", 0.75, 2.25), ("gore", 2.75, 4.25), ("porn", 2.75, 3.75), ("porn", 5.75, 7.25)
    ]
    # The abuse threshold is per category: at 0.65 its 0.6 scores are no longer a segment.
    assert [c for c, *_ in found(times, scores, np.array([0.5, 0.65, 0.5]), ["porn", "abuse", "gore"])] == [
        "gore", "porn", "porn"]


def test_nan_scores_are_below_threshold():
    times = grid()
    scores = planted(times, (2.0, 5.0))
    scores[7, 0] = np.nan
    assert found(times, scores, merge_gap_s=0.0) == [("porn", 1.75, 3.25), ("porn", 3.75, 5.25)]
    assert found(times, np.full((times.size, 1), np.nan)) == []
    scores = planted(times, (2.0, 5.0))
    scores[1, 0] = np.nan  # outside the segment: no effect
    assert found(times, scores) == [("porn", 1.75, 5.25)]


def test_empty_video():
    assert find_segments(np.array([]), np.empty((0, 2)), np.array([0.5, 0.5]), ["a", "b"], SegmentConfig()) == []
    assert find_segments(np.array([]), np.array([]), np.array([0.5]), ["a"], SegmentConfig()) == []


def test_input_errors():
    times = grid()
    with pytest.raises(ValueError, match=r"scores must have shape \(frames, categories\) = \(20, 2\), got \(20, 1\)"):
        found(times, planted(times), np.array([0.5, 0.5]), ["a", "b"])
    with pytest.raises(ValueError, match="ascending"):
        found(times[::-1], planted(times))
    with pytest.raises(ValueError, match="one finite threshold per category"):
        found(times, planted(times), np.array([np.nan]))
    with pytest.raises(ValueError, match=r"duration_s \(5.0\) is before the last frame time \(9.5\)"):
        found(times, planted(times), duration_s=5.0)


@pytest.mark.parametrize("settings, message", [
    ({"exit_ratio": 1.5}, "segments.exit_ratio must be in (0, 1], got 1.5"),
    ({"exit_ratio": 0.0}, "segments.exit_ratio must be in (0, 1], got 0.0"),
    ({"merge_gap_s": -1.0}, "segments.merge_gap_s must be a finite number >= 0, got -1.0"),
    ({"min_duration_s": float("nan")}, "segments.min_duration_s must be a finite number >= 0, got nan"),
    ({"min_frames": 0}, "segments.min_frames must be >= 1, got 0"),
])
def test_config_validation(settings, message):
    with pytest.raises(ValueError) as err:
        SegmentConfig(**settings)
    assert str(err.value) == message


def test_config_from_yaml_mapping():
    config = from_dict(SegmentConfig, {"exit_ratio": 0.5, "merge_gap_s": 2, "min_frames": 2})
    assert config == SegmentConfig(exit_ratio=0.5, merge_gap_s=2.0, min_duration_s=0.0, min_frames=2)
    with pytest.raises(ConfigError, match=r"segments.exit_ratio must be in \(0, 1\], got 1.5"):
        from_dict(SegmentConfig, {"exit_ratio": 1.5})
    with pytest.raises(ConfigError, match="min_frames: expected int"):
        from_dict(SegmentConfig, {"min_frames": 1.5})


# --- temporal_iou and segment_metrics ----------------------------------------------------------

@pytest.mark.parametrize("a, b, iou", [
    ((0, 2), (1, 3), 1 / 3),
    ((0, 4), (1, 2), 0.25),
    ((0, 2), (0, 2), 1.0),
    ((0, 1), (2, 3), 0.0),
    ((0, 1), (1, 2), 0.0),   # touching
    ((1, 1), (1, 1), 1.0),   # the same instant
    ((1, 1), (0, 2), 0.0),   # an instant inside a span has no length to share
    ((1, 1), (2, 2), 0.0),
])
def test_temporal_iou(a, b, iou):
    assert temporal_iou(seg("x", *a), seg("x", *b)) == pytest.approx(iou)
    assert temporal_iou(seg("x", *b), seg("x", *a)) == pytest.approx(iou)


def test_greedy_matching_takes_the_highest_iou_first():
    truth = [[seg("c", 0, 10), seg("c", 3, 13)]]
    # P1 overlaps both truths (IoU 0.667 and 0.818), P2 only the first (0.6). Taking the best pair
    # first (P1 with the second truth) leaves P2 for the first: two matches, where "each truth
    # takes its best prediction in turn" would find one.
    predicted = [[seg("c", 2, 12), seg("c", 0, 6)]]
    result = segment_metrics(predicted, truth, ["c"])["c"]
    assert (result["matched"], result["precision"], result["recall"], result["f1"]) == (2, 1.0, 1.0, 1.0)
    assert result["mean_iou"] == pytest.approx((8 / 12 + 9 / 11) / 2)


def test_matching_is_one_to_one_and_within_a_video():
    truth = [[seg("c", 0, 4)], []]
    predicted = [[seg("c", 0, 4), seg("c", 0.5, 4)], [seg("c", 0, 4)]]
    result = segment_metrics(predicted, truth, ["c"])["c"]
    assert result == {
        "true_segments": 1, "predicted_segments": 3, "matched": 1,
        "precision": pytest.approx(1 / 3), "recall": 1.0, "f1": 0.5, "mean_iou": 1.0,
        "videos_with_iou_ge_0.5": 1.0, "videos_with_truth": 1, "false_alarm_videos": 1,
    }


def test_iou_threshold():
    truth, predicted = [[seg("c", 0, 10)]], [[seg("c", 0, 6)]]  # IoU 0.6
    assert segment_metrics(predicted, truth, ["c"])["c"]["matched"] == 1
    strict = segment_metrics(predicted, truth, ["c"], iou_threshold=0.7)["c"]
    assert (strict["matched"], strict["precision"], strict["recall"], strict["f1"]) == (0, 0.0, 0.0, 0.0)
    # The localisation rate keeps its fixed 0.5 bar.
    assert strict["videos_with_iou_ge_0.5"] == 1.0 and strict["mean_iou"] == pytest.approx(0.6)


def test_undefined_rates_are_none_and_json_friendly():
    truth = [[seg("missed", 1, 2)], [], []]
    predicted = [[], [seg("alarm", 0, 1)], []]
    result = segment_metrics(predicted, truth, ["missed", "alarm", "quiet"])
    assert result["missed"] == {
        "true_segments": 1, "predicted_segments": 0, "matched": 0, "precision": None, "recall": 0.0,
        "f1": 0.0, "mean_iou": 0.0, "videos_with_iou_ge_0.5": 0.0, "videos_with_truth": 1,
        "false_alarm_videos": 0,
    }
    alarm = result["alarm"]
    assert (alarm["precision"], alarm["recall"], alarm["f1"], alarm["mean_iou"]) == (0.0, None, 0.0, None)
    assert (alarm["videos_with_iou_ge_0.5"], alarm["false_alarm_videos"]) == (None, 1)
    quiet = result["quiet"]
    assert [quiet[k] for k in ("precision", "recall", "f1", "mean_iou", "videos_with_iou_ge_0.5")] == [None] * 5
    json.dumps(result, allow_nan=False)


def test_per_category_and_overall_micro_average():
    truth = [
        [seg("porn", 0, 4), seg("gore", 10, 12)],
        [seg("porn", 5, 9)],
    ]
    predicted = [
        [seg("porn", 0, 3), seg("gore", 20, 21), seg("porn", 30, 31)],   # porn IoU 0.75; gore missed
        [seg("porn", 6, 9), seg("gore", 1, 2)],                           # porn IoU 0.75; gore false alarm
    ]
    result = segment_metrics(predicted, truth, ["porn", "gore"])
    porn, gore, overall = result["porn"], result["gore"], result["overall"]
    assert (porn["true_segments"], porn["predicted_segments"], porn["matched"]) == (2, 3, 2)
    assert (porn["precision"], porn["recall"], porn["f1"]) == (pytest.approx(2 / 3), 1.0, pytest.approx(0.8))
    assert porn["mean_iou"] == pytest.approx(0.75) and porn["videos_with_iou_ge_0.5"] == 1.0
    assert (gore["matched"], gore["precision"], gore["recall"], gore["mean_iou"]) == (0, 0.0, 0.0, 0.0)
    assert (gore["videos_with_truth"], gore["false_alarm_videos"]) == (1, 1)
    assert (overall["true_segments"], overall["predicted_segments"], overall["matched"]) == (3, 5, 2)
    assert (overall["precision"], overall["recall"]) == (pytest.approx(2 / 5), pytest.approx(2 / 3))
    assert overall["f1"] == pytest.approx(2 * 2 / (5 + 3))
    assert overall["mean_iou"] == pytest.approx((0.75 + 0.75 + 0.0) / 3)
    assert overall["videos_with_iou_ge_0.5"] == pytest.approx(2 / 3)  # of (video, category) pairs
    assert (overall["videos_with_truth"], overall["false_alarm_videos"]) == (3, 1)


def test_found_segments_score_against_planted_truth():
    times = grid()
    predicted = find_segments(times, planted(times, (2.0, 5.0)), ENTER, ["porn"], SegmentConfig())
    result = segment_metrics([predicted], [[seg("porn", 2.0, 5.0)]], ["porn"])["porn"]
    assert result["matched"] == 1 and result["mean_iou"] == pytest.approx(3.0 / 3.5)


@pytest.mark.parametrize("predicted, truth, message", [
    ([[]], [[], []], "predicted holds 1 videos but truth holds 2"),
    ([[], []], [[], [seg("porn", 2.0, 1.0)]], "video 1: truth segment 0: end_s 1.0 is before start_s 2.0"),
    ([[], [seg("gore", 0, 1)]], [[], []], "video 1: predicted segment 0: unknown category 'gore'; known: porn"),
    ([[]], [[{"category": "porn", "start_s": 0}]], "video 0: truth segment 0: expected a dict with"),
    ([[]], [[seg("porn", 0, float("nan"))]], "video 0: truth segment 0: start_s and end_s must be finite"),
])
def test_metrics_errors(predicted, truth, message):
    with pytest.raises(ValueError) as err:
        segment_metrics(predicted, truth, ["porn"])
    assert str(err.value).startswith(message)


def test_metrics_argument_errors():
    with pytest.raises(ValueError, match=r"iou_threshold must be in \(0, 1\], got 0"):
        segment_metrics([], [], ["porn"], iou_threshold=0)
    with pytest.raises(ValueError, match="'overall' names the micro-average"):
        segment_metrics([], [], ["overall"])


# --- timeline_figure ---------------------------------------------------------------------------

def png_height(png: bytes) -> int:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return struct.unpack(">II", png[16:24])[1]


def test_timeline_figure():
    times = grid()
    scores = planted(times, (2.0, 5.0))[:, 0]
    videos = [
        {"id": "v1", "times": times.tolist(), "scores": scores.tolist(),
         "truth": [seg("porn", 2.0, 5.0), seg("gore", 0.0, 1.0)],
         "predicted": find_segments(times, scores[:, None], ENTER, ["porn"], SegmentConfig())},
        {"id": "v2", "times": [0.0, 0.5, 1.0], "scores": [0.1, float("nan"), 0.2], "truth": [],
         "predicted": [seg("porn", 0.5, 0.5)]},  # a zero-length prediction
        {"id": "no frames", "times": [], "scores": [], "truth": [seg("porn", 0.0, 3.0)], "predicted": []},
    ]
    one_row = png_height(timeline_figure("porn", videos[:1], 0.5))
    assert png_height(timeline_figure("porn", videos, 0.5)) > one_row
    assert png_height(timeline_figure("porn", [], 0.5)) > 0


def test_timeline_figure_rejects_mismatched_scores():
    video = {"id": "v", "times": [0.0, 1.0], "scores": [0.5], "truth": [], "predicted": []}
    with pytest.raises(ValueError, match="video 'v': 2 times but 1 scores"):
        timeline_figure("porn", [video], 0.5)
