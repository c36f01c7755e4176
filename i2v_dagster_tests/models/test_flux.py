"""FluxSchnell on a tiny random FLUX.1-schnell-shaped pipeline saved to a folder and loaded offline."""

from __future__ import annotations

import logging

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
    with pytest.raises(AdapterError, match="quantization: flux_schnell takes auto, none, nf4, got 'int8wo'"):
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
