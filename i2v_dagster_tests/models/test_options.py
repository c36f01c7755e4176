"""Every adapter's typed ``Options``: what the spec's validation refuses (one line per problem naming
``models.<role>.options.<key>``), the defaults the adapters read, and the speed settings' static rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from i2v_dagster.errors import AdapterError
from i2v_dagster.models.base import AdapterOptions, AdapterSettings
from i2v_dagster.models.registry import adapter_names, adapter_role, get_adapter_info, options_problems

VIDEO = ("cogvideox_5b_i2v", "cogvideox15_5b_i2v", "wan22_ti2v_5b", "hunyuan_i2v")


def _problems(name: str, options: dict) -> list[str]:
    return options_problems(f"models.{adapter_role(name)}.options", name, options)


@pytest.mark.parametrize("name", adapter_names())
def test_every_adapter_has_a_strict_options_model_with_described_fields(name):
    model = get_adapter_info(name).cls.Options
    assert issubclass(model, AdapterOptions) and issubclass(model, BaseModel)
    assert model.model_config["extra"] == "forbid" and model.model_config["strict"]
    assert model.model_config["allow_inf_nan"] is False
    for key, field in model.model_fields.items():
        assert field.description, f"{name}: options.{key} has no description"
    model()  # every option has a default
    assert _problems(name, {}) == []
    role = adapter_role(name)
    assert _problems(name, {"no_such_option": 1}) == [
        f"models.{role}.options.no_such_option: unknown option of {name} "
        f"(options: {', '.join(model.model_fields) or 'none'})"
    ]


@pytest.mark.parametrize("name", ["spec", "mock_script", "mock_speech", "mock_image"])
def test_adapters_without_options_take_none(name):
    assert get_adapter_info(name).cls.Options.model_fields == {}
    assert _problems(name, {"steps": 2}) == [
        f"models.{adapter_role(name)}.options.steps: unknown option of {name} (options: none)"
    ]


def test_mock_video_keeps_its_options():
    assert list(get_adapter_info("mock_video").cls.Options.model_fields) == [
        "steps",
        "seconds_per_step",
        "slow_after",
        "color_cast",
        "bad_attempts",
    ]
    assert _problems("mock_video", {"steps": 0}) == [
        "models.video.options.steps: Input should be greater than or equal to 1 (got 0)"
    ]


@pytest.mark.parametrize(
    ("name", "options", "problem"),
    [
        (
            "wan22_ti2v_5b",
            {"compile": "yes"},
            "models.video.options.compile: Input should be 'auto', 'on' or",
        ),
        ("wan22_ti2v_5b", {"cache": "mag"}, "models.video.options.cache: Input should be 'auto', 'none', "),
        (
            "wan22_ti2v_5b",
            {"cache": "pab", "cache_threshold": 0.1},
            "models.video.options.cache_threshold: applies to cache first_block only, not pab (got 0.1)",
        ),
        (
            "hunyuan_i2v",
            {"cache": "first_block", "cache_interval": 3},
            "models.video.options.cache_interval: applies to cache pab or taylorseer only, not first_block",
        ),
        (
            "cogvideox15_5b_i2v",
            {"cache": "first_block", "cache_threshold": 0},
            "models.video.options.cache_threshold: Input should be greater than 0 (got 0)",
        ),
        (
            "cogvideox15_5b_i2v",
            {"cache": "first_block", "cache_threshold": float("nan")},
            "models.video.options.cache_threshold: Input should be a finite number",
        ),
        (
            "cogvideox_5b_i2v",
            {"attention_backend": "flash3"},
            "models.video.options.attention_backend: only auto or native reach this model: CogVideoX's "
            "attention processor calls torch's scaled_dot_product_attention itself",
        ),
        ("wan22_ti2v_5b", {"attention_backend": "xformers"}, "models.video.options.attention_backend: Input"),
        (
            "flux_schnell",
            {"plan_size": [1024]},
            "models.image.options.plan_size: List should have at least 2",
        ),
        (
            "flux_schnell",
            {"plan_size": [1024, 0]},
            "models.image.options.plan_size.1: Input should be greater",
        ),
        (
            "hunyuan_i2v",
            {"negative_prompt": "blurry"},
            "models.video.options.negative_prompt: unknown option",
        ),
        (
            "cogvideox_5b_i2v",
            {"use_dynamic_cfg": 1},
            "models.video.options.use_dynamic_cfg: Input should be a",
        ),
        (
            "wan22_ti2v_5b",
            {"trim_frames": 0},
            "models.video.options.trim_frames: Input should be greater than",
        ),
        ("bark", {"semantic_temperature": 0}, "models.speech.options.semantic_temperature: Input should be"),
        ("bark", {"max_chars": "150"}, "models.speech.options.max_chars: Input should be a valid integer"),
        (
            "clip",
            {"batch_size": 0},
            "models.scorer.options.batch_size: Input should be greater than or equal",
        ),
        ("clip", {"models": []}, "models.scorer.options.models: List should have at least 1 item"),
        ("clip", {"pretrained": 3}, "models.scorer.options.pretrained: takes an open_clip tag, a path, or a"),
        ("ollama", {"timeout_s": 0}, "models.script.options.timeout_s: Input should be greater than 0"),
        (
            "ollama",
            {"keep_alive": "soon"},
            "models.script.options.keep_alive: takes seconds (-1..86400) or an",
        ),
    ],
)
def test_bad_options_name_the_option_and_the_rule(name, options, problem):
    problems = _problems(name, options)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("cogvideox_5b_i2v", {"attention_backend": "native", "cache": "pab", "cache_interval": 3}),
        ("cogvideox15_5b_i2v", {"compile": "on", "cache": "first_block", "cache_threshold": 0.1}),
        ("wan22_ti2v_5b", {"attention_backend": "flash3", "negative_prompt": None, "any_size": True}),
        ("hunyuan_i2v", {"attention_backend": "sage", "cache": "taylorseer", "trim_frames": 33}),
        ("flux_schnell", {"plan_size": [720, 480], "compile": "off", "attention_backend": "flash"}),
        ("bark", {"voice_preset": None, "min_eos_p": None, "pause_s": 0}),
        ("clip", {"models": "ViT-B-32", "pretrained": {"ViT-B-32": "openai"}, "model_configs": "cfg.json"}),
        ("ollama", {"host": "gpu-box:11434", "keep_alive": "1h30m", "temperature": 0.3}),
        ("ollama", {"keep_alive": -1}),
    ],
)
def test_good_options_pass(name, options):
    assert _problems(name, options) == []


def test_the_adapters_read_their_defaults_from_the_options_model():
    from i2v_dagster.models.bark import BarkSpeech
    from i2v_dagster.models.clip_scorer import ClipScorer, configured_models
    from i2v_dagster.models.ollama_writer import OllamaScriptWriter
    from i2v_dagster.models.video_diffusers import WAN_NEGATIVE_PROMPT

    wan = get_adapter_info("wan22_ti2v_5b").cls()
    assert wan.options.negative_prompt == WAN_NEGATIVE_PROMPT
    assert (wan.options.compile, wan.options.cache, wan.options.attention_backend) == ("auto",) * 3
    assert wan.plan_size == (1280, 704, 121)
    assert type(wan)(AdapterSettings(options={"negative_prompt": None})).options.negative_prompt is None
    assert (
        BarkSpeech().option("max_chars") == 150 and BarkSpeech().option("voice_preset") == "v2/en_speaker_6"
    )
    assert ClipScorer().batch_size == 16
    assert configured_models(AdapterSettings(options={"models": "ViT-B-32"})) == {"ViT-B-32": "openai"}
    writer = OllamaScriptWriter()
    assert (writer.timeout_s, writer.options.keep_alive, writer.options.temperature) == (120.0, 0, 0.0)


def test_an_adapter_refuses_bad_options_naming_the_option_and_itself():
    hunyuan = get_adapter_info("hunyuan_i2v").cls(AdapterSettings(options={"cache_threshold": -1}))
    with pytest.raises(
        AdapterError,
        match=r"^options.cache_threshold: hunyuan_i2v: Input should be greater than 0 \(got -1\)$",
    ):
        hunyuan.options  # noqa: B018
    with pytest.raises(
        AdapterError, match="options.trim_frames: cogvideox_5b_i2v keeps 1..49 frames per clip"
    ):
        get_adapter_info("cogvideox_5b_i2v").cls.constraints_for(AdapterSettings(options={"trim_frames": 81}))


def test_spec_validation_reports_every_role_before_any_work():
    from i2v_dagster.models.registry import spec_problems
    from i2v_dagster.spec import JobSpec

    spec = JobSpec.model_validate(
        {
            "name": "opts",
            "scenes": [{"visual_prompt": "a cat", "duration_s": 2.0}],
            "models": {
                "script": {"adapter": "spec", "options": {"x": 1}},
                "speech": {"adapter": "bark", "options": {"pause_s": -1}},
                "video": {"adapter": "wan22_ti2v_5b", "options": {"cache": "pab", "cache_threshold": 0.2}},
                "scorer": {"adapter": "clip", "options": {"batch_size": 0}},
            },
        }
    )
    problems = spec_problems(spec, check_extras=False)  # the options' rules, on any install
    assert [p.split(":")[0] for p in problems] == [
        "models.script.options.x",
        "models.speech.options.pause_s",
        "models.video.options.cache_threshold",
        "models.scorer.options.batch_size",
    ]


@pytest.mark.parametrize(
    ("written", "meant"), [("on", "on"), ("off", "off"), ("true", "on"), ("auto", "auto")]
)
def test_compile_written_bare_in_a_yaml_job_file_means_the_word(tmp_path, written, meant):
    """YAML 1.1 reads a bare ``compile: on`` as ``True``; the spec takes it as the word the user wrote."""
    from i2v_dagster.specfile import load_spec

    base = (Path(__file__).resolve().parents[2] / "jobs" / "wan22_ti2v_5b.yaml").read_text()
    line = "video: {adapter: wan22_ti2v_5b, vae_tiling: true}"
    assert line in base
    job = tmp_path / "job.yaml"
    job.write_text(base.replace(line, line[:-1] + f", options: {{compile: {written}}}}}"))
    spec = load_spec(job, check_files=False, check_card=False, check_extras=False)
    options = get_adapter_info("wan22_ti2v_5b").cls.Options.model_validate(spec.models.video.options)
    assert options.compile == meant
