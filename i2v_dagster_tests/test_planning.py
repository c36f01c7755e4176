from __future__ import annotations

import pytest

from i2v_dagster.planning import Timeline, plan_timeline, scene_frames, split_frames


def test_scene_frames_cover_the_narration():
    assert scene_frames(2.0, 24) == 48
    assert scene_frames(2.01, 24) == 49
    assert scene_frames(0.001, 24) == 1


@pytest.mark.parametrize(("total", "most"), [(100, 48), (48, 48), (49, 48), (1, 10), (97, 40)])
def test_split_is_even_and_bounded(total, most):
    parts = split_frames(total, most)
    assert sum(parts) == total and max(parts) <= most and max(parts) - min(parts) <= 1


def test_first_clip_may_keep_one_frame_more():
    assert split_frames(97, 48, first_max=49) == [49, 48]
    assert split_frames(49, 48, first_max=49) == [49]
    with pytest.raises(ValueError, match="first_max"):
        split_frames(10, 4, first_max=6)


def test_continuing_clips_are_generated_one_frame_longer():
    t = plan_timeline([2.0, 2.0], fps=10, max_clip_frames=12, clip_seed=lambda i: i)
    assert [(c.frames, c.continues, c.generate_frames) for c in t.clips] == [
        (10, False, 10),
        (10, True, 11),
        (10, True, 11),
        (10, True, 11),
    ]
    assert t.clips[0].continues is False and all(c.continues for c in t.clips[1:])
    assert all(c.generate_frames == c.frames + 1 <= 12 for c in t.clips[1:])
    keyframe = plan_timeline(
        [2.0, 2.0], fps=10, max_clip_frames=12, clip_seed=lambda i: i, chain_mode="keyframe"
    )
    assert [c.continues for c in keyframe.clips] == [not c.first_of_scene for c in keyframe.clips]
    assert [c.continues for c in keyframe.clips] == [False, True, False, True]


def test_timeline_audio_first_and_round_trip():
    t = plan_timeline([1.0, 2.5, 0.2], fps=10, max_clip_frames=12, clip_seed=lambda i: 100 + i)
    assert [s.frames for s in t.scenes] == [10, 25, 2]
    assert [c.frames for c in t.clips] == [10, 9, 8, 8, 2]
    assert [c.scene for c in t.clips] == [0, 1, 1, 1, 2]
    assert [c.first_of_scene for c in t.clips] == [True, True, False, False, True]
    assert [c.continues for c in t.clips] == [False, True, True, True, True]
    assert [c.start_frame for c in t.clips] == [0, 10, 19, 27, 35]
    assert [c.seed for c in t.clips] == [100, 101, 102, 103, 104]
    assert t.total_frames == 37 and t.duration_s == pytest.approx(3.7)
    assert Timeline.from_dict(t.to_dict()) == t
    assert t.duration_s - sum([1.0, 2.5, 0.2]) < len(t.scenes) / 10
