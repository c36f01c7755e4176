"""The speed settings (compile, cache, attention backend, int8dq/fp8) of the diffusers adapters.

Three layers: :func:`~i2v_dagster.models.speed.plan_speed` on described cards (what ``auto`` picks, what is
refused and why); ``load()`` on a fake CUDA card (the torchao configs the adapters ask diffusers for, the
refusals before any weights load); and the tiny real pipelines on CPU (each cache skips work and keeps the
frames within a stated distance of the uncached clip, compiled blocks make the same frames, int8dq runs).
Tests that need CUDA run only where torch sees a card and say so when skipped.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from i2v_dagster.models._compat import ensure_torch_stack  # noqa: E402

ensure_torch_stack()
pytest.importorskip("diffusers")
pytest.importorskip("torchao")

from i2v_dagster.errors import AdapterError  # noqa: E402
from i2v_dagster.models import speed  # noqa: E402
from i2v_dagster.models.base import AdapterSettings, ClipRequest  # noqa: E402
from i2v_dagster.models.registry import build_adapter, get_adapter_info  # noqa: E402
from i2v_dagster.models.speed import Card, check_quantization, plan_speed  # noqa: E402
from i2v_dagster_tests.models.contract import assert_unload_releases  # noqa: E402
from i2v_dagster_tests.models.tiny_video import TINY_SIZES, saved_pipelines  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("one_torch_thread")]

VIDEO = ("cogvideox_5b_i2v", "cogvideox15_5b_i2v", "wan22_ti2v_5b", "hunyuan_i2v")
CPU = Card("cpu")
H100 = Card("cuda", "NVIDIA H100", (9, 0))
L40 = Card("cuda", "NVIDIA L40S", (8, 9))
A100 = Card("cuda", "NVIDIA A100", (8, 0))
T4 = Card("cuda", "Tesla T4", (7, 5))
HAS_CUDA = torch.cuda.is_available()
NO_CUDA = "needs a CUDA card (torch sees none here)"

CACHE_STEPS = 8
MAX_MEAN_LEVELS = 3.0
"""A cached clip's frames differ from the uncached clip's by at most 3 of 255 levels on average ..."""
MAX_SEED_FRACTION = 0.25
"""... and by less than a quarter of what another seed changes (the tiny models' seeds differ by 6-63)."""


def _options(name: str, **options):
    return get_adapter_info(name).cls.Options.model_validate(options)


def _plan(name="wan22_ti2v_5b", card=CPU, dtype="fp32", **options) -> speed.SpeedPlan:
    cls = get_adapter_info(name).cls
    return plan_speed(
        name, _options(name, **options), card=card, dtype=dtype, attention_masked=cls.attention_masked,
        fixed_attention=cls.Options.fixed_attention,
    )  # fmt: skip


@pytest.fixture
def triton(monkeypatch):
    monkeypatch.setattr(speed, "triton_available", lambda: True)


@pytest.fixture
def installed(monkeypatch):
    """Every attention kernel package counts as installed."""
    monkeypatch.setattr(speed, "backend_problem", lambda name: None)


# ----- what auto picks, what is refused -----


@pytest.mark.parametrize("name", [*VIDEO, "flux_schnell"])
def test_auto_on_cpu_is_eager_uncached_native_and_says_why(name):
    plan = _plan(name)
    assert (plan.compile, plan.cache, plan.attention, plan.attention_backend) == (
        False,
        "none",
        "native",
        None,
    )
    notes = "\n".join(plan.notes)
    assert f"{name}: compile auto -> off on cpu" in notes
    assert f"{name}: cache auto -> none (no cache threshold has been measured" in notes
    assert f"{name}: attention_backend auto -> native (" in notes


def test_auto_on_a_hopper_card_compiles_and_picks_flash3_where_installed(triton, installed):
    plan = _plan(card=H100, dtype="bf16")
    assert (plan.compile, plan.cache, plan.attention, plan.attention_backend) == (
        True,
        "none",
        "flash3",
        "_flash_3",
    )
    assert (
        "wan22_ti2v_5b: attention_backend auto -> flash3 on NVIDIA H100 (compute capability 9.0)"
        in plan.notes
    )
    hunyuan = _plan("hunyuan_i2v", card=H100, dtype="bf16")
    assert hunyuan.attention_backend == "_flash_varlen_3"  # its text padding mask needs the varlen kernel
    cog = _plan("cogvideox_5b_i2v", card=H100, dtype="bf16")
    assert cog.attention == "native" and "only" not in cog.text()


def test_auto_attention_is_native_when_flash3_is_missing_or_the_card_is_not_hopper(triton, monkeypatch):
    missing = _plan(card=H100, dtype="bf16")  # the real probe: FlashAttention-3 is not installed here
    assert missing.attention == "native"
    assert any(
        "attention_backend auto -> native (flash3: not installed (FlashAttention-3)" in n
        for n in missing.notes
    )
    monkeypatch.setattr(speed, "backend_problem", lambda name: None)
    for card in (L40, A100):
        plan = _plan(card=card, dtype="bf16")
        assert plan.attention == "native"
        assert any("flash3: needs compute capability 9.0 (Hopper) only" in n for n in plan.notes)
    assert _plan(card=H100, dtype="fp32").attention == "native"  # kernels take bf16/fp16 only


def test_auto_compile_falls_back_without_triton_or_with_sequential_offload(monkeypatch):
    monkeypatch.setattr(speed, "triton_available", lambda: False)
    plan = _plan(card=H100, dtype="bf16")
    assert not plan.compile
    assert "wan22_ti2v_5b: compile auto -> off: triton is not importable" in plan.notes[0]
    with pytest.raises(
        AdapterError, match="^compile: on cannot run for wan22_ti2v_5b: triton is not importable"
    ):
        _plan(card=H100, dtype="bf16", compile="on")
    monkeypatch.setattr(speed, "triton_available", lambda: True)
    options = _options("wan22_ti2v_5b")
    streamed = plan_speed("wan22_ti2v_5b", options, card=H100, dtype="bf16", offload="sequential")
    assert not streamed.compile and "sequential CPU offload" in streamed.notes[0]
    with pytest.raises(
        AdapterError, match="^compile: on cannot run for wan22_ti2v_5b: sequential CPU offload"
    ):
        plan_speed(
            "wan22_ti2v_5b",
            replace_options(options, compile="on"),
            card=H100,
            dtype="bf16",
            offload="sequential",
        )
    assert plan_speed("wan22_ti2v_5b", options, card=H100, dtype="bf16", offload="model").compile
    nf4 = plan_speed("flux_schnell", _options("flux_schnell"), card=H100, dtype="bf16", quantization="nf4")
    assert not nf4.compile and "flux_schnell: compile auto -> off: bitsandbytes' nf4 layers" in nf4.notes[0]
    asked = replace_options(_options("flux_schnell"), compile="on")
    assert plan_speed("flux_schnell", asked, card=H100, dtype="bf16", quantization="nf4").compile


def replace_options(options, **changes):
    return options.model_copy(update=changes)


def test_compile_on_cpu_needs_a_cpp_compiler(monkeypatch):
    assert _plan(compile="on").compile
    monkeypatch.setattr(speed, "cpp_compiler", lambda: None)
    with pytest.raises(AdapterError, match=r"^compile: on needs a C\+\+ compiler for torch.compile on cpu"):
        _plan(compile="on")


@pytest.mark.parametrize(
    ("backend", "card", "dtype", "message"),
    [
        (
            "flash",
            CPU,
            "fp32",
            "attention_backend: flash cannot run for wan22_ti2v_5b: runs on CUDA only, not cpu",
        ),
        (
            "flash3",
            A100,
            "bf16",
            "needs compute capability 9.0 (Hopper) only; NVIDIA A100 (compute capability 8.0)",
        ),
        ("sage", T4, "fp16", "needs compute capability 8.0+; Tesla T4 (compute capability 7.5)"),
        ("flash", H100, "fp32", "takes bf16 or fp16 only, the weights here are fp32"),
        (
            "flash",
            H100,
            "bf16",
            "not installed (flash-attn>=2.6.3): Flash Attention backend 'flash' is not usable",
        ),
        (
            "sage",
            H100,
            "bf16",
            "not installed (sageattention>=2.1.1): Sage Attention backend 'sage' is not usable",
        ),
        (
            "flash3",
            H100,
            "bf16",
            "not installed (FlashAttention-3): Flash Attention 3 backend '_flash_3' is not",
        ),
    ],
)
def test_an_attention_backend_that_cannot_run_is_refused_naming_the_setting(backend, card, dtype, message):
    with pytest.raises(AdapterError, match=r"^attention_backend: " + backend) as caught:
        _plan(card=card, dtype=dtype, attention_backend=backend)
    assert message in str(caught.value)


def test_an_installed_backend_asked_for_is_used(installed):
    for backend, dense, masked in [("flash", "flash", "flash_varlen"), ("sage", "sage", "sage_varlen")]:
        assert _plan(card=H100, dtype="bf16", attention_backend=backend).attention_backend == dense
        assert (
            _plan("hunyuan_i2v", card=H100, dtype="bf16", attention_backend=backend).attention_backend
            == masked
        )


def test_cache_settings_and_their_defaults():
    assert _plan(cache="first_block").describe()["cache_threshold"] == speed.FIRST_BLOCK_THRESHOLD
    assert _plan(cache="first_block", cache_threshold=0.2).cache_threshold == 0.2
    assert _plan(cache="pab").cache_interval == speed.PAB_INTERVAL
    assert _plan(cache="taylorseer").cache_interval == speed.TAYLORSEER_INTERVAL
    assert _plan(cache="taylorseer", cache_interval=3).describe() == {
        "compile": False, "cache": "taylorseer", "attention_backend": "native", "cache_interval": 3,
    }  # fmt: skip
    assert not any("cache auto" in n for n in _plan(cache="none").notes)


def test_fp8_needs_compute_capability_8_9():
    with pytest.raises(
        AdapterError, match=r"^quantization: fp8 needs a CUDA card with compute capability 8.9\+"
    ):
        check_quantization("wan22_ti2v_5b", "fp8", CPU)
    with pytest.raises(
        AdapterError,
        match=r"^quantization: fp8 needs compute capability 8.9\+ \(Ada, Hopper\); NVIDIA A100 \(compute",
    ):
        check_quantization("wan22_ti2v_5b", "fp8", A100)
    for card in (L40, H100):
        check_quantization("wan22_ti2v_5b", "fp8", card)
    for quantization in ("int8dq", "int8wo", "none", "auto"):
        check_quantization("wan22_ti2v_5b", quantization, A100)


def test_dynamic_quantization_without_compile_is_called_slow(triton):
    options = _options("wan22_ti2v_5b", compile="off")
    plan = plan_speed("wan22_ti2v_5b", options, card=H100, dtype="bf16", quantization="int8dq")
    assert "quantization int8dq without compile" in plan.notes[-1]
    compiled = plan_speed(
        "wan22_ti2v_5b", _options("wan22_ti2v_5b"), card=H100, dtype="bf16", quantization="fp8"
    )
    assert not any("without compile" in n for n in compiled.notes)


# ----- load() on a fake CUDA card: what diffusers is asked for -----


@pytest.fixture
def fake_load(monkeypatch):
    from i2v_dagster_tests.models.fake_cuda import load_on_fake_cuda

    def load(name, settings=None, **kw):
        return load_on_fake_cuda(monkeypatch, name, settings or AdapterSettings(), free_gb=140.0, **kw)

    return load


@pytest.mark.parametrize("name", [*VIDEO, "flux_schnell"])
def test_fp8_and_int8dq_ask_torchao_for_the_transformer(fake_load, name):
    import diffusers
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Int8DynamicActivationInt8WeightConfig,
        PerRow,
    )

    fp8 = fake_load(name, AdapterSettings(quantization="fp8"))
    mapping = fp8.quant_mapping()
    assert set(mapping) == {"transformer"} and isinstance(mapping["transformer"], diffusers.TorchAoConfig)
    config = mapping["transformer"].quant_type
    assert isinstance(config, Float8DynamicActivationFloat8WeightConfig)
    assert config.granularity == [PerRow(), PerRow()] or config.granularity == PerRow()
    assert fp8.adapter.describe()["quantization_used"] == "fp8"
    int8dq = fake_load(name, AdapterSettings(quantization="int8dq")).quant_mapping()
    assert isinstance(int8dq["transformer"].quant_type, Int8DynamicActivationInt8WeightConfig)


def test_fp8_on_a_card_without_it_is_refused_before_any_weights_load(fake_load):
    load = fake_load("wan22_ti2v_5b", AdapterSettings(quantization="fp8"), load=False, capability=(8, 0))
    with pytest.raises(
        AdapterError,
        match=r"quantization: fp8 needs compute capability 8.9\+ .*Fake CUDA card \(compute capability 8.0\)",
    ):
        load.adapter.load()
    assert load.calls == []


def test_an_explicit_backend_the_card_lacks_is_refused_before_any_weights_load(fake_load):
    load = fake_load("wan22_ti2v_5b", AdapterSettings(options={"attention_backend": "flash3"}), load=False)
    with pytest.raises(
        AdapterError, match="attention_backend: flash3 cannot run for wan22_ti2v_5b: not installed"
    ):
        load.adapter.load()
    assert load.calls == []


def test_the_speed_choices_are_logged_and_described(fake_load, caplog):
    with caplog.at_level(logging.INFO):
        load = fake_load("wan22_ti2v_5b")
    assert "wan22_ti2v_5b: compile auto -> off: triton is not importable" in caplog.text
    assert "wan22_ti2v_5b: speed: compile off, cache none, attention native" in caplog.text
    described = load.adapter.describe()
    assert (described["compile"], described["cache"], described["attention_backend"]) == (
        False,
        "none",
        "native",
    )


# ----- the tiny real pipelines on CPU -----


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return saved_pipelines(tmp_path_factory)


def _request(name: str, seed: int = 1) -> ClipRequest:
    from PIL import Image

    width, height = TINY_SIZES[name]
    pixels = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return ClipRequest(
        image=Image.fromarray(pixels), prompt="a red cat walks slowly", num_frames=7, width=width,
        height=height, fps=24, seed=seed,
    )  # fmt: skip


class LinearCalls:
    """Counts the transformer's ``nn.Linear`` calls (a skipped block or attention makes none)."""

    def __init__(self, transformer) -> None:
        self.count = 0
        self._hooks = [
            m.register_forward_hook(self._seen)
            for m in transformer.modules()
            if isinstance(m, torch.nn.Linear)
        ]

    def _seen(self, *_args) -> None:
        self.count += 1

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()


def _clip(folder: str, name: str, *, seed: int = 1, steps: int = CACHE_STEPS, **settings):
    adapter = build_adapter(name, AdapterSettings(model=folder, num_inference_steps=steps, **settings))
    adapter.load()
    calls = LinearCalls(adapter.pipe.transformer)
    try:
        frames = adapter.generate(_request(name, seed)).frames.astype(np.float64)
        return frames, calls.count, adapter.describe()
    finally:
        calls.remove()
        adapter.unload()


@pytest.fixture(scope="module")
def uncached(tiny_folder):
    made: dict = {}

    def get(name: str):
        if name not in made:
            frames, calls, _ = _clip(tiny_folder(name), name)
            other, _, _ = _clip(tiny_folder(name), name, seed=2)
            made[name] = (frames, calls, float(np.abs(other - frames).mean()))
        return made[name]

    return get


@pytest.mark.parametrize(
    "cache",
    [
        {"cache": "first_block", "cache_threshold": 0.2},
        {"cache": "pab"},
        {"cache": "taylorseer", "cache_interval": 2},
    ],
    ids=["first_block", "pab", "taylorseer"],
)
@pytest.mark.parametrize("name", VIDEO)
def test_a_cached_clip_skips_work_and_stays_close_to_the_uncached_clip(name, cache, tiny_folder, uncached):
    """Each cache hook does less transformer work, and its frames stay within the stated distance of the
    uncached clip's (:data:`MAX_MEAN_LEVELS`, :data:`MAX_SEED_FRACTION`)."""
    base, base_calls, other_seed = uncached(name)
    frames, calls, described = _clip(tiny_folder(name), name, options=cache)
    assert described["cache"] == cache["cache"]
    assert calls < base_calls, (
        f"{cache['cache']} skipped nothing ({calls} linear calls, {base_calls} uncached)"
    )
    distance = float(np.abs(frames - base).mean())
    assert 0 < distance <= MAX_MEAN_LEVELS
    assert distance < MAX_SEED_FRACTION * other_seed, (distance, other_seed)


def test_taylorseer_computes_in_full_the_steps_the_benchmark_counts(tiny_folder):
    """:func:`speed.taylorseer_full_steps` (the benchmark's count of full steps) is the hook's own rule."""
    name = "cogvideox_5b_i2v"
    adapter = build_adapter(
        name,
        AdapterSettings(
            model=tiny_folder(name),
            num_inference_steps=10,
            options={"cache": "taylorseer", "cache_interval": 3},
        ),
    )
    adapter.load()
    calls = LinearCalls(adapter.pipe.transformer)
    per_step: list[int] = []
    request = replace(_request(name), on_step=lambda p: per_step.append(calls.count - sum(per_step)))
    adapter.generate(request)
    calls.remove()
    adapter.unload()
    full = max(per_step)
    assert [n == full for n in per_step] == speed.taylorseer_full_steps(10, 3)
    assert min(per_step) < full


def test_first_block_below_its_threshold_changes_nothing(tiny_folder, uncached):
    base, base_calls, _ = uncached("cogvideox_5b_i2v")
    frames, calls, _ = _clip(
        tiny_folder("cogvideox_5b_i2v"),
        "cogvideox_5b_i2v",
        options={"cache": "first_block", "cache_threshold": 1e-6},
    )
    assert calls == base_calls
    np.testing.assert_array_equal(frames, base)


def test_first_block_needs_two_blocks(tiny_folder, monkeypatch):
    adapter = build_adapter(
        "wan22_ti2v_5b", AdapterSettings(model=tiny_folder("wan22_ti2v_5b"), options={"cache": "first_block"})
    )
    monkeypatch.setattr(speed, "transformer_blocks", lambda transformer: 1)
    with pytest.raises(AdapterError, match="cache: first_block needs at least two transformer blocks"):
        adapter.load()


def test_a_cache_is_reset_between_clips(tiny_folder):
    """The hooks' state (the last step's residuals) must not leak into the next clip."""
    folder = tiny_folder("wan22_ti2v_5b")
    adapter = build_adapter(
        "wan22_ti2v_5b",
        AdapterSettings(
            model=folder, num_inference_steps=4, options={"cache": "first_block", "cache_threshold": 0.2}
        ),
    )
    first = adapter.generate(_request("wan22_ti2v_5b")).frames
    adapter.generate(_request("wan22_ti2v_5b", seed=5))
    again = adapter.generate(_request("wan22_ti2v_5b")).frames
    np.testing.assert_array_equal(first, again)
    adapter.unload()


@pytest.mark.parametrize("name", VIDEO)
def test_int8dq_quantizes_the_transformer_on_cpu(name, tiny_folder):
    from torchao.utils import TorchAOBaseTensor

    settings = AdapterSettings(model=tiny_folder(name), quantization="int8dq", num_inference_steps=2)
    adapter = build_adapter(name, settings)
    adapter.load()
    linears = [m.weight for m in adapter.pipe.transformer.modules() if isinstance(m, torch.nn.Linear)]
    assert sum(isinstance(w, TorchAOBaseTensor) for w in linears) >= len(linears) // 2
    assert not any(isinstance(p, TorchAOBaseTensor) for p in adapter.pipe.text_encoder.parameters())
    assert adapter.describe()["quantization_used"] == "int8dq"
    clip = adapter.generate(_request(name))
    assert clip.frames.shape == (7, *TINY_SIZES[name][::-1], 3) and clip.frames.std() > 0
    adapter.unload()


def test_fp8_on_cpu_is_refused_naming_the_setting(tiny_folder):
    adapter = build_adapter(
        "wan22_ti2v_5b", AdapterSettings(model=tiny_folder("wan22_ti2v_5b"), quantization="fp8")
    )
    with pytest.raises(
        AdapterError, match=r"^quantization: fp8 needs a CUDA card .* wan22_ti2v_5b runs on cpu here"
    ):
        adapter.load()
    assert adapter.pipe is None


def test_native_attention_runs_and_a_cuda_backend_is_refused_on_cpu(tiny_folder, uncached):
    base, _, _ = uncached("hunyuan_i2v")
    frames, _, described = _clip(
        tiny_folder("hunyuan_i2v"), "hunyuan_i2v", options={"attention_backend": "native"}
    )
    assert described["attention_backend"] == "native"
    np.testing.assert_array_equal(frames, base)
    adapter = build_adapter(
        "wan22_ti2v_5b",
        AdapterSettings(model=tiny_folder("wan22_ti2v_5b"), options={"attention_backend": "sage"}),
    )
    with pytest.raises(
        AdapterError, match="^attention_backend: sage cannot run for wan22_ti2v_5b: runs on CUDA only"
    ):
        adapter.load()


def test_the_attention_backend_is_scoped_to_the_call(tiny_folder, monkeypatch):
    """The backend a plan names is active inside the pipeline call only (no other model inherits it)."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    adapter = build_adapter(
        "wan22_ti2v_5b", AdapterSettings(model=tiny_folder("wan22_ti2v_5b"), num_inference_steps=1)
    )
    adapter.load()
    adapter.speed = replace(adapter.speed, attention="native", attention_backend="_native_math")
    seen = []
    processor = adapter.pipe.transformer.blocks[0].attn1.processor
    call = type(processor).__call__

    def spy(self, *args, **kwargs):
        seen.append(_AttentionBackendRegistry.get_active_backend()[0].value)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(type(processor), "__call__", spy)
    before = _AttentionBackendRegistry.get_active_backend()[0]
    adapter.generate(_request("wan22_ti2v_5b"))
    assert seen and set(seen) == {"_native_math"}
    assert _AttentionBackendRegistry.get_active_backend()[0] == before
    adapter.unload()


# ----- compile on CPU -----


BLOCKS = {
    "cogvideox_5b_i2v": ("CogVideoXBlock", 2),
    "cogvideox15_5b_i2v": ("CogVideoXBlock", 2),
    "wan22_ti2v_5b": ("WanTransformerBlock", 2),
    "hunyuan_i2v": ("HunyuanVideoTokenReplace", 2),
}


def _compiled_blocks(adapter) -> list[str]:
    return [
        type(m).__name__
        for m in adapter.pipe.transformer.modules()
        if getattr(m, "_compiled_call_impl", None) is not None
    ]


def test_compile_on_cpu_builds_the_blocks_with_inductor_and_keeps_the_frames(tiny_folder, caplog):
    """The real path: Inductor builds the blocks with the machine's C++ compiler (about 30 s here on the
    first run, seconds once Inductor's cache holds it). Later clips reuse the build."""
    folder = tiny_folder("wan22_ti2v_5b")
    eager, _, _ = _clip(folder, "wan22_ti2v_5b", steps=2)
    adapter = build_adapter(
        "wan22_ti2v_5b", AdapterSettings(model=folder, num_inference_steps=2, options={"compile": "on"})
    )
    with caplog.at_level(logging.INFO):
        adapter.load()
        assert _compiled_blocks(adapter) == ["WanTransformerBlock"] * 2
        first = adapter.generate(_request("wan22_ti2v_5b")).frames.astype(np.float64)
        second = adapter.generate(_request("wan22_ti2v_5b")).frames.astype(np.float64)
    assert "wan22_ti2v_5b: compile on: 2 transformer blocks marked" in caplog.text
    assert "wan22_ti2v_5b: first call with compiled blocks took" in caplog.text
    assert caplog.text.count("first call with compiled blocks") == 1
    assert adapter.describe()["compile"] is True
    assert np.abs(first - eager).max() <= 1 and np.abs(second - first).max() == 0
    assert_unload_releases(adapter, "pipe")


@pytest.mark.parametrize("name", ["cogvideox_5b_i2v", "cogvideox15_5b_i2v", "hunyuan_i2v"])
def test_compile_finds_each_models_repeated_blocks(name, tiny_folder, monkeypatch):
    """Dynamo traces every adapter's blocks (with a cache hook on Hunyuan's). The other models use dynamo's
    eager backend here: an Inductor build costs about 30 s per model on this 2-core machine, and the Wan
    test above runs Inductor itself."""
    monkeypatch.setattr(speed, "COMPILE_OPTIONS", {"backend": "eager"})
    folder = tiny_folder(name)
    options = {
        "compile": "on",
        **({"cache": "first_block", "cache_threshold": 0.2} if name == "hunyuan_i2v" else {}),
    }
    eager, _, _ = _clip(folder, name, steps=3, options={k: v for k, v in options.items() if k != "compile"})
    adapter = build_adapter(name, AdapterSettings(model=folder, num_inference_steps=3, options=options))
    adapter.load()
    prefix, count = BLOCKS[name]
    compiled = _compiled_blocks(adapter)
    assert len(compiled) == count and all(n.startswith(prefix) for n in compiled), compiled
    frames = adapter.generate(_request(name)).frames.astype(np.float64)
    assert np.abs(frames - eager).max() <= 1
    adapter.unload()


# ----- on a CUDA card (skipped without one) -----


@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("name", VIDEO)
def test_auto_on_cuda_runs_the_tiny_pipelines(name, tiny_folder):
    frames, _, described = _clip(tiny_folder(name), name, steps=2, device="cuda", dtype="bf16")
    assert described["compile"] == speed.triton_available()
    assert frames.std() > 0


@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
def test_fp8_on_cuda_quantizes_what_float8_can_hold(tiny_folder):
    """Tiny CogVideoX 1.5: its layers are the tiny ones with both sides a multiple of 16."""
    card = speed.card_of(torch.device("cuda"))
    if card.capability < speed.FP8_CAPABILITY:
        pytest.skip(f"fp8 needs compute capability 8.9+; {card.text}")
    adapter = build_adapter(
        "cogvideox15_5b_i2v",
        AdapterSettings(
            model=tiny_folder("cogvideox15_5b_i2v"), quantization="fp8", num_inference_steps=2, dtype="bf16"
        ),
    )
    adapter.load()
    transformer = adapter.pipe.transformer
    keep = transformer._keep_in_fp32_modules or []
    holdable = [
        m.weight
        for n, m in transformer.named_modules()
        if isinstance(m, torch.nn.Linear)
        and m.in_features % 16 == 0
        and m.out_features % 16 == 0
        and not any(f"{k}." in f"{n}." for k in keep)
    ]  # float8 needs both dimensions a multiple of 16; diffusers leaves _keep_in_fp32_modules alone
    assert holdable and all(type(w).__name__ == "Float8Tensor" for w in holdable)
    assert adapter.generate(_request("cogvideox15_5b_i2v")).frames.std() > 0
    adapter.unload()


@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("backend", sorted(speed.BACKENDS))
def test_each_installed_attention_backend_runs_on_cuda(backend, tiny_folder):
    name = "wan22_ti2v_5b"
    options = {"attention_backend": backend}
    try:
        _plan(name, card=speed.card_of(torch.device("cuda")), dtype="bf16", **options)
    except AdapterError as exc:
        pytest.skip(str(exc))
    frames, _, described = _clip(
        tiny_folder(name), name, steps=2, device="cuda", dtype="bf16", options=options
    )
    assert described["attention_backend"] == backend and frames.std() > 0


def test_the_speed_benchmark_runs_without_dagster(tmp_path):
    """``benchmarks/bench_speed.py`` on the tiny Wan (eager row), in a process where Dagster cannot be
    imported: the GPU machine it is written for has none."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    script = repo / "benchmarks" / "bench_speed.py"
    code = (
        "import runpy, sys; sys.modules['dagster'] = None; "
        f"sys.argv = [{str(script)!r}, '--device', 'cpu', '--tiny', '--models', 'wan22_ti2v_5b', "
        f"'--rows', 'eager', '--steps', '1', '--results', {str(tmp_path / 'RESULTS.md')!r}]; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    written = (tmp_path / "RESULTS.md").read_text()
    assert "| wan22_ti2v_5b | eager | native |" in written and "1.00x" in written
    assert (
        "`auto` on cpu for wan22_ti2v_5b: fp32 on cpu; compile off, cache none, attention native" in written
    )
