"""The memory planner: counts, estimates against the measured figures, the placement ladder, the fix, and
what the adapters ask diffusers for on a (fake) CUDA card of a given size."""

from __future__ import annotations

from pathlib import Path

import pytest

from i2v_dagster.errors import AdapterError
from i2v_dagster.models import memory
from i2v_dagster.models.base import AdapterSettings
from i2v_dagster.models.memory import (
    MEASURED,
    Placement,
    free_gb_for_card,
    plan_stage,
    plan_video_job,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "model-configs"
CARD_24 = free_gb_for_card(24)
CARD_80 = free_gb_for_card(80)
VIDEO_NATIVE = {
    "cogvideox_5b_i2v": (720, 480, 49),
    "cogvideox15_5b_i2v": (1360, 768, 81),
    "wan22_ti2v_5b": (1280, 704, 121),
    "hunyuan_i2v": (1280, 720, 129),
}


def _plan(adapter: str, free_gb: float, size=None, **settings) -> memory.StagePlan:
    width, height, frames = size or VIDEO_NATIVE.get(adapter, (1024, 1024, 1))
    return plan_stage(
        adapter, AdapterSettings(**settings), width=width, height=height, frames=frames, free_gb=free_gb
    )


# ----- counts -----


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-configs beside the repo")
def test_measured_table_equals_meta_device_builds_of_the_shared_configs():
    pytest.importorskip("diffusers")
    for slug, modules in MEASURED.items():
        assert memory.count_folder(str(SHARED / slug)) == modules, slug


def test_quantizers_skip_what_transformers_skips():
    """The Linear layers counted as quantized are the ones transformers' quantizers convert: not T5's
    ``wo`` (``_keep_in_fp32_modules``) nor Llava's ``lm_head`` (``get_modules_to_not_convert``)."""
    torch = pytest.importorskip("torch")
    from i2v_dagster.models._compat import ensure_torch_stack

    ensure_torch_stack()
    import transformers
    from transformers.quantizers.base import HfQuantizer
    from transformers.quantizers.quantizers_utils import should_convert_module

    from i2v_dagster_tests.models.tiny_video import TINY_CONFIGS

    for cfg, kept in (
        (TINY_CONFIGS["cogvideox_5b_i2v"]["text_encoder"], "wo"),
        (TINY_CONFIGS["hunyuan_i2v"]["text_encoder"], "lm_head"),
    ):
        conf = transformers.AutoConfig.for_model(**{k: v for k, v in cfg.items() if k != "architectures"})
        with torch.device("meta"):
            model = getattr(transformers, cfg["architectures"][0])(conf)
        skip = HfQuantizer.get_modules_to_not_convert(model, None, model._keep_in_fp32_modules)
        linear = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        theirs = {n for n in linear if should_convert_module(n, skip)}
        assert any(n.endswith(kept) for n in set(linear) - theirs)
        size = memory.count_module("transformers", cfg["architectures"][0], cfg)
        assert size.int8_params == size.nf4_params == sum(linear[n].weight.numel() for n in theirs)


def test_flux_nf4_weights_keep_t5_wo_layers_in_bf16():
    """Item 6: NF4 FLUX is ~11.4 GB, not 10: T5-XXL's 24 ``wo`` layers (1.0 B parameters) stay bf16."""
    from i2v_dagster.models.flux import FluxSchnell

    t5 = MEASURED["flux.1-schnell"]["text_encoder_2"]
    wo = 24 * 10240 * 4096
    embeddings = 32128 * 4096
    norms = t5.params - embeddings - wo - t5.nf4_params
    assert 0 <= norms < 1e6  # every other weight is a quantized Linear
    assert FluxSchnell.weights_gb == 11.4
    assert memory.weights_gb(
        "flux_schnell", Placement(quantization="nf4", text_encoder_quantization="nf4")
    ) == (pytest.approx(11.42, abs=0.01))
    assert FluxSchnell.weights_gb_bf16 == 33.7


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-configs beside the repo")
def test_flux_nf4_weights_from_the_shared_configs_on_the_meta_device():
    pytest.importorskip("diffusers")
    from i2v_dagster.models.flux import FluxSchnell

    plan = plan_stage(
        "flux_schnell", AdapterSettings(quantization="nf4"), width=1024, height=1024, free_gb=CARD_24,
        configs=SHARED / "flux.1-schnell",
    )  # fmt: skip
    assert round(plan.weights_gb, 1) == FluxSchnell.weights_gb


def test_counts_come_from_a_local_pipeline_folder(tmp_path):
    pytest.importorskip("diffusers")
    from i2v_dagster_tests.models.tiny_video import save_tiny_pipeline

    folder = save_tiny_pipeline("wan22_ti2v_5b", tmp_path / "wan")
    plan = _plan("wan22_ti2v_5b", CARD_24, model=str(folder), quantization="none")
    assert 0 < plan.weights_gb < 0.01  # the tiny modules, counted from the folder's configs
    assert _plan("wan22_ti2v_5b", CARD_24, quantization="none").weights_gb == pytest.approx(24.2, abs=0.05)


# ----- estimates against the measured figures -----


def test_wan_at_1280x704x121_in_bf16_peaks_near_31_gb():
    plan = _plan("wan22_ti2v_5b", CARD_24, dtype="bf16", quantization="none")
    assert plan.weights_gb == pytest.approx(24.2, abs=0.05)  # 22.8 bf16 + the VAE in fp32
    assert plan.peak_gb == pytest.approx(31.0, abs=0.5)
    assert not plan.fits


def test_hunyuan_int8_transformer_with_bf16_llava_peaks_near_34_gb():
    plan = _plan("hunyuan_i2v", CARD_24, (720, 480, 65), quantization="int8wo")
    assert plan.weights_gb == pytest.approx(30.3, abs=0.05)
    assert plan.peak_gb == pytest.approx(34.0, abs=0.5)
    assert not plan.fits


def test_cogvideox15_int8_is_borderline_on_a_24_gb_card():
    plan = _plan("cogvideox15_5b_i2v", CARD_24, quantization="int8wo")
    assert 23.0 <= plan.peak_gb <= 24.0
    assert not plan.fits  # less than 10% of the card left for an estimate's error
    assert plan.fix == "set models.video.quantization: auto (the planner then picks " + (
        "bf16, int8wo transformer + text encoder, all on GPU, VAE tiling)"
    )


@pytest.mark.parametrize("adapter", [*VIDEO_NATIVE, "flux_schnell"])
def test_int8dq_and_fp8_weigh_one_byte_per_linear_weight_plus_row_scales(adapter):
    """The speed quantizations: torchao's int8 dynamic weighs what int8 weight-only does; float8 keeps an
    fp32 scale per output row (the planner's bf16 figure for int8's scale)."""
    bf16 = _plan(adapter, CARD_80, quantization="none")
    int8dq = _plan(adapter, CARD_80, quantization="int8dq")
    fp8 = _plan(adapter, CARD_80, quantization="fp8")
    transformer = MEASURED[memory.FAMILIES[adapter].slug]["transformer"]
    saved = (transformer.int8_params - 2 * transformer.int8_rows) / 1e9
    assert bf16.weights_gb - int8dq.weights_gb == pytest.approx(saved, rel=1e-9)
    assert fp8.weights_gb - int8dq.weights_gb == pytest.approx(2 * transformer.int8_rows / 1e9, rel=1e-9)
    assert int8dq.placement.quantization == "int8dq" and fp8.placement.quantization == "fp8"
    assert "fp8 transformer" in fp8.describe()
    assert int8dq.activations_gb == bf16.activations_gb
    if adapter != "flux_schnell":
        int8wo = _plan(adapter, CARD_80, quantization="int8wo")
        assert int8wo.weights_gb == int8dq.weights_gb


def test_auto_never_picks_a_speed_quantization():
    for adapter in [*VIDEO_NATIVE, "flux_schnell"]:
        for card in (CARD_24, CARD_80, free_gb_for_card(48)):
            assert _plan(adapter, card).quantization in ("none", "int8wo", "nf4")


# ----- the ladder -----


@pytest.mark.parametrize("adapter", [*VIDEO_NATIVE, "flux_schnell"])
def test_auto_is_bf16_without_quantization_where_it_fits(adapter):
    """Item 3: int8 weight-only without torch.compile is slower than bf16; an 80 GB card holds bf16."""
    plan = _plan(adapter, CARD_80)
    assert plan.fits
    assert plan.placement == Placement(dtype="bf16")


@pytest.mark.parametrize(
    ("adapter", "quantization", "text_encoder", "offload"),
    [
        ("cogvideox_5b_i2v", "int8wo", "none", "none"),
        ("cogvideox15_5b_i2v", "int8wo", "int8wo", "none"),
        ("wan22_ti2v_5b", "int8wo", "int8wo", "none"),
        ("hunyuan_i2v", "none", "none", "sequential"),
        ("flux_schnell", "nf4", "nf4", "none"),
    ],
)
def test_auto_on_a_24_gb_card_climbs_the_ladder(adapter, quantization, text_encoder, offload):
    plan = _plan(adapter, CARD_24)
    assert plan.fits
    assert (plan.quantization, plan.placement.text_encoder_quantization, plan.placement.offload) == (
        quantization,
        text_encoder,
        offload,
    )


def test_explicit_cpu_offload_keeps_the_planner_on_offload_rungs():
    plan = _plan("wan22_ti2v_5b", CARD_24, cpu_offload=True)
    assert plan.cpu_offload and plan.placement.offload == "model" and plan.fits
    # with model offload only the transformer (int8 is not needed) and its activations are on the GPU
    assert plan.quantization == "none"
    assert plan.weights_gb == pytest.approx(10.02, abs=0.01)


def test_explicit_settings_that_do_not_fit_name_the_settings_that_do():
    plan = _plan("cogvideox_5b_i2v", CARD_24, quantization="none")
    assert not plan.fits and plan.placement == Placement(dtype="bf16")
    assert plan.fix == "set models.video.quantization: int8wo"
    fitting = _plan("cogvideox_5b_i2v", CARD_24, quantization="int8wo")
    assert fitting.fits and fitting.fix is None


def test_vae_tiling_off_raises_the_peak_and_the_fix_turns_it_on():
    tiled = _plan("wan22_ti2v_5b", CARD_80, quantization="none")
    untiled = _plan("wan22_ti2v_5b", CARD_80, quantization="none", vae_tiling=False)
    assert untiled.peak_gb > tiled.peak_gb
    squeezed = _plan("wan22_ti2v_5b", untiled.peak_gb + 1, quantization="none", vae_tiling=False)
    assert not squeezed.fits
    assert squeezed.fix == "set models.video.vae_tiling: true"


def test_a_stage_that_cannot_fit_says_what_card_it_needs():
    plan = _plan("hunyuan_i2v", 12.0)
    assert not plan.fits
    assert plan.fix is not None and plan.fix.startswith("needs a card with >= ")
    need = float(plan.fix.split(">= ")[1].split(" GB")[0])
    assert _plan("hunyuan_i2v", need).fits


def test_describe_is_one_line_with_placement_estimate_free_memory_and_verdict():
    line = _plan("wan22_ti2v_5b", CARD_24, quantization="none").describe()
    assert "\n" not in line
    assert line.startswith(
        "clips: wan22_ti2v_5b: bf16, no quantization, all on GPU, VAE tiling; est. peak 31.0 GB"
    )
    assert "of 25.0 GB free: does NOT fit; fix: set models.video.quantization: auto" in line
    cpu = plan_stage(
        "wan22_ti2v_5b", AdapterSettings(), width=64, height=64, frames=9, free_gb=0, device="cpu"
    )
    assert (
        cpu.describe()
        == "clips: wan22_ti2v_5b on cpu: fp32, no quantization, VAE tiling (no GPU memory used)"
    )


@pytest.mark.parametrize(
    ("adapter", "settings", "message"),
    [
        (
            "wan22_ti2v_5b",
            {"quantization": "int4"},
            "quantization: wan22_ti2v_5b takes auto, fp8, int8dq, int8wo, nf4, none",
        ),
        (
            "flux_schnell",
            {"quantization": "int8wo"},
            "quantization: flux_schnell takes auto, fp8, int8dq, nf4, none",
        ),
        ("cogvideox_5b_i2v", {"dtype": "fp8"}, "dtype: cogvideox_5b_i2v takes auto, bf16, fp16 or fp32"),
    ],
)
def test_bad_settings_are_errors_naming_the_setting(adapter, settings, message):
    with pytest.raises(AdapterError, match=message):
        _plan(adapter, CARD_24, **settings)


# ----- a whole job -----


def test_plan_video_job_plans_every_stage_in_pipeline_order():
    models = {
        "scorer": ("clip", AdapterSettings()),
        "video": ("wan22_ti2v_5b", AdapterSettings()),
        "image": ("flux_schnell", AdapterSettings()),
        "speech": ("bark", AdapterSettings()),
        "script": ("ollama", AdapterSettings()),
    }
    plans = plan_video_job(models, width=1280, height=704, frames=120, free_gb=CARD_24)
    assert [p.stage for p in plans] == ["script", "narration", "keyframes", "clips", "scorer"]
    assert all(p.fits for p in plans)
    script, narration, keyframes, clips, scorer = plans
    assert "keep_alive 0" in script.describe() and script.peak_gb == 0
    assert narration.dtype == "fp16" and narration.peak_gb < 3
    assert keyframes.quantization == "nf4"
    assert clips == _plan("wan22_ti2v_5b", CARD_24)  # 120 frames asked -> 121 generated (4N+1)
    assert scorer.peak_gb < 3


def test_mock_adapters_use_no_gpu():
    plans = plan_video_job(
        {"video": ("mock_video", AdapterSettings()), "image": ("mock_image", AdapterSettings())},
        width=720, height=480, frames=48, free_gb=4.0,
    )  # fmt: skip
    assert [(p.stage, p.peak_gb, p.fits) for p in plans] == [("keyframes", 0.0, True), ("clips", 0.0, True)]


def test_a_card_of_24_gb_has_about_25_gb_free():
    assert pytest.approx(24 * 2**30 / 1e9 - memory.CUDA_CONTEXT_GB) == CARD_24
    assert 24.5 < CARD_24 < 25.5
