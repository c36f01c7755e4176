from __future__ import annotations

import numpy as np

from i2v_dagster.verify.color import match_color
from i2v_dagster.verify.continuity import color_drift
from i2v_dagster_tests.verify import videos


def test_cast_clip_moves_toward_the_reference():
    clip = videos.pan(9)
    reference = clip[0]
    cast = videos.with_cast(clip, (30, 5, -25))
    before = color_drift(cast, reference).drift
    corrected = match_color(cast, reference)
    after = color_drift(corrected, reference).drift
    assert corrected.shape == cast.shape and corrected.dtype == np.uint8
    assert before > 12.0
    assert after < before / 4


def test_reference_matched_to_itself_barely_changes():
    clip = videos.still(3)
    out = match_color(clip, clip[0])
    assert np.abs(out.astype(np.int16) - clip).mean() < 0.5


def test_correcting_to_the_first_reference_does_not_compound():
    clips = videos.chain(3, cast_per_clip=(12, 0, -12))
    reference = clips[0][0]
    raw = [color_drift(c, reference).drift for c in clips]
    fixed = [color_drift(match_color(c, reference), reference).drift for c in clips]
    assert raw[2] > 12.0
    assert all(f < r for f, r in zip(fixed[1:], raw[1:], strict=True))
    assert max(fixed) < 6.0
