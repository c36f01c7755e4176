"""The real-model job files: each states the card it is written for, and every GPU stage fits that card
(memory planner), at a size the video model was trained for, with a clip time limit the model card's
speed allows."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from i2v_dagster.models.registry import get_adapter_info, stage_settings
from i2v_dagster.specfile import load_spec

JOBS = Path(__file__).resolve().parents[2] / "jobs"
REAL_JOBS = (
    "cogvideox_5b_i2v.yaml",
    "cogvideox15_5b_i2v.yaml",
    "wan22_ti2v_5b.yaml",
    "hunyuan_i2v.yaml",
    "example_narrative.yaml",
)
MODEL_CARD_CLIP_S = {
    "cogvideox_5b_i2v": 180,  # one A100, 50 steps, bf16 (the H100 figure is 90 s)
    "cogvideox15_5b_i2v": 1000,  # one A100, 50 steps, bf16, 5 s clip (H100: 550 s)
    "wan22_ti2v_5b": 540,  # "under 9 minutes" for a 5 s 720p clip on one 24 GB consumer GPU
}
"""Seconds per clip the model cards give; a job's limit leaves room for a slower card or int8 weight-only
(slower per step than bf16 without torch.compile)."""


def _job(name: str):
    raw = yaml.safe_load((JOBS / name).read_text())["ops"]["script"]["config"]
    return raw, load_spec(JOBS / name, check_extras=False)  # the rules, on any install


def _models(spec):
    roles = ("script", "speech", "image", "video", "scorer")
    choices = {role: getattr(spec.models, role) for role in roles}
    return {
        role: (c.adapter, stage_settings(spec, role)) for role, c in choices.items() if c.adapter != "none"
    }


@pytest.mark.parametrize("name", REAL_JOBS)
def test_job_states_its_card_and_every_gpu_stage_fits_it(name):
    from i2v_dagster.models.memory import free_gb_for_card, plan_video_job

    raw, spec = _job(name)
    card = raw.get("target_gpu_gb")
    assert card in (24, 80), f"{name}: target_gpu_gb must say which card the job is written for"
    plans = plan_video_job(
        _models(spec), width=spec.width, height=spec.height, frames=spec.max_clip_frames,
        free_gb=free_gb_for_card(card),
    )  # fmt: skip
    assert [p.stage for p in plans if p.peak_gb] == ["narration", "keyframes", "clips", "scorer"]
    assert all(p.fits for p in plans), "\n".join(p.describe() for p in plans)


@pytest.mark.parametrize("name", REAL_JOBS)
def test_job_uses_a_size_the_video_model_was_trained_for(name):
    _, spec = _job(name)
    video = spec.models.video
    rules = get_adapter_info(video.adapter).constraints_for(stage_settings(spec, "video"))
    assert rules.check(video.adapter, width=spec.width, height=spec.height, fps=spec.fps) == []


@pytest.mark.parametrize("name", REAL_JOBS)
def test_clip_time_limit_allows_the_model_cards_time(name):
    _, spec = _job(name)
    card_s = MODEL_CARD_CLIP_S.get(spec.models.video.adapter)
    if card_s is None:
        pytest.skip(f"{spec.models.video.adapter}: no one-GPU time on its model card")
    assert spec.clip_time_limit_s >= 2 * card_s


def test_a_24_gb_card_cannot_hold_hunyuan_without_streaming_layers():
    """Why the HunyuanVideo-I2V job targets an 80 GB card."""
    from i2v_dagster.models.memory import free_gb_for_card, plan_video_job

    _, spec = _job("hunyuan_i2v.yaml")
    clips = next(
        p
        for p in plan_video_job(
            _models(spec),
            width=spec.width,
            height=spec.height,
            frames=spec.max_clip_frames,
            free_gb=free_gb_for_card(24),
        )  # fmt: skip
        if p.stage == "clips"
    )
    assert clips.placement.offload == "sequential"
