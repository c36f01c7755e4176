"""FluxSchnell on a tiny random FLUX.1-schnell-shaped pipeline saved to a folder and loaded offline."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from i2v_dagster.models._compat import ensure_torch_stack  # noqa: E402

ensure_torch_stack()
pytest.importorskip("diffusers")

from i2v_dagster.errors import AdapterError, ModelLoadError  # noqa: E402
from i2v_dagster.models.base import AdapterSettings  # noqa: E402
from i2v_dagster.models.flux import FluxSchnell  # noqa: E402
from i2v_dagster.models.registry import build_adapter, get_adapter_info  # noqa: E402
from i2v_dagster_tests.models.contract import assert_unload_releases  # noqa: E402
from i2v_dagster_tests.models.tiny_flux import save_tiny_flux  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("one_torch_thread")]

PROMPT = "a red car on a road at sunset"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny_flux(tmp_path_factory.mktemp("tiny_flux"))


@pytest.fixture(scope="module")
def flux(tiny_folder):
    adapter = FluxSchnell(AdapterSettings(model=str(tiny_folder)))
    adapter.load()
    yield adapter
    adapter.unload()


def _pixels(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.uint8)


def test_registry_entry_and_class_facts():
    info = get_adapter_info("flux_schnell")
    assert info.cls is FluxSchnell and info.role == "image" and info.large
    assert info.repo_id == "black-forest-labs/FLUX.1-schnell"
    assert "flux1-schnell.safetensors" not in info.allow_patterns
    assert all(not p.endswith("*") or "/" in p for p in info.allow_patterns)  # never a root-level wildcard
    assert {"transformer/*.safetensors", "text_encoder_2/*.safetensors", "model_index.json"} <= set(
        info.allow_patterns
    )
    assert FluxSchnell.weights_gb < FluxSchnell.weights_gb_bf16
    # NF4: transformer 6.69 + T5-XXL 4.32 (its wo layers stay bf16) + CLIP 0.25 + VAE 0.17 GB
    assert FluxSchnell.weights_gb == 11.4


def test_generate_makes_an_rgb_image_of_the_requested_size(flux, tiny_folder):
    for width, height in ((64, 64), (96, 64)):
        result = flux.generate(PROMPT, width=width, height=height, seed=1)
        assert result.image.mode == "RGB"
        assert result.image.size == (width, height)
        assert result.seed == 1 and result.prompt == PROMPT
        assert result.model_id == str(tiny_folder)
        assert _pixels(result).std() > 1.0  # a picture, not a flat fill


def test_schnell_defaults_four_steps_and_settings_override(flux, tiny_folder):
    flux.generate(PROMPT, width=64, height=64, seed=0)
    assert len(flux.pipe.scheduler.timesteps) == 4
    two = FluxSchnell(AdapterSettings(model=str(tiny_folder), num_inference_steps=2))
    two.generate(PROMPT, width=64, height=64, seed=0)
    assert len(two.pipe.scheduler.timesteps) == 2
    two.unload()


def test_same_seed_same_image_other_seed_other_image(flux):
    a = _pixels(flux.generate(PROMPT, width=64, height=64, seed=7))
    b = _pixels(flux.generate(PROMPT, width=64, height=64, seed=7))
    c = _pixels(flux.generate(PROMPT, width=64, height=64, seed=8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 1.0


def test_save_pretrained_round_trip_gives_the_same_image(flux, tmp_path):
    before = _pixels(flux.generate(PROMPT, width=64, height=64, seed=3))
    flux.pipe.save_pretrained(tmp_path / "copy")
    again = FluxSchnell(AdapterSettings(model=str(tmp_path / "copy")))
    after = _pixels(again.generate(PROMPT, width=64, height=64, seed=3))
    again.unload()
    assert np.array_equal(before, after)


def test_nf4_without_cuda_falls_back_to_plain_weights_with_a_log_line(tiny_folder, caplog):
    adapter = FluxSchnell(
        AdapterSettings(model=str(tiny_folder), quantization="nf4", device="cpu", cpu_offload=True)
    )
    with caplog.at_level(logging.INFO):
        adapter.load()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "flux_schnell: nf4 needs bitsandbytes on CUDA; loading unquantized on cpu" in messages
    assert any("cpu_offload needs an accelerator; ignored on cpu" in r.getMessage() for r in caplog.records)
    assert adapter.quantized is False and adapter.describe()["quantized_nf4"] is False
    weight = adapter.pipe.transformer.transformer_blocks[0].attn.to_q.weight
    assert weight.dtype == torch.float32 and type(weight) is torch.nn.Parameter  # not a bnb Params4bit
    assert adapter.generate(PROMPT, width=64, height=64, seed=0).image.size == (64, 64)
    adapter.unload()


def test_auto_quantization_is_plain_on_cpu_without_a_warning(tiny_folder, caplog):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU choice")
    adapter = FluxSchnell(AdapterSettings(model=str(tiny_folder)))
    assert adapter.settings.quantization == "auto"  # the default
    with caplog.at_level(logging.INFO):
        adapter.load()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "flux_schnell: quantization auto -> none on cpu" in caplog.text
    assert adapter.quantized is False and adapter.describe()["device"] == "cpu"
    assert adapter.describe()["quantization_used"] == "none"
    assert adapter.pipe.transformer.dtype == torch.float32  # dtype auto is fp32 on CPU
    adapter.unload()


def test_int8wo_is_refused_naming_the_setting(tiny_folder):
    adapter = FluxSchnell(AdapterSettings(model=str(tiny_folder), quantization="int8wo"))
    with pytest.raises(
        AdapterError, match="quantization: flux_schnell takes auto, none, nf4, int8dq, fp8, got 'int8wo'"
    ):
        adapter.load()
    assert not adapter.is_loaded


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"device": "tpu"}, "device: flux_schnell runs on auto, cpu or cuda, got 'tpu'"),
        ({"dtype": "fp8"}, "dtype: flux_schnell takes auto, bf16, fp16 or fp32, got 'fp8'"),
    ],
)
def test_bad_device_or_dtype_is_refused_naming_the_setting(tiny_folder, settings, message):
    adapter = FluxSchnell(AdapterSettings(model=str(tiny_folder), **settings))
    with pytest.raises(AdapterError, match=message):
        adapter.load()
    assert not adapter.is_loaded and adapter.pipe is None


def test_cuda_without_cuda_is_refused_naming_the_setting(tiny_folder):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    adapter = FluxSchnell(AdapterSettings(model=str(tiny_folder), device="cuda"))
    with pytest.raises(AdapterError, match="device: cuda was asked for flux_schnell, but torch sees no CUDA"):
        adapter.load()


def test_missing_folder_is_a_model_load_error_naming_it(tmp_path):
    missing = tmp_path / "no_such_model"
    adapter = FluxSchnell(AdapterSettings(model=str(missing)))
    with pytest.raises(ModelLoadError, match="no_such_model"):
        adapter.load()
    assert not adapter.is_loaded and adapter.pipe is None


def test_folder_without_a_pipeline_is_a_model_load_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="model_index.json"):
        FluxSchnell(AdapterSettings(model=str(tmp_path / "empty"))).load()


def test_constraints_reject_721x480_naming_the_rule():
    constraints = build_adapter("flux_schnell").constraints
    assert constraints.check("flux_schnell", width=720, height=480) == []
    errors = constraints.check("flux_schnell", width=721, height=480)
    assert errors == ["width: flux_schnell needs a multiple of 16, got 721"]


def test_generate_checks_the_size_before_loading(tiny_folder):
    adapter = FluxSchnell(AdapterSettings(model=str(tiny_folder)))
    with pytest.raises(AdapterError, match="multiple of 16, got 721"):
        adapter.generate(PROMPT, width=721, height=480, seed=0)
    assert not adapter.is_loaded


def test_unload_releases_the_pipeline(tiny_folder):
    adapter = FluxSchnell(AdapterSettings(model=str(tiny_folder)))
    adapter.load()
    assert_unload_releases(adapter, "pipe")


# ----- speed settings -----


def _linear_calls(adapter) -> list[int]:
    count = [0]
    for module in adapter.pipe.transformer.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    return count


@pytest.mark.parametrize(
    "cache",
    [
        {"cache": "first_block", "cache_threshold": 0.5},
        {"cache": "pab"},
        {"cache": "taylorseer", "cache_interval": 2},
    ],
    ids=["first_block", "pab", "taylorseer"],
)
def test_a_cached_keyframe_skips_work_and_stays_close(tiny_folder, cache):
    """Over 8 steps (schnell uses 4, where a cache has little to reuse) each hook skips transformer work;
    the image stays within 3 of 255 levels on average of the uncached one."""
    made = []
    for options in ({}, cache):
        adapter = FluxSchnell(AdapterSettings(model=str(tiny_folder), num_inference_steps=8, options=options))
        adapter.load()
        calls = _linear_calls(adapter)
        pixels = _pixels(adapter.generate(PROMPT, width=64, height=64, seed=1)).astype(np.float64)
        made.append((pixels, calls[0], adapter.describe()["cache"]))
        adapter.unload()
    (base, base_calls, _), (cached, calls, described) = made
    assert described == cache["cache"]
    assert calls < base_calls
    assert 0 < np.abs(cached - base).mean() <= 3.0


def test_int8dq_quantizes_the_transformer_only(tiny_folder):
    from torchao.utils import TorchAOBaseTensor

    adapter = FluxSchnell(AdapterSettings(model=str(tiny_folder), quantization="int8dq"))
    result = adapter.generate(PROMPT, width=64, height=64, seed=1)
    weight = adapter.pipe.transformer.transformer_blocks[0].attn.to_q.weight
    assert isinstance(weight, TorchAOBaseTensor)
    assert not any(isinstance(p, TorchAOBaseTensor) for p in adapter.pipe.text_encoder_2.parameters())
    assert adapter.describe()["quantization_used"] == "int8dq"
    assert _pixels(result).std() > 1.0
    adapter.unload()


def test_compile_marks_both_kinds_of_flux_block(tiny_folder, monkeypatch):
    """Dynamo's eager backend here: Inductor's build is exercised on Wan in test_speed.py (about 30 s per
    model on this machine)."""
    from i2v_dagster.models import speed

    monkeypatch.setattr(speed, "COMPILE_OPTIONS", {"backend": "eager"})
    eager = FluxSchnell(AdapterSettings(model=str(tiny_folder)))
    before = _pixels(eager.generate(PROMPT, width=64, height=64, seed=2)).astype(int)
    eager.unload()
    adapter = FluxSchnell(AdapterSettings(model=str(tiny_folder), options={"compile": "on"}))
    adapter.load()
    compiled = sorted(
        type(m).__name__
        for m in adapter.pipe.transformer.modules()
        if getattr(m, "_compiled_call_impl", None) is not None
    )
    assert compiled == ["FluxSingleTransformerBlock", "FluxTransformerBlock"]
    after = _pixels(adapter.generate(PROMPT, width=64, height=64, seed=2)).astype(int)
    assert np.abs(after - before).max() <= 1
    assert adapter.describe()["compile"] is True
    adapter.unload()


def test_speed_settings_refused_on_cpu_name_the_setting(tiny_folder):
    for settings, message in [
        (AdapterSettings(quantization="fp8"), "quantization: fp8 needs a CUDA card"),
        (
            AdapterSettings(options={"attention_backend": "flash"}),
            "attention_backend: flash cannot run for flux",
        ),
    ]:
        adapter = FluxSchnell(replace(settings, model=str(tiny_folder)))
        with pytest.raises(AdapterError, match=message):
            adapter.load()
