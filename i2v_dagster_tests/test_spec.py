"""The job spec: valid files, overrides, and bad input that fails before any work, naming the field."""

from __future__ import annotations

import json

import pytest
import yaml

from i2v_dagster.errors import SpecError
from i2v_dagster.spec import JobSpec
from i2v_dagster.specfile import apply_overrides, load_spec, parse_spec

BASE = {"name": "demo", "scenes": [{"visual_prompt": "a lighthouse", "narration": "Hello."}]}


def test_example_job_file_is_valid():
    spec = load_spec("jobs/example_mock.yaml")
    assert spec.name == "demo" and len(spec.scenes) == 3
    assert spec.models.video.adapter == "mock_video" and spec.chain_mode == "last_frame"
    assert spec.clip_time_limit_s == 600


def test_json_and_bare_yaml_load_the_same(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps(BASE))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"ops": {"script": {"config": BASE}}}))
    assert load_spec(tmp_path / "s.json") == load_spec(tmp_path / "s.yaml")


def test_clip_seeds_are_derived_deterministically_and_differ():
    a, b = parse_spec(BASE), parse_spec({**BASE, "seed": 1})
    assert [a.clip_seed(i) for i in range(3)] == [parse_spec(BASE).clip_seed(i) for i in range(3)]
    assert len({a.clip_seed(i) for i in range(50)}) == 50
    assert a.clip_seed(0) != b.clip_seed(0)


def test_prompts_carry_subject_style_and_texture():
    spec = parse_spec({**BASE, "subject": "a cat", "visual_style": "noir", "texture_suffix": "grainy"})
    assert spec.keyframe_prompt(spec.scenes[0]) == "a cat, a lighthouse, noir, grainy"
    assert spec.motion_prompt(spec.scenes[0]).startswith("a lighthouse, ")


def test_overrides_go_through_the_same_model():
    spec = parse_spec(BASE, ["fps=12", "models.video.options.steps=2", "scenes.0.motion_prompt=pan left"])
    assert spec.fps == 12 and spec.models.video.options == {"steps": 2}
    assert spec.scenes[0].motion_prompt == "pan left"
    with pytest.raises(SpecError, match="fps"):
        parse_spec(BASE, ["fps=-3"])
    with pytest.raises(SpecError, match="expected key=value"):
        apply_overrides(BASE, ["fps"])
    with pytest.raises(SpecError, match="not an index"):
        apply_overrides(BASE, ["scenes.5.narration=x"])


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"models": {"video": {"adapter": "sora"}}}, "models.video.adapter", "sora"),
        ({"models": {"image": {"adapter": "mock_video"}}}, "models.image.adapter", "mock_video"),
        ({"initial_image": "missing/start.png"}, "initial_image", "start.png"),
        ({"fps": 0}, "fps", "0"),
        ({"fps": -24}, "fps", "-24"),
        ({"name": "a/b"}, "name", "a/b"),
        ({"name": ".."}, "name", ".."),
        ({"name": "../escape"}, "name", "../escape"),
        ({"width": 721}, "width", "721"),
        ({"max_clip_frames": 500}, "max_clip_frames", "500"),
        ({"models": {"script": {"adapter": "none"}}}, "models.script.adapter", "none"),
        ({"scenes": []}, "scenes", "empty"),
    ],
)
def test_bad_input_names_the_field(change, field, value):
    with pytest.raises(SpecError) as info:
        parse_spec({**BASE, **change})
    message = str(info.value)
    assert field in message and value in message


def test_silent_spec_needs_durations():
    with pytest.raises(SpecError, match=r"scenes\.0\.duration_s"):
        parse_spec({**BASE, "models": {"speech": {"adapter": "none"}}})
    spec = parse_spec(
        {
            **BASE,
            "models": {"speech": {"adapter": "none"}},
            "scenes": [{"visual_prompt": "x", "duration_s": 1.5}],
        }
    )
    assert spec.silent


def test_initial_image_that_exists_is_accepted(tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 64)).save(tmp_path / "start.png")
    assert parse_spec({**BASE, "initial_image": str(tmp_path / "start.png")}).initial_image


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed")
    with pytest.raises(SpecError, match="broken.yaml"):
        load_spec(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(tmp_path / "list.yaml")


def test_every_field_has_a_description_and_dagster_sees_it():
    from i2v_dagster.defs.config import spec_config_schema

    missing = [n for n, f in JobSpec.model_fields.items() if not f.description]
    assert missing == []
    fields = spec_config_schema().config_type.fields
    assert set(fields) == set(JobSpec.model_fields)
    assert fields["fps"].description == JobSpec.model_fields["fps"].description


def test_registry_and_spec_name_the_same_adapters():
    from typing import get_args

    from i2v_dagster.models.registry import ROLES, adapter_names
    from i2v_dagster.spec import ADAPTERS_BY_ROLE

    for role in ROLES:
        assert set(get_args(ADAPTERS_BY_ROLE[role])) - {"none"} == set(adapter_names(role)), role


def test_adapter_rules_follow_the_adapters_settings():
    """The adapters' rules, on any install (the [models] extra is checked elsewhere)."""
    base = {
        **BASE,
        "fps": 8,
        "width": 720,
        "height": 480,
        "max_clip_frames": 49,
        "models": {"video": {"adapter": "cogvideox_5b_i2v"}},
    }
    with pytest.raises(SpecError, match=r"max_clip_frames: cogvideox_5b_i2v keeps 1\.\.40 frames"):
        parse_spec(base, check_extras=False)
    trimmed = {**base, "models": {"video": {"adapter": "cogvideox_5b_i2v", "options": {"trim_frames": 49}}}}
    assert parse_spec(trimmed, check_extras=False).max_clip_frames == 49
    with pytest.raises(SpecError, match="width/height: cogvideox_5b_i2v makes 720x480 only, not 640x480"):
        parse_spec({**base, "width": 640, "max_clip_frames": 40}, check_extras=False)
    with pytest.raises(SpecError, match="fps: wan22_ti2v_5b was made for 24 fps, got 8"):
        parse_spec(
            {**base, "width": 704, "max_clip_frames": 9, "models": {"video": {"adapter": "wan22_ti2v_5b"}}},
            check_extras=False,
        )
