"""The mock adapters make real, deterministic content."""

from __future__ import annotations

import numpy as np
import pytest

from i2v_dagster.guardrails import Deadline
from i2v_dagster.models.base import AdapterSettings, ClipRequest
from i2v_dagster.models.mock import MockImage, MockScriptWriter, MockSpeech, MockVideo
from i2v_dagster.specfile import parse_spec


def test_keyframes_follow_seed_and_prompt():
    m = MockImage()
    a = np.asarray(m.generate("a boat", width=96, height=64, seed=1).image)
    assert a.shape == (64, 96, 3)
    assert np.array_equal(a, np.asarray(m.generate("a boat", width=96, height=64, seed=1).image))
    assert not np.array_equal(a, np.asarray(m.generate("a boat", width=96, height=64, seed=2).image))
    assert not np.array_equal(a, np.asarray(m.generate("a tree", width=96, height=64, seed=1).image))
    assert a.std() > 10  # textured, so motion is measurable


def _clip(model, image, **kw):
    req = dict(image=image, prompt="pan", num_frames=12, width=96, height=64, fps=12, seed=5)
    req.update(kw)
    return model.generate(ClipRequest(**req))


def test_clip_starts_at_the_conditioning_image_and_moves():
    image = MockImage().generate("a boat", width=96, height=64, seed=1).image
    clip = _clip(MockVideo(), image)
    assert clip.frames.shape == (12, 64, 96, 3) and clip.frames.dtype == np.uint8
    assert np.array_equal(clip.frames[0], np.asarray(image))
    diffs = np.abs(np.diff(clip.frames.astype(int), axis=0)).mean(axis=(1, 2, 3))
    assert (diffs > 0.5).all()
    assert np.array_equal(clip.frames, _clip(MockVideo(), image).frames)
    assert not np.array_equal(clip.frames, _clip(MockVideo(), image, seed=6).frames)


def test_color_cast_option_shifts_colours_over_the_clip():
    image = MockImage().generate("a boat", width=96, height=64, seed=1).image
    plain = _clip(MockVideo(), image).frames
    cast = _clip(MockVideo(AdapterSettings(options={"color_cast": [30, 0, -30]})), image).frames
    delta = cast[-1].astype(float).mean(axis=(0, 1)) - plain[-1].astype(float).mean(axis=(0, 1))
    assert delta[0] > 20 and delta[2] < -20


def test_slow_mock_honours_the_deadline_at_each_step():
    image = MockImage().generate("a boat", width=96, height=64, seed=1).image
    slow = MockVideo(AdapterSettings(options={"steps": 50, "seconds_per_step": 0.05}))
    steps = []
    from i2v_dagster.errors import ClipTimeoutError

    with pytest.raises(ClipTimeoutError):
        _clip(slow, image, deadline=Deadline(0.2), on_step=steps.append)
    assert 1 <= len(steps) <= 6


def test_speech_length_follows_the_text():
    speech = MockSpeech()
    short = speech.synthesize("Hello there.", seed=1)
    long = speech.synthesize("Hello there. " * 8, seed=1)
    assert short.sample_rate == 24000 and long.duration_s > 3 * short.duration_s
    assert np.abs(short.samples).max() > 0.05
    assert np.array_equal(short.samples, speech.synthesize("Hello there.", seed=1).samples)


def test_mock_script_writer_writes_the_asked_number_of_scenes():
    spec = parse_spec(
        {
            "name": "x",
            "brief": "A fox. It runs.",
            "num_scenes": 4,
            "models": {"script": {"adapter": "mock_script"}},
        }
    )
    script = MockScriptWriter().write(spec)
    assert len(script.scenes) == 4 and script.subject == "A fox"
    assert script == MockScriptWriter().write(spec)
