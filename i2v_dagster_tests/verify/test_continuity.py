from __future__ import annotations

import math

import numpy as np
import pytest

from i2v_dagster.verify.continuity import (
    check_color_drift,
    check_color_drift_video,
    check_seam,
    check_seams,
    color_stats,
    seam_ratio,
)
from i2v_dagster_tests.verify import videos


def test_chained_clips_have_smooth_seams():
    outcome = check_seams(videos.chain(3), max_seam_ratio=3.0)
    assert outcome.passed, outcome.explanation
    assert outcome.value == 0.0  # each clip starts exactly on the previous last frame
    assert [j["join"] for j in outcome.details["joins"]] == ["0->1", "1->2"]


def test_seam_jump_fails_and_names_the_join():
    clips = videos.chain(3)
    clips[2] = videos.pan(9, seed=99)  # does not start from clip 1's last frame
    outcome = check_seams(clips, max_seam_ratio=3.0)
    assert not outcome.passed
    assert outcome.details["failing_joins"] == ["1->2"]
    assert outcome.value > 3.0
    assert "1->2" in outcome.explanation


def test_single_join_check():
    clips = videos.chain(2)
    assert check_seam(clips[0], clips[1]).passed
    outcome = check_seam(clips[0], videos.pan(9, seed=42))
    assert not outcome.passed and outcome.details["failing_joins"] == ["0->1"]


def test_still_clips_do_not_divide_by_zero():
    a, b = videos.still(5, seed=1), videos.still(5, seed=1)
    smooth = seam_ratio(a, b)
    assert smooth == {"seam_diff": 0.0, "typical_diff": 0.0, "ratio": 0.0}
    cut = seam_ratio(a, videos.still(5, seed=2))
    assert math.isfinite(cut["ratio"]) and cut["ratio"] > 3.0


def test_one_clip_is_skipped():
    outcome = check_seams([videos.pan(5)])
    assert outcome.status == "SKIPPED"


def test_seams_need_equal_frame_sizes():
    with pytest.raises(ValueError, match="frame size"):
        seam_ratio(videos.pan(3), videos.pan(3)[:, :50])


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


def test_drift_compounds_along_a_chain_and_fails_late_clips():
    clips = videos.chain(3, cast_per_clip=(12, 0, -12))
    outcome = check_color_drift_video(clips, clips[0][0], max_color_drift=12.0)
    per_clip = outcome.details["per_clip"]
    assert per_clip[0] < per_clip[1] < per_clip[2]
    assert per_clip[0] <= 12.0 < per_clip[2]
    assert not outcome.passed
    assert 0 not in outcome.details["failing_clips"] and 2 in outcome.details["failing_clips"]
    assert outcome.value == pytest.approx(max(per_clip), abs=1e-3)


def test_clean_chain_passes_drift():
    clips = videos.chain(3)
    outcome = check_color_drift_video(clips, clips[0][0], max_color_drift=12.0)
    assert outcome.passed, outcome.explanation


def test_color_stats_of_a_flat_colour():
    stats = color_stats(videos.constant(3, (255, 0, 0)))
    np.testing.assert_allclose(stats.mean, [53.24, 80.09, 67.20], atol=0.02)
    np.testing.assert_allclose(stats.std, 0.0, atol=1e-4)
