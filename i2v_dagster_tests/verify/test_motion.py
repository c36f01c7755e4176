from __future__ import annotations

import numpy as np
import pytest

from i2v_dagster.verify.motion import check_motion, motion_fractions, naive_avg_motion, video_motion_series
from i2v_dagster_tests.verify import videos


@pytest.mark.parametrize(
    "clip", [videos.pan(), videos.pan(step=1), videos.zoom()], ids=["pan", "slow_pan", "zoom"]
)
def test_pan_and_zoom_over_texture_pass(clip):
    outcome = check_motion(clip, min_motion=0.05)
    assert outcome.passed, outcome.explanation
    assert 0.05 <= outcome.value <= 1.0


def test_still_clip_fails():
    outcome = check_motion(videos.still(), min_motion=0.05)
    assert not outcome.passed
    assert outcome.value == 0.0
    assert outcome.details["avg_motion"] == 0.0


def test_clip_that_freezes_fails():
    clip = videos.pan(17)
    clip[4:] = clip[4]  # moves for 4 frames, then frozen
    outcome = check_motion(clip)
    assert not outcome.passed
    assert outcome.details["moving_pairs"] == 4


def test_single_jump_cannot_game_the_score():
    clip = videos.single_jump(17, at=8)
    outcome = check_motion(clip, min_motion=0.05)
    assert not outcome.passed
    assert outcome.value == 0.0
    assert outcome.details["max_fraction"] > 0.9  # the jump is seen...
    assert outcome.details["moving_pairs"] == 1  # ...in one pair of 16
    # The naive figure is clearly above zero (about 0.024 here): it would be gamed by the glitch.
    assert outcome.details["avg_motion"] == pytest.approx(naive_avg_motion(clip), abs=1e-6)
    assert outcome.details["avg_motion"] > 0.01
    assert "avg_motion" in outcome.explanation


def test_grain_alone_is_not_motion():
    clip = videos.grainy_still()
    outcome = check_motion(clip)
    assert not outcome.passed
    assert naive_avg_motion(clip) > 0.005  # the naive figure (half-resolution luma) counts grain as motion


def test_one_frame_clip_fails_with_reason():
    outcome = check_motion(videos.pan(1))
    assert not outcome.passed
    assert "1 frame" in outcome.explanation


def test_stride_compares_frames_further_apart():
    clip = videos.pan(9, step=1)
    assert motion_fractions(clip, stride=4).shape == (5,)
    assert np.median(motion_fractions(clip, stride=4)) > np.median(motion_fractions(clip))
    assert not check_motion(videos.single_jump(17), stride=2).passed


def test_video_series_concatenates_clips():
    values, boundaries = video_motion_series([[0.1, 0.2], [0.3], [0.4, 0.5]])
    assert values == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert boundaries == [2, 3]


def test_rejects_wrong_dtype():
    with pytest.raises(ValueError, match="uint8"):
        check_motion(videos.pan(3).astype(np.float32))
