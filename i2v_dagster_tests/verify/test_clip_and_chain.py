"""The functions the pipeline calls for every clip and every chain: ``clip_outcomes``, ``chain_outcomes``."""

from __future__ import annotations

import json

import pytest

from i2v_dagster.verify.chain import aggregate, chain_outcomes, outcome_from_record
from i2v_dagster.verify.clip import CLIP_CHECKS, Shape, Thresholds, clip_outcomes
from i2v_dagster.verify.fidelity import check_prompt_fidelity, sample_indices
from i2v_dagster_tests.verify import videos

PLANNED = Shape(frames=9, fps=12, width=videos.W, height=videos.H)


def _checks(clip, encoded=PLANNED, **kwargs):
    return clip_outcomes(clip, planned=PLANNED, encoded=encoded, reference=clip[0], **kwargs)


def test_a_good_clip_passes_every_check_and_keeps_its_figures():
    result = _checks(videos.pan(9))
    assert [o.name for o in result.outcomes] == list(CLIP_CHECKS)
    assert result.passed and result.failed == []
    assert len(result.pair_diffs) == 8 and len(result.motion) == 8
    record = json.loads(json.dumps(result.to_record()))  # what the clip's record stores
    assert [outcome_from_record(o).name for o in record["outcomes"]] == list(CLIP_CHECKS)


@pytest.mark.parametrize(
    ("clip", "encoded", "failing"),
    [
        (videos.constant(9), PLANNED, {"broken_frames", "motion", "color_drift"}),
        (videos.still(9), PLANNED, {"broken_frames", "motion"}),
        (videos.pan(9), Shape(8, 12, videos.W, videos.H), {"shape"}),
        (videos.with_cast(videos.pan(9), (40, 0, -40)), PLANNED, {"color_drift"}),
    ],
)
def test_each_defect_fails_its_own_check(clip, encoded, failing):
    reference = videos.pan(9)[0]
    result = clip_outcomes(clip, planned=PLANNED, encoded=encoded, reference=reference)
    assert set(result.failed) == failing


def test_thresholds_come_from_the_spec():
    strict = _checks(videos.pan(9), thresholds=Thresholds(min_motion=0.99))
    assert strict.failed == ["motion"]


def test_chain_outcomes_take_the_worst_clip_from_the_records():
    clips = [videos.pan(9, seed=1), videos.still(9), videos.pan(9, seed=2)]
    records = {f"{i:03d}": _checks(c).to_record() for i, c in enumerate(clips)}
    outcomes = {o.name: o for o in chain_outcomes(records)}
    assert set(outcomes) == set(CLIP_CHECKS)
    assert not outcomes["motion"].passed and outcomes["motion"].details["failing_clips"] == ["001"]
    assert outcomes["motion"].value == 0.0 and "worst is clip 001" in outcomes["motion"].explanation
    assert outcomes["shape"].passed
    with pytest.raises(ValueError, match="clip 000: its record holds no 'shape' outcome"):
        chain_outcomes({"000": {"outcomes": []}})


def test_aggregate_of_no_clips_is_skipped():
    assert aggregate("motion", []).status == "SKIPPED"


def test_prompt_fidelity_outcome_and_sampling():
    labels = ["keyframe 000", "clip 000 frame 0"]
    passed = check_prompt_fidelity({"a": [0.3, 0.25], "b": [0.4, 0.3]}, labels, min_clip_score=0.2, sampled=3)
    assert passed.passed and passed.value == pytest.approx(0.275)
    failed = check_prompt_fidelity({"a": [0.1, 0.05]}, labels, min_clip_score=0.2, sampled=3)
    assert not failed.passed and "0.075" in failed.explanation
    assert sample_indices(49, 3) == [0, 24, 48] and sample_indices(2, 3) == [0, 1]
