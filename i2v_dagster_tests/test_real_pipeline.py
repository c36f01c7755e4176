"""render_video with the real adapters (Bark, FLUX.1-schnell, Wan2.2-TI2V, CLIP) pointed at tiny random
pipelines saved in tmp (a local folder in place of the hub id), end to end on CPU."""

from __future__ import annotations

import dagster as dg
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

pytestmark = [pytest.mark.models, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from i2v_dagster_tests.models.tiny_bark import save_tiny_bark
    from i2v_dagster_tests.models.tiny_clip import save_tiny_clip
    from i2v_dagster_tests.models.tiny_flux import save_tiny_flux
    from i2v_dagster_tests.models.tiny_video import save_tiny_pipeline

    root = tmp_path_factory.mktemp("tiny")
    clip = save_tiny_clip(root / "clip")
    return {
        "bark": str(save_tiny_bark(root / "bark")),
        "flux": str(save_tiny_flux(root / "flux")),
        "wan": str(save_tiny_pipeline("wan22_ti2v_5b", root / "wan")),
        "clip": {
            "adapter": "clip",
            "device": clip.device,
            "dtype": clip.dtype,
            "options": dict(clip.options),
        },
    }


def _messages(instance, run_id: str) -> list[tuple[str, str]]:
    out = []
    for record in instance.get_records_for_run(run_id).records:
        entry = record.event_log_entry
        if entry.user_message:
            out.append((entry.step_key or "", entry.user_message))
    return out


def test_real_adapters_render_a_video_with_narration(tiny_models, tmp_path):
    from i2v_dagster.media.audio import wav_duration
    from i2v_dagster.media.video import probe
    from i2v_dagster_tests.helpers import render

    spec = {
        "name": "tiny-real",
        "subject": "a paper boat",
        "seed": 3,
        "fps": 24,
        "width": 64,
        "height": 64,
        "max_clip_frames": 9,
        "outputs_root": str(tmp_path),
        # random tiny weights make near-still clips: this test is about the real adapters' plumbing, so
        # the motion gate is off (the gate itself is tested on the mock)
        "checks": {"min_motion": 0.0},
        "scenes": [
            {
                "narration": "A boat sets out.",
                "visual_prompt": "a paper boat on a river",
                "motion_prompt": "drift",
            },
            {
                "narration": "It reaches the sea.",
                "visual_prompt": "a paper boat at sea",
                "motion_prompt": "pan",
            },
        ],
        "models": {
            "speech": {
                "adapter": "bark",
                "model": tiny_models["bark"],
                "options": {"max_semantic_tokens": 24},
            },
            "image": {"adapter": "flux_schnell", "model": tiny_models["flux"], "num_inference_steps": 2},
            "video": {
                "adapter": "wan22_ti2v_5b",
                "model": tiny_models["wan"],
                "num_inference_steps": 2,
                "options": {"any_size": True},  # the tiny model at 64x64, not Wan's trained 1280x704
            },
            "scorer": tiny_models["clip"],
        },
    }
    with dg.instance_for_test() as instance:
        result = render(instance, spec)
        assert result.success
        root = tmp_path / "tiny-real"
        info = probe(root / "final" / "tiny-real.mp4")
        assert info.video is not None and info.audio is not None
        assert (info.video.width, info.video.height) == (64, 64)
        assert abs(info.video.duration_s - wav_duration(root / "narration.wav")) <= 1 / 24
        messages = [m for _, m in _messages(instance, result.run_id)]
        flux_unloaded = next(i for i, m in enumerate(messages) if "unloaded model flux_schnell" in m)
        wan_loading = next(i for i, m in enumerate(messages) if "loading model wan22_ti2v_5b" in m)
        assert flux_unloaded < wan_loading
        assert any("2 steps" in m and "ETA" in m for m in messages)  # denoising progress reached the log
        from i2v_dagster.defs.storage import check_evaluations

        evaluations = {
            (ev.asset_key.to_user_string(), ev.check_name): ev
            for ev in check_evaluations(instance, result.run_id)
        }
        fidelity = evaluations[("stitched_video", "prompt_fidelity")]
        scores = fidelity.metadata["details"].value["scores"]
        assert set(scores) == {"tiny-clip-a", "tiny-clip-b"}
        assert all(-1 <= v <= 1 for per in scores.values() for v in per.values())
        assert fidelity.severity == dg.AssetCheckSeverity.WARN
