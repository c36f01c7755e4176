from __future__ import annotations

import math

import numpy as np
import pytest

from i2v_dagster.verify.chain import aggregate
from i2v_dagster.verify.continuity import (
    Join,
    check_color_drift,
    check_seams,
    clip_joins,
    color_stats,
    measure_join,
)
from i2v_dagster_tests.verify import videos


def test_chained_clips_have_smooth_seams():
    outcome = check_seams(clip_joins(videos.chain(3)))
    assert outcome.passed, outcome.explanation
    assert [j["join"] for j in outcome.details["joins"]] == ["0->1", "1->2"]
    assert all(0.5 < j["ratio"] < 1.5 for j in outcome.details["joins"])  # a join is one more pan step


def test_seam_jump_fails_and_names_the_join():
    clips = videos.chain(3)
    clips[2] = videos.pan(9, seed=99)  # does not continue clip 1
    outcome = check_seams(clip_joins(clips))
    assert not outcome.passed
    assert outcome.details["failing_joins"] == ["1->2"] and outcome.details["jumps"] == ["1->2"]
    assert outcome.value > 3.0
    assert "jump at 1->2" in outcome.explanation


def test_seam_hold_fails_and_names_the_join():
    clips = videos.chain(3, hold=True)  # each clip repeats the previous clip's last frame
    assert np.array_equal(clips[1][0], clips[0][-1])
    outcome = check_seams(clip_joins(clips))
    assert not outcome.passed
    assert outcome.details["holds"] == ["0->1", "1->2"] and outcome.details["jumps"] == []
    assert "hold (repeated frame) at 0->1, 1->2" in outcome.explanation


def test_still_clips_neither_jump_nor_hold():
    a, b = videos.still(5, seed=1), videos.still(5, seed=1)
    smooth = clip_joins([a, b])[0]
    assert smooth.seam_diff == 0.0 and smooth.typical_diff == 0.0 and smooth.kind() == "ok"
    cut = clip_joins([a, videos.still(5, seed=2)])[0]
    assert math.isfinite(cut.ratio()) and cut.kind() == "jump"


def test_no_join_is_skipped():
    assert check_seams([]).status == "SKIPPED"


def test_seams_need_equal_frame_sizes():
    with pytest.raises(ValueError, match="frame size"):
        measure_join("0->1", videos.pan(3)[-1], videos.pan(3)[0, :50], previous_diffs=[1.0], next_diffs=[1.0])


def test_join_kinds_follow_the_thresholds():
    join = Join(label="0->1", seam_diff=0.4, typical_diff=4.0)
    assert join.kind() == "ok" and join.ratio() == pytest.approx(0.1)
    assert join.kind(min_seam_ratio=0.2) == "hold"
    assert Join(label="x", seam_diff=13.0, typical_diff=4.0).kind() == "jump"


def test_clip_matching_the_keyframe_has_no_drift():
    clip = videos.still(5)
    outcome = check_color_drift(clip, clip[0], max_color_drift=12.0)
    assert outcome.passed
    assert outcome.value == pytest.approx(0.0, abs=1e-6)


def test_colour_cast_fails_with_per_channel_deltas():
    clip = videos.pan(9)
    cast = videos.with_cast(clip, (30, -20, 0))  # magenta: more red, less green
    outcome = check_color_drift(cast, clip[0], max_color_drift=12.0)
    assert not outcome.passed
    assert outcome.value > 12.0
    deltas = outcome.details["mean_delta"]
    assert deltas["a"] > 10  # +a is towards magenta/red
    assert abs(deltas["L"]) < 3 and abs(deltas["b"]) < 3
    assert set(outcome.details["std_delta"]) == {"L", "a", "b"}


def _chain_drift(clips, reference):
    per_clip = [(str(i), check_color_drift(c, reference, max_color_drift=12.0)) for i, c in enumerate(clips)]
    return aggregate("color_drift", per_clip), [o.value for _, o in per_clip]


def test_drift_compounds_along_a_chain_and_fails_late_clips():
    clips = videos.chain(3, cast_per_clip=(12, 0, -12))
    outcome, per_clip = _chain_drift(clips, clips[0][0])
    assert per_clip[0] < per_clip[1] < per_clip[2]
    assert per_clip[0] <= 12.0 < per_clip[2]
    assert not outcome.passed
    assert "0" not in outcome.details["failing_clips"] and "2" in outcome.details["failing_clips"]
    assert outcome.value == pytest.approx(max(per_clip), abs=1e-3)


def test_clean_chain_passes_drift():
    clips = videos.chain(3)
    outcome, _ = _chain_drift(clips, clips[0][0])
    assert outcome.passed, outcome.explanation


def test_color_stats_of_a_flat_colour():
    stats = color_stats(videos.constant(3, (255, 0, 0)))
    np.testing.assert_allclose(stats.mean, [53.24, 80.09, 67.20], atol=0.02)
    np.testing.assert_allclose(stats.std, 0.0, atol=1e-4)
