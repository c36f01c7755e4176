"""The four diffusers video adapters on tiny random pipelines saved to disk and loaded back offline."""

from __future__ import annotations

import fnmatch
import logging
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from i2v_dagster.errors import AdapterError, ClipTimeoutError, ModelLoadError  # noqa: E402
from i2v_dagster.guardrails import Deadline  # noqa: E402
from i2v_dagster.models.base import AdapterSettings, ClipRequest  # noqa: E402
from i2v_dagster.models.registry import build_adapter, get_adapter_info  # noqa: E402
from i2v_dagster.models.video_diffusers import to_uint8_frames  # noqa: E402
from i2v_dagster_tests.models.contract import assert_unload_releases  # noqa: E402
from i2v_dagster_tests.models.tiny_video import (  # noqa: E402
    TINY_SIZES,
    build_tiny_pipeline,
    saved_pipelines,
)

pytestmark = pytest.mark.models

ADAPTERS = ("cogvideox_5b_i2v", "cogvideox15_5b_i2v", "wan22_ti2v_5b", "hunyuan_i2v")
STEPS = 2
WANTED = 7
WAN_NEGATIVE = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
    "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still "
    "picture, messy background, three legs, many people in the background, walking backwards"
)
"""The negative prompt of every Wan example in diffusers (``pipeline_wan_i2v.py``)."""
GENERATED = {"cogvideox_5b_i2v": 49, "cogvideox15_5b_i2v": 81, "wan22_ti2v_5b": 9, "hunyuan_i2v": 9}
"""Frames each model makes for WANTED: its native count (CogVideoX) or the next 4N+1."""


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return saved_pipelines(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(tiny_folder):
    adapters: dict = {}

    def get(name: str):
        if name not in adapters:
            settings = AdapterSettings(model=tiny_folder(name), num_inference_steps=STEPS)
            adapters[name] = build_adapter(name, settings)
            adapters[name].load()
        return adapters[name]

    yield get
    for adapter in adapters.values():
        adapter.unload()


def _request(name: str, *, seed: int = 1, image_size: tuple[int, int] | None = None, **kw) -> ClipRequest:
    from PIL import Image

    width, height = TINY_SIZES[name]
    w, h = image_size or (width, height)
    pixels = np.random.default_rng(0).integers(0, 256, size=(h, w, 3), dtype=np.uint8)  # same for every seed
    fields = {"prompt": "a red cat walks slowly", "num_frames": WANTED, "fps": 24, "seed": seed, **kw}
    return ClipRequest(image=Image.fromarray(pixels), width=width, height=height, **fields)


def _reference_request(name: str, *, seed: int = 1, **kw) -> ClipRequest:
    """A conditioning image of another size (the adapter resizes it to width x height)."""
    width, height = TINY_SIZES[name]
    return _request(name, seed=seed, image_size=(width * 2, height + 16), **kw)


@pytest.fixture(scope="module")
def reference(loaded):
    """The first clip of each adapter and the progress it reported (CogVideoX decodes cost seconds here)."""
    made: dict = {}

    def get(name: str):
        if name not in made:
            steps: list = []
            made[name] = (loaded(name).generate(_reference_request(name, on_step=steps.append)), steps)
        return made[name]

    return get


@pytest.mark.parametrize("name", ADAPTERS)
def test_generate_shape_frames_and_progress(name, loaded, reference):
    clip, steps = reference(name)
    width, height = TINY_SIZES[name]
    assert clip.frames.dtype == np.uint8
    assert clip.frames.shape == (WANTED, height, width, 3)
    assert clip.generated_frames == GENERATED[name]
    assert clip.nan_frames == ()
    assert (clip.fps, clip.seed, clip.model_id) == (24, 1, loaded(name).settings.model)
    assert [p.step for p in steps] == list(range(1, STEPS + 1))
    assert {p.total for p in steps} == {STEPS}
    assert all(p.seconds >= 0 for p in steps)
    assert clip.frames.std() > 0  # a real decode, not a constant fill


@pytest.mark.parametrize("name", ADAPTERS)
def test_same_seed_same_frames_other_seed_other_frames(name, loaded, reference):
    adapter = loaded(name)
    again = adapter.generate(_reference_request(name)).frames
    other = adapter.generate(_reference_request(name, seed=2)).frames
    np.testing.assert_array_equal(reference(name)[0].frames, again)
    assert not np.array_equal(again, other)


@pytest.mark.parametrize("name", ADAPTERS)
def test_saved_and_loaded_pipeline_matches_in_memory(name, loaded, reference):
    """save_pretrained -> from_pretrained (offline) gives the frames of the pipeline it was saved from."""
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    in_memory = type(loaded(name)).from_pipeline(build_tiny_pipeline(name), loaded(name).settings)
    mine = in_memory.generate(_reference_request(name)).frames.astype(np.int16)
    from_disk = reference(name)[0].frames.astype(np.int16)
    # equal up to float rounding: at most 1/255 on at most 0.1% of the values
    assert np.abs(mine - from_disk).max() <= 1
    assert np.mean(mine != from_disk) < 1e-3
    in_memory.unload()


@pytest.mark.parametrize("name", ADAPTERS)
def test_expired_deadline_stops_at_the_first_step(name, loaded):
    steps = []
    request = _request(name, deadline=Deadline(limit_s=0.0, label="clip 000"), on_step=steps.append)
    with pytest.raises(ClipTimeoutError, match="clip 000 ran over its time limit"):
        loaded(name).generate(request)
    assert [p.step for p in steps] == [1]


@pytest.mark.parametrize("name", ADAPTERS)
def test_unload_releases_the_pipeline(name, tiny_folder):
    adapter = build_adapter(name, AdapterSettings(model=tiny_folder(name)))
    adapter.load()
    assert adapter.describe()["pipeline"] == get_adapter_info(name).cls.pipeline_class
    assert_unload_releases(adapter, "pipe")


@pytest.mark.parametrize("name", ADAPTERS)
def test_missing_folder_raises_model_load_error(name, tmp_path):
    missing = tmp_path / "no-such-model"
    adapter = build_adapter(name, AdapterSettings(model=str(missing)))
    with pytest.raises(ModelLoadError, match=str(missing)):
        adapter.load()
    assert not adapter.is_loaded


def test_hub_id_not_in_cache_while_offline_raises_model_load_error():
    adapter = build_adapter("wan22_ti2v_5b", AdapterSettings(model="acme/not-cached-video"))
    with pytest.raises(ModelLoadError, match=r"acme/not-cached-video.*HF_HUB_OFFLINE"):
        adapter.load()


def test_a_folder_of_another_pipeline_is_a_model_load_error(tiny_folder):
    adapter = build_adapter("wan22_ti2v_5b", AdapterSettings(model=tiny_folder("cogvideox_5b_i2v")))
    with pytest.raises(ModelLoadError, match="holds a CogVideoXImageToVideoPipeline"):
        adapter.load()


def test_wan_loads_a_folder_saved_as_the_text_to_video_pipeline(tmp_path):
    import diffusers

    tiny = build_tiny_pipeline("wan22_ti2v_5b")
    modules = {k: getattr(tiny, k) for k in ("tokenizer", "text_encoder", "vae", "scheduler", "transformer")}
    diffusers.WanPipeline(**modules, expand_timesteps=True).save_pretrained(tmp_path)
    adapter = build_adapter("wan22_ti2v_5b", AdapterSettings(model=str(tmp_path), num_inference_steps=1))
    clip = adapter.generate(_request("wan22_ti2v_5b", num_frames=5))
    assert adapter.describe()["pipeline"] == "WanImageToVideoPipeline"
    assert clip.frames.shape == (5, 64, 64, 3)
    adapter.unload()


@pytest.mark.parametrize("name", ADAPTERS)
def test_int8wo_quantizes_the_transformer_on_cpu(name, tiny_folder):
    from torchao.utils import TorchAOBaseTensor

    settings = AdapterSettings(model=tiny_folder(name), quantization="int8wo", num_inference_steps=STEPS)
    adapter = build_adapter(name, settings)
    adapter.load()
    linears = {
        n: m.weight for n, m in adapter.pipe.transformer.named_modules() if isinstance(m, torch.nn.Linear)
    }
    quantized = [n for n, w in linears.items() if isinstance(w, TorchAOBaseTensor)]
    attention = [n for n in linears if n.endswith(("to_q", "to_k", "to_v"))]
    assert attention and set(attention) <= set(quantized)
    assert not any(isinstance(p, TorchAOBaseTensor) for p in adapter.pipe.text_encoder.parameters())
    assert adapter.describe()["quantization_used"] == "int8wo"
    if name == "wan22_ti2v_5b":
        clip = adapter.generate(_request(name))
        assert clip.frames.shape == (WANTED, *TINY_SIZES[name][::-1], 3)
    adapter.unload()


def test_nf4_without_cuda_loads_unquantized_and_says_so(tiny_folder, caplog):
    if torch.cuda.is_available():
        pytest.skip("the fallback is for machines without CUDA")
    adapter = build_adapter(
        "wan22_ti2v_5b", AdapterSettings(model=tiny_folder("wan22_ti2v_5b"), quantization="nf4")
    )
    with caplog.at_level(logging.WARNING):
        adapter.load()
    assert "nf4 needs bitsandbytes on CUDA" in caplog.text
    assert adapter.describe()["quantization_used"] == "none"
    assert type(adapter.pipe.transformer.blocks[0].attn1.to_q.weight) is torch.nn.Parameter
    adapter.unload()


def test_auto_dtype_device_and_cpu_offload_on_cpu(tiny_folder, caplog):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU choices")
    settings = AdapterSettings(model=tiny_folder("hunyuan_i2v"), cpu_offload=True)
    adapter = build_adapter("hunyuan_i2v", settings)
    with caplog.at_level(logging.INFO):
        adapter.load()
    assert "dtype auto -> fp32 on cpu" in caplog.text
    assert "hunyuan_i2v: cpu_offload needs an accelerator; ignored on cpu" in caplog.text
    described = adapter.describe()
    assert (described["dtype"], described["device"], described["cpu_offload"]) == ("float32", "cpu", False)
    assert adapter.pipe.transformer.dtype == torch.float32
    adapter.unload()


def test_auto_quantization_is_none_on_cpu_and_says_so(tiny_folder, caplog):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU choice")
    adapter = build_adapter("wan22_ti2v_5b", AdapterSettings(model=tiny_folder("wan22_ti2v_5b")))
    assert adapter.settings.quantization == "auto"  # the default
    with caplog.at_level(logging.INFO):
        adapter.load()
    assert "wan22_ti2v_5b: quantization auto -> none on cpu" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    described = adapter.describe()
    assert (described["quantization"], described["quantization_used"]) == ("auto", "none")
    assert type(adapter.pipe.transformer.blocks[0].attn1.to_q.weight) is torch.nn.Parameter
    adapter.unload()


def test_wan_guides_against_its_standard_negative_prompt(loaded, monkeypatch):
    """Item 5: classifier-free guidance ran against an empty negative prompt; every Wan example uses this."""
    adapter = loaded("wan22_ti2v_5b")
    seen: list = []
    encode = adapter.pipe.encode_prompt

    def spy(*args, **kwargs):
        seen.append(kwargs.get("negative_prompt"))
        return encode(*args, **kwargs)

    monkeypatch.setattr(adapter.pipe, "encode_prompt", spy)
    adapter.generate(_request("wan22_ti2v_5b", num_frames=5))
    assert seen == [WAN_NEGATIVE]
    custom = type(adapter)(AdapterSettings(options={"negative_prompt": "blurry"}))
    custom.pipe = adapter.pipe
    assert custom._model_kwargs() == {"negative_prompt": "blurry"}


def test_wan_keeps_its_vae_in_fp32(tiny_folder):
    adapter = build_adapter(
        "wan22_ti2v_5b", AdapterSettings(model=tiny_folder("wan22_ti2v_5b"), dtype="bf16")
    )
    adapter.load()
    assert adapter.pipe.transformer.dtype == torch.bfloat16
    assert adapter.pipe.vae.dtype == torch.float32
    assert (adapter.describe()["dtype"], adapter.describe()["vae_dtype"]) == ("bfloat16", "float32")
    adapter.unload()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (AdapterSettings(dtype="fp16"), "overflows in fp16"),
        (AdapterSettings(dtype="fp8"), "dtype: cogvideox_5b_i2v takes auto, bf16, fp16 or fp32"),
        (
            AdapterSettings(quantization="int4"),
            "quantization: cogvideox_5b_i2v takes auto, none, int8wo, int8dq, fp8, nf4",
        ),
        (AdapterSettings(device="tpu"), "device: cogvideox_5b_i2v runs on auto, cpu or cuda"),
    ],
)
def test_bad_settings_are_adapter_errors(settings, message, tiny_folder):
    from dataclasses import replace

    adapter = build_adapter("cogvideox_5b_i2v", replace(settings, model=tiny_folder("cogvideox_5b_i2v")))
    with pytest.raises(AdapterError, match=message):
        adapter.load()


def test_cogvideox_trims_to_40_frames_unless_trim_frames_says_otherwise(loaded):
    cls = get_adapter_info("cogvideox_5b_i2v").cls
    assert cls.constraints_for(AdapterSettings()).usable_frames == 40
    assert cls.constraints_for(AdapterSettings(options={"trim_frames": 49})).usable_frames == 49
    with pytest.raises(
        AdapterError, match=r"options.trim_frames: cogvideox_5b_i2v keeps 1..49 frames per clip"
    ):
        cls.constraints_for(AdapterSettings(options={"trim_frames": 50}))
    with pytest.raises(AdapterError, match=r"num_frames: cogvideox_5b_i2v keeps 1..40 frames per clip"):
        loaded("cogvideox_5b_i2v").generate(_request("cogvideox_5b_i2v", num_frames=45))


@pytest.mark.parametrize(
    ("name", "width", "height", "fps", "clip_frames", "message"),
    [
        (
            "cogvideox_5b_i2v",
            640,
            480,
            8,
            40,
            "width/height: cogvideox_5b_i2v makes 720x480 only, not 640x480",
        ),
        (
            "cogvideox_5b_i2v",
            720,
            480,
            8,
            49,
            "max_clip_frames: cogvideox_5b_i2v keeps 1..40 frames per clip",
        ),
        ("cogvideox_5b_i2v", 720, 480, 24, 40, "fps: cogvideox_5b_i2v was made for 8 fps, got 24"),
        (
            "cogvideox15_5b_i2v",
            720,
            480,
            16,
            81,
            "height: cogvideox15_5b_i2v makes 768..1360 pixels, got 480",
        ),
        (
            "cogvideox15_5b_i2v",
            1352,
            768,
            16,
            81,
            "width: cogvideox15_5b_i2v needs a multiple of 16, got 1352",
        ),
        ("cogvideox15_5b_i2v", 1360, 768, 16, 170, "keeps 1..161 frames per clip (frames 81 or 161)"),
        ("wan22_ti2v_5b", 720, 480, 24, 49, "width/height: wan22_ti2v_5b makes 1280x704, 704x1280 only"),
        ("wan22_ti2v_5b", 1024, 576, 24, 49, "width/height: wan22_ti2v_5b makes 1280x704, 704x1280 only"),
        ("wan22_ti2v_5b", 1280, 704, 24, 122, "keeps 1..121 frames per clip (frames 4N+1 up to 121)"),
        ("hunyuan_i2v", 720, 480, 24, 65, "width/height: hunyuan_i2v makes 1280x720, 720x1280 only"),
        ("hunyuan_i2v", 1280, 728, 24, 129, "width/height: hunyuan_i2v makes 1280x720, 720x1280 only"),
        ("hunyuan_i2v", 1280, 720, 24, 130, "keeps 1..129 frames per clip (frames 4N+1 up to 129)"),
    ],
)
def test_constraints_reject_what_the_model_cannot_make(name, width, height, fps, clip_frames, message):
    constraints = get_adapter_info(name).constraints
    errors = constraints.check(name, width=width, height=height, fps=fps, clip_frames=clip_frames)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize(
    ("name", "width", "height", "fps", "frames"),
    [
        ("cogvideox_5b_i2v", 720, 480, 8, 40),
        ("cogvideox15_5b_i2v", 1360, 768, 16, 81),
        ("wan22_ti2v_5b", 1280, 704, 24, 121),
        ("wan22_ti2v_5b", 704, 1280, 24, 121),
        ("hunyuan_i2v", 1280, 720, 24, 129),
        ("hunyuan_i2v", 720, 1280, 24, 65),
    ],
)
def test_constraints_accept_native_settings(name, width, height, fps, frames):
    info = get_adapter_info(name)
    assert info.constraints.check(name, width=width, height=height, fps=fps, clip_frames=frames) == []
    assert info.large and info.repo_id and info.cls.weights_gb > 20


def test_any_size_lets_wan_and_hunyuan_run_other_sizes_and_is_checked():
    wan = get_adapter_info("wan22_ti2v_5b").cls
    rules = wan.constraints_for(AdapterSettings(options={"any_size": True}))
    assert rules.check("wan22_ti2v_5b", width=64, height=64, fps=24) == []
    assert rules.check("wan22_ti2v_5b", width=720, height=480, fps=24) == [
        "width: wan22_ti2v_5b needs a multiple of 32, got 720"
    ]
    with pytest.raises(
        AdapterError, match="options.any_size: cogvideox_5b_i2v makes only the sizes it was trained for"
    ):
        get_adapter_info("cogvideox_5b_i2v").cls.constraints_for(AdapterSettings(options={"any_size": True}))
    with pytest.raises(
        AdapterError, match=r"options.any_size: wan22_ti2v_5b: Input should be a valid boolean \(got 'yes'\)"
    ):
        wan.constraints_for(AdapterSettings(options={"any_size": "yes"}))


@pytest.mark.parametrize("name", ADAPTERS)
def test_allow_patterns_cover_the_pipeline_files_and_nothing_else(name, tiny_folder):
    from pathlib import Path

    patterns = get_adapter_info(name).allow_patterns
    root = Path(tiny_folder(name))
    saved = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    assert saved and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in saved), saved
    for unwanted in (
        "transformer/diffusion_pytorch_model.bin",
        "text_encoder/pytorch_model.bin",
        "model.ckpt",
        "original/transformer.safetensors",
        "README.md",
        "assets/example.png",
    ):
        assert not any(fnmatch.fnmatch(unwanted, pat) for pat in patterns), unwanted


def test_to_uint8_frames_blacks_out_nan_and_reports_the_frames():
    video = np.full((4, 2, 2, 3), 0.5, dtype=np.float32)
    video[1, 0, 0, 0] = np.nan
    video[3, 1, 1, 2] = np.inf
    video[2] = 1.2  # out of range is clipped, not reported
    frames, nan_frames = to_uint8_frames(video, keep=3)
    assert frames.shape == (3, 2, 2, 3) and frames.dtype == np.uint8
    assert nan_frames == (1,)  # frame 3 was trimmed away
    assert frames[1, 0, 0, 0] == 0 and frames[1, 0, 0, 1] == 128
    assert (frames[2] == 255).all()
