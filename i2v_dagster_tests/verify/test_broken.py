from __future__ import annotations

import pytest

from i2v_dagster.verify.broken import check_broken_frames, classify_frames
from i2v_dagster_tests.verify import videos


def test_textured_pan_passes():
    outcome = check_broken_frames(videos.pan())
    assert outcome.passed, outcome.explanation
    assert outcome.value == 0
    assert outcome.details["longest_frozen_run"] == 1


def test_black_clip_fails():
    outcome = check_broken_frames(videos.constant(9))
    assert not outcome.passed
    assert outcome.details["black_frames"] == list(range(9))
    assert outcome.value == 9


@pytest.mark.parametrize(("colour", "kind"), [((255, 255, 255), "white"), ((40, 120, 200), "constant")])
def test_white_and_constant_frames_fail(colour, kind):
    clip = videos.pan(9)
    clip[4] = colour
    outcome = check_broken_frames(clip)
    assert not outcome.passed
    assert outcome.details[f"{kind}_frames"] == [4]
    assert outcome.details["flagged_frames"] == [4]


def test_nan_born_frames_are_named_as_such():
    clip = videos.pan(9)
    clip[3:5] = 0  # NaN pixels arrive as 0
    outcome = check_broken_frames(clip, nan_frames=(3, 4))
    assert not outcome.passed
    assert outcome.details["nan_frames"] == [3, 4]
    assert outcome.details["black_frames"] == []
    assert "nan [3, 4]" in outcome.explanation
    # Without the adapter's report the same frames still fail, as black.
    assert check_broken_frames(clip).details["black_frames"] == [3, 4]


def test_nan_frame_index_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="nan_frames"):
        check_broken_frames(videos.pan(5), nan_frames=(5,))


def test_frozen_run_over_the_limit_fails():
    clip = videos.pan(17)
    clip[4:14] = clip[4]  # 10 identical frames
    outcome = check_broken_frames(clip, max_frozen_frames=6)
    assert not outcome.passed
    assert outcome.details["longest_frozen_run"] == 10
    assert outcome.details["frozen_runs"] == [[4, 10]]
    assert outcome.details["flagged_frames"] == list(range(4, 14))


def test_frozen_run_within_the_limit_passes():
    clip = videos.pan(17)
    clip[4:10] = clip[4]  # 6 identical frames
    outcome = check_broken_frames(clip, max_frozen_frames=6)
    assert outcome.passed, outcome.explanation
    assert outcome.details["longest_frozen_run"] == 6


def test_small_local_change_is_not_a_freeze():
    clip = videos.still(9)
    for t in range(9):  # a blink-sized patch changes; the rest stays still
        clip[t, 40:48, 60:68] = 30 * t
    assert check_broken_frames(clip).details["longest_frozen_run"] == 1


def test_classify_reports_luma_stats():
    kinds, stats = classify_frames(videos.constant(2, (255, 255, 255)))
    assert kinds == ["white", "white"]
    assert stats["mean_luma"] == pytest.approx([255.0, 255.0], abs=0.01)
