"""What an adapter's load() asks diffusers for on a CUDA card of a given size (torch told CUDA is there,
``from_pretrained`` recorded, no weights): the memory planner's placement reaches the pipeline."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("torch")

from i2v_dagster.models._compat import ensure_torch_stack  # noqa: E402

ensure_torch_stack()
pytest.importorskip("diffusers")

from i2v_dagster.errors import AdapterError, ModelLoadError  # noqa: E402
from i2v_dagster.models.base import AdapterSettings  # noqa: E402

pytestmark = pytest.mark.models

FREE_24 = 24 * 2**30 / 1e9 - 0.8
FREE_80 = 80 * 2**30 / 1e9 - 0.8
"""Free memory on idle 24 GB and 80 GB cards (GiB as sold, less the CUDA context)."""


def test_card_sizes_match_the_planner():
    from i2v_dagster.models.memory import free_gb_for_card

    assert (free_gb_for_card(24), free_gb_for_card(80)) == (FREE_24, FREE_80)


@pytest.fixture
def fake_load(monkeypatch):
    from i2v_dagster_tests.models.fake_cuda import load_on_fake_cuda

    def load(name, settings=None, *, free_gb, **kw):
        return load_on_fake_cuda(monkeypatch, name, settings or AdapterSettings(), free_gb=free_gb, **kw)

    return load


def test_auto_on_a_card_where_bf16_fits_loads_bf16_without_quantization(fake_load):
    """Item 3: ``quantization: auto`` used to pick int8 weight-only on every CUDA card."""
    import torch

    load = fake_load("wan22_ti2v_5b", free_gb=FREE_80)
    assert "quantization_config" not in load.kwargs
    assert load.kwargs["dtype"] == {"default": torch.bfloat16, "vae": torch.float32}
    load.pipe.to.assert_called_once()
    load.pipe.enable_model_cpu_offload.assert_not_called()
    assert load.adapter.describe()["quantization_used"] == "none"


def test_auto_on_a_24_gb_card_quantizes_the_transformer_and_text_encoder(fake_load):
    import diffusers
    import transformers
    from torchao.quantization import Int8WeightOnlyConfig

    load = fake_load("wan22_ti2v_5b", free_gb=FREE_24)
    mapping = load.quant_mapping()
    assert set(mapping) == {"transformer", "text_encoder"}
    assert isinstance(mapping["transformer"], diffusers.TorchAoConfig)
    assert isinstance(mapping["text_encoder"], transformers.TorchAoConfig)
    assert all(isinstance(m.quant_type, Int8WeightOnlyConfig) for m in mapping.values())
    assert load.adapter.describe()["text_encoder_quantization"] == "int8wo"


def test_flux_auto_is_bf16_on_an_80_gb_card_and_nf4_on_a_24_gb_card(fake_load):
    assert "quantization_config" not in fake_load("flux_schnell", free_gb=FREE_80).kwargs
    mapping = fake_load("flux_schnell", free_gb=FREE_24).quant_mapping()
    assert set(mapping) == {"transformer", "text_encoder_2"}
    assert {m.bnb_4bit_quant_type for m in mapping.values()} == {"nf4"}


def test_the_plan_is_logged_before_any_weights_load(fake_load, caplog):
    with caplog.at_level(logging.INFO):
        fake_load("wan22_ti2v_5b", AdapterSettings(device="cuda"), free_gb=FREE_80)
    messages = [r.getMessage() for r in caplog.records]
    planned = next(i for i, m in enumerate(messages) if "memory plan for 1280x704x121" in m)
    loaded = next(i for i, m in enumerate(messages) if "wan22_ti2v_5b: loaded" in m)
    assert planned < loaded
    assert (
        "clips: wan22_ti2v_5b: bf16, no quantization, all on GPU, VAE tiling; est. peak 31.0 GB"
        in (messages[planned])
    )


def test_offload_placements_reach_the_pipeline(fake_load):
    load = fake_load("hunyuan_i2v", free_gb=FREE_24)
    load.pipe.enable_sequential_cpu_offload.assert_called_once()
    load.pipe.to.assert_not_called()
    wan = fake_load("wan22_ti2v_5b", AdapterSettings(cpu_offload=True), free_gb=FREE_24)
    wan.pipe.enable_model_cpu_offload.assert_called_once()


def test_a_stage_that_cannot_fit_is_refused_before_any_weights_load(fake_load):
    load = fake_load("hunyuan_i2v", free_gb=8.0, load=False)
    with pytest.raises(
        ModelLoadError, match=r"hunyuan_i2v cannot fit this GPU: .*fix: needs a card with >= "
    ):
        load.adapter.load()
    assert load.calls == []


def test_plan_size_option_sets_the_planned_size_and_is_checked(fake_load):
    load = fake_load("hunyuan_i2v", AdapterSettings(options={"plan_size": [1280, 720, 33]}), free_gb=FREE_80)
    from i2v_dagster.models.memory import plan_stage

    short = plan_stage("hunyuan_i2v", AdapterSettings(), width=1280, height=720, frames=33, free_gb=FREE_80)
    full = plan_stage("hunyuan_i2v", AdapterSettings(), width=1280, height=720, frames=129, free_gb=FREE_80)
    assert load.adapter.plan.peak_gb == pytest.approx(short.peak_gb)
    assert short.peak_gb < full.peak_gb
    bad = fake_load(
        "hunyuan_i2v", AdapterSettings(options={"plan_size": [1280]}), free_gb=FREE_80, load=False
    )
    with pytest.raises(
        AdapterError, match=r"options.plan_size: hunyuan_i2v: List should have at least 2 items"
    ):
        bad.adapter.load()
