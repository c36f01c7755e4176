from __future__ import annotations

import pytest

from i2v_dagster.verify.delivery import Shape, check_shape, check_sync


def test_sync_within_one_frame_passes():
    outcome = check_sync(
        video_duration_s=5.0417, narration_duration_s=5.02, fps=24, has_video=True, has_audio=True
    )
    assert outcome.passed, outcome.explanation
    assert outcome.threshold == pytest.approx(1 / 24)
    assert outcome.value == pytest.approx(0.0217)


def test_audio_longer_than_video_fails():
    outcome = check_sync(
        video_duration_s=5.0, narration_duration_s=5.5, fps=24, has_video=True, has_audio=True
    )
    assert not outcome.passed
    assert outcome.value == pytest.approx(0.5)
    assert "narration longer" in outcome.explanation


def test_missing_audio_stream_fails():
    outcome = check_sync(
        video_duration_s=5.0, narration_duration_s=5.0, fps=24, has_video=True, has_audio=False
    )
    assert not outcome.passed
    assert outcome.details["problems"] == ["narration planned but no audio stream"]


def test_silent_video_by_plan_passes_without_audio():
    outcome = check_sync(
        video_duration_s=4.0, narration_duration_s=None, fps=8, has_video=True, has_audio=False
    )
    assert outcome.passed
    assert outcome.value is None


def test_missing_video_stream_fails():
    outcome = check_sync(
        video_duration_s=0.0, narration_duration_s=None, fps=8, has_video=False, has_audio=False
    )
    assert not outcome.passed


def test_shape_as_planned_passes():
    outcome = check_shape(Shape(49, 8, 720, 480), Shape(49, 8, 720, 480))
    assert outcome.passed
    assert outcome.value == 0


def test_wrong_frame_count_fails():
    outcome = check_shape(Shape(48, 8.0, 720, 480), Shape(49, 8, 720, 480))
    assert not outcome.passed
    assert outcome.details["mismatched"] == ["frames"]
    assert outcome.details["actual"]["frames"] == 48 and outcome.details["planned"]["frames"] == 49
