"""Seed-scaffold job specs: detection, conversion (`i2v import`), and dry runs (`specfile.rehearsal`)."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from i2v_dagster.cli import main
from i2v_dagster.errors import SpecError
from i2v_dagster.models.registry import ROLES, get_adapter_info, max_clip_frames, settings_for
from i2v_dagster.scaffold import (
    SCAFFOLD_KEYS,
    SHOT_KEYS,
    convert,
    looks_like_scaffold,
    safe_name,
    with_overrides,
)
from i2v_dagster.spec import NAME_PATTERN, JobSpec
from i2v_dagster.specfile import load_spec, parse_spec, read_document, rehearsal, spec_problems
from i2v_dagster_tests.helpers import render

DATA = Path(__file__).resolve().parent / "data" / "scaffold"
EXAMPLE = DATA / "example_mock.yaml"
EXAMPLE_WAN = DATA / "example_wan.yaml"
JOBS = Path(__file__).resolve().parents[1] / "jobs"
MOCKS = {"spec", "mock_script", "mock_speech", "mock_image", "mock_video", "none"}


def example() -> dict[str, Any]:
    return read_document(EXAMPLE)


def scaffold_leaves(data: dict[str, Any]) -> set[str]:
    """Every key of a scaffold spec, shot keys as ``shots.*.key``, one level into its mappings."""
    keys = set()
    for key, value in data.items():
        if key == "shots":
            for shot in value:
                for skey, svalue in shot.items():
                    if skey == "params":
                        keys.update(f"shots.*.params.{p}" for p in svalue)
                    else:
                        keys.add(f"shots.*.{skey}")
        elif key in ("model", "global_params", "constants") and isinstance(value, dict):
            keys.update(f"{key}.{sub}" for sub in value)
        else:
            keys.add(key)
    return keys


# ---- conversion ----------------------------------------------------------------------------------------


def test_the_scaffold_example_converts_to_a_valid_spec():
    data = example()
    assert looks_like_scaffold(data)
    conversion = convert(data, source=str(EXAMPLE))
    spec = parse_spec(conversion.spec)
    shots = data["shots"]
    assert spec.name == conversion.name == data["job_name"]
    assert [s.visual_prompt for s in spec.scenes] == [s["prompt"] for s in shots]
    assert [s.motion_prompt for s in spec.scenes] == [s["prompt"] for s in shots]
    assert [s.duration_s for s in spec.scenes] == [s["duration_seconds"] for s in shots]
    assert all(s.narration == "" for s in spec.scenes) and spec.silent
    assert (spec.fps, spec.width, spec.height) == (shots[0]["fps"], shots[0]["width"], shots[0]["height"])
    assert spec.seed == shots[0]["seed"]
    assert spec.models.video.adapter == "mock_video" and spec.models.image.adapter == "mock_image"
    assert spec.models.video.num_inference_steps == shots[0]["steps"]
    assert spec.models.video.guidance_scale == data["global_params"]["guidance_scale"]
    assert spec.outputs_root == data["output_root"]
    assert spec.dry_run is data["dry_run"]
    notes = {n.key: n for n in conversion.notes}
    # the example's shots have different seeds: one spec has one seed, and the note says so
    seeds = [s["seed"] for s in shots]
    assert len(set(seeds)) > 1
    assert all(str(s) in notes["shots.*.seed"].text for s in seeds) and "differ" in notes["shots.*.seed"].text
    assert notes["global_params.sampler"].dropped and notes["model.version"].dropped


@pytest.mark.parametrize("path", [EXAMPLE, EXAMPLE_WAN])
def test_every_key_of_the_examples_is_mapped_or_named(path):
    data = read_document(path)
    conversion = convert(data, source=str(path))
    named = {n.key for n in conversion.notes}
    assert scaffold_leaves(data) <= named


def test_every_scaffold_field_and_unknown_keys_are_named():
    data = {
        "job_name": "Every Field",
        "run_id": "run-1",
        "model": {"id": "wan2.2", "version": "v1", "revision_typo": "x"},
        "input_image": "start.png",
        "output_root": "out",
        "dry_run": True,
        "global_params": {
            "cfg": 4.0,
            "guidance_scale": 9.0,
            "sampler": "euler",
            "chain_last_frame": True,
            "motion_strength": 0.7,
        },
        "constants": {"global_prompt": "a lighthouse", "continuity_rules": ["same coat"]},
        "shots": [
            {key: None for key in SHOT_KEYS}
            | {
                "prompt": "waves",
                "duration_seconds": 2.0,
                "steps": 10,
                "fps": 24,
                "frames": 36,
                "seed": 5,
                "width": 640,
                "height": 352,
                "negative_prompt": "blur",
                "params": {"cfg": 3.0, "wan_profile": "x"},
                "camera": "dolly",
            },
        ],
        "priority": "high",
    }
    assert set(SCAFFOLD_KEYS) <= set(data)
    conversion = convert(data, source="every.yaml", base_dir="/jobs")
    named = {n.key for n in conversion.notes}
    assert scaffold_leaves(data) <= named
    dropped = {n.key for n in conversion.notes if n.dropped}
    assert {
        "priority",
        "model.revision_typo",
        "shots.*.camera",
        "run_id",
        "global_params.sampler",
        "global_params.motion_strength",
        "shots.*.params.wan_profile",
        "constants.continuity_rules",
    } <= dropped
    spec = conversion.spec
    assert spec["name"] == safe_name(data["job_name"]) == "every-field"
    assert spec["initial_image"] == str(Path("/jobs") / data["input_image"])
    assert spec["subject"] == data["constants"]["global_prompt"]
    assert spec["chain_mode"] == "last_frame"
    shot = data["shots"][0]
    assert spec["scenes"][0]["duration_s"] == shot["frames"] / shot["fps"]  # frames win, as in the scaffold
    video = spec["models"]["video"]
    assert video["adapter"] == "wan22_ti2v_5b"
    assert video["options"] == {"negative_prompt": shot["negative_prompt"]}
    assert video["guidance_scale"] == shot["params"]["cfg"]  # a shot's params come before global_params


def test_guidance_falls_back_to_global_params_in_the_scaffolds_order():
    data = example()
    data["global_params"] = {"guidance_scale": 9.0, "cfg": 4.5}
    for shot in data["shots"]:
        shot["params"] = {}
    video = convert(data, source="x").spec["models"]["video"]
    assert video["guidance_scale"] == data["global_params"]["cfg"]
    notes = {n.key: n for n in convert(data, source="x").notes}
    assert notes["global_params.guidance_scale"].dropped and not notes["global_params.cfg"].dropped


def test_shots_that_differ_use_the_first_and_say_so():
    data = example()
    data["shots"][1]["fps"] = data["shots"][0]["fps"] + 6
    conversion = convert(data, source="x")
    assert conversion.spec["fps"] == data["shots"][0]["fps"]
    note = next(n for n in conversion.notes if n.key == "shots.*.fps")
    assert "differ" in note.text and str(data["shots"][1]["fps"]) in note.text


def test_missing_shot_values_take_the_scaffolds_defaults_and_say_so():
    data = {"model": {"id": "mock"}, "shots": [{"prompt": "a cat"}, {"prompt": "a dog", "seed": 9}]}
    conversion = convert(data, source="x")
    spec = conversion.spec
    assert spec["name"] == "video-gen-job"
    assert (spec["fps"], spec["width"], spec["height"]) == (8, 512, 512)
    assert [s["duration_s"] for s in spec["scenes"]] == [2.0, 2.0]
    assert spec["seed"] == 0  # the scaffold seeded a shot without one with its index
    assert spec["models"]["video"]["num_inference_steps"] == 20
    notes = {n.key: n.text for n in conversion.notes}
    assert "default" in notes["shots.*.fps"] and "default" in notes["job_name"]
    parse_spec(spec)


@pytest.mark.parametrize(
    ("model_id", "adapter"),
    [
        ("mock", "mock_video"),
        ("wan2.2", "wan22_ti2v_5b"),
        ("Wan22_TI2V_5B", "wan22_ti2v_5b"),
        ("hunyuan-i2v", "hunyuan_i2v"),
        ("cogvideox1.5-i2v", "cogvideox15_5b_i2v"),
        ("cogvideox15_5b_i2v", "cogvideox15_5b_i2v"),
        ("cogvideox_5b_i2v", "cogvideox_5b_i2v"),
    ],
)
def test_model_ids_map_to_video_adapters(model_id, adapter):
    data = example()
    data["model"]["id"] = model_id
    spec = convert(data, source="x").spec
    assert spec["models"]["video"]["adapter"] == adapter
    assert spec["models"]["image"]["adapter"] == ("mock_image" if adapter == "mock_video" else "flux_schnell")


def test_an_unknown_model_id_is_refused_naming_it_and_the_known_ones():
    data = example()
    data["model"]["id"] = "sora-2"
    with pytest.raises(SpecError) as err:
        convert(data, source="job.yaml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("job.yaml: model.id: ") and "'sora-2'" in message
    assert all(known in message for known in ("mock", "wan22_ti2v_5b", "hunyuan_i2v", "cogvideox15_5b_i2v"))


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    target: Any = out
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return out


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("shots.1.fps", "ten", "shots.1.fps: expected a whole number > 0, got 'ten'"),
        ("shots.0.fps", True, "shots.0.fps: expected a whole number > 0, got True"),
        ("shots.2.duration_seconds", -1.5, "shots.2.duration_seconds: expected a number > 0"),
        ("shots.0.duration_seconds", math.inf, "shots.0.duration_seconds: expected a finite number"),
        ("shots.0.seed", "abc", "shots.0.seed: expected a whole number"),
        ("shots.1.prompt", _DELETE, "shots.1.prompt: required"),
        ("shots.1", "a shot", "shots.1: expected a mapping"),
        ("shots", [], "shots: empty"),
        ("shots", _DELETE, "shots: required"),
        ("dry_run", "yes", "dry_run: expected true or false, got 'yes'"),
        ("model", "mock", "model: expected a mapping"),
        ("model", _DELETE, "model: required"),
        ("model.id", 7, "model.id: expected text, got 7"),
        ("job_name", ["a"], "job_name: expected text"),
        ("job_name", "!!!", "job_name: '!!!' has no letter or digit"),
        ("global_params.guidance_scale", "high", "global_params.guidance_scale: expected a finite number"),
        ("output_root", 3, "output_root: expected text"),
    ],
)
def test_bad_scaffold_input_is_one_line_naming_the_key(path, value, needle):
    with pytest.raises(SpecError) as err:
        convert(_set(example(), path, value), source="job.yaml")
    message = str(err.value)
    assert "\n" not in message and message.startswith("job.yaml: ")
    assert needle in message


def test_the_name_is_sanitised_and_the_note_says_so():
    data = example()
    data["job_name"] = "  My Video: Take #2  "
    conversion = convert(data, source="x")
    assert conversion.name == "my-video-take-2"
    note = next(n for n in conversion.notes if n.key == "job_name")
    assert repr(data["job_name"]) in note.text and "my-video-take-2" in note.text
    assert convert(data, source="x", name="chosen").name == "chosen"
    with pytest.raises(SpecError, match="--name"):
        convert(data, source="x", name="Not Valid")
    long = convert(_set(data, "job_name", "x" * 100), source="x").name
    assert len(long) == 64 and re.fullmatch(NAME_PATTERN, long)


def test_a_converted_spec_is_checked_against_the_real_adapters_rules():
    data = read_document(EXAMPLE_WAN)
    spec = convert(data, source="x").spec
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    shot = data["shots"][0]
    size = f"{shot['width']}x{shot['height']}"
    assert f"width/height: wan22_ti2v_5b makes 1280x704, 704x1280 only, not {size}" in str(err.value)
    assert f"fps: wan22_ti2v_5b was made for 24 fps, got {shot['fps']}" in str(err.value)
    fixed = with_overrides(spec, ["width=1280", "height=704", "fps=24"])
    assert (fixed["width"], fixed["height"], fixed["fps"]) == (1280, 704, 24)
    assert set(fixed) == set(spec)  # only the keys given or changed: the defaults stay implicit
    assert parse_spec(fixed).dry_run is True


# ---- detection: validate / load_spec ------------------------------------------------------------------


def test_load_spec_refuses_a_scaffold_spec_naming_i2v_import():
    with pytest.raises(SpecError) as err:
        load_spec(EXAMPLE)
    message = str(err.value)
    assert "\n" not in message and "seed-scaffold" in message
    assert f"i2v import {EXAMPLE}" in message
    assert "unknown key" not in message and "Input should be" not in message


def test_validate_on_a_scaffold_file_exits_2_naming_i2v_import(capsys):
    assert main(["validate", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert f"`i2v import {EXAMPLE}`" in err and "name: required" not in err


def test_a_half_ported_scaffold_spec_gets_the_hint_too(tmp_path):
    data = example()
    data["name"] = "ported"
    data["scenes"] = [{"visual_prompt": "a city", "duration_s": 1.0}]
    path = tmp_path / "ported.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="i2v import"):
        load_spec(path)


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.yaml")), ids=lambda p: p.name)
def test_this_projects_job_files_are_not_taken_for_scaffold_specs(path):
    from i2v_dagster.specfile import read_spec_file

    assert not looks_like_scaffold(read_spec_file(path))


# ---- i2v import -----------------------------------------------------------------------------------------


def test_import_writes_run_config_that_validates_and_refuses_to_overwrite(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["import", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    conversion = convert(example(), source=str(EXAMPLE), base_dir=EXAMPLE.parent)
    for note in conversion.notes:
        assert str(note) in out
    written = tmp_path / "jobs" / f"{conversion.name}.yaml"
    raw = read_document(written)
    assert raw["ops"]["script"]["config"] == conversion.spec
    assert load_spec(written) == parse_spec(conversion.spec)
    assert f"#   {conversion.notes[0]}" in written.read_text()
    before = written.read_bytes()

    assert main(["import", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert f"{Path('jobs') / written.name} exists" in err and "--force" in err
    assert written.read_bytes() == before

    assert main(["import", str(EXAMPLE), "--force", "--set", "fps=12"]) == 0
    assert load_spec(written).fps == 12
    assert [p.name for p in written.parent.iterdir()] == [written.name]  # no temporary left behind

    other = tmp_path / "elsewhere" / "city.yaml"
    assert main(["import", str(EXAMPLE), "--out", str(other), "--name", "city"]) == 0
    assert load_spec(other).name == "city"


def test_import_refuses_what_the_real_model_cannot_make_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["import", str(EXAMPLE_WAN)]) == 2
    err = capsys.readouterr().err
    assert "width/height: wan22_ti2v_5b makes 1280x704, 704x1280 only" in err and "--set" in err
    assert not (tmp_path / "jobs").exists()
    args = ["import", str(EXAMPLE_WAN), "--set", "width=1280", "--set", "height=704", "--set", "fps=24"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "wan22_ti2v_5b -> mock_video" in out
    assert main(["validate", "jobs/example-wan.yaml"]) == 0
    assert "models.video.adapter wan22_ti2v_5b -> mock_video" in capsys.readouterr().out


def test_import_of_an_unknown_model_exits_2_with_one_line(capsys, tmp_path):
    path = tmp_path / "sora.yaml"
    path.write_text(yaml.safe_dump(_set(example(), "model.id", "sora")))
    assert main(["import", str(path), "--out", str(tmp_path / "o.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.id: unknown video model 'sora'" in err
    assert not (tmp_path / "o.yaml").exists()


# ---- dry run: rehearsal -------------------------------------------------------------------------------


def _job(name: str, **changes: Any) -> JobSpec:
    spec = load_spec(JOBS / f"{name}.yaml", check_extras=False)  # the rules, on any install
    return JobSpec.model_validate({**spec.model_dump(), "dry_run": True, **changes})


def test_parse_spec_keeps_a_dry_run_spec_as_written():
    spec = _job("cogvideox15_5b_i2v")
    again = parse_spec(spec.model_dump())
    assert again.dry_run is True and again.models.video.adapter == "cogvideox15_5b_i2v"


@pytest.mark.parametrize("job", ["cogvideox15_5b_i2v", "cogvideox_5b_i2v", "wan22_ti2v_5b", "hunyuan_i2v"])
def test_rehearsal_swaps_every_real_adapter_and_keeps_size_fps_and_frames(job):
    spec = _job(job)
    lines: list[str] = []
    rehearsed = rehearsal(spec, log=lines.append)
    for role in ROLES:
        before, after = getattr(spec.models, role), getattr(rehearsed.models, role)
        assert after.adapter in MOCKS
        if before.adapter not in MOCKS:
            assert after == type(after)(adapter=after.adapter)  # model, revision, quantization... defaults
            assert any(f"models.{role}.adapter {before.adapter} -> {after.adapter}" in line for line in lines)
    assert rehearsed.models.scorer.adapter == "none" and rehearsed.models.video.adapter == "mock_video"
    assert (rehearsed.width, rehearsed.height, rehearsed.fps) == (spec.width, spec.height, spec.fps)
    assert rehearsed.scenes == spec.scenes and rehearsed.seed == spec.seed and rehearsed.dry_run
    real = max_clip_frames(spec)
    mock = get_adapter_info("mock_video").constraints_for(settings_for(rehearsed.models.video)).usable_frames
    assert rehearsed.max_clip_frames == min(real, mock)
    said = any(f"max_clip_frames {mock}" in line and str(real) in line for line in lines)
    assert said is (real > mock)
    assert spec_problems(rehearsed, check_files=False) == []
    assert rehearsal(rehearsed) == rehearsed
    assert spec.models.video.adapter == job  # the spec itself is untouched


def test_rehearsal_refuses_a_size_the_real_model_cannot_make():
    spec = _job("wan22_ti2v_5b", width=720, height=480)  # 720 is no multiple of 32; the mocks would take it
    assert get_adapter_info("mock_video").constraints.check("mock_video", width=720, height=480, fps=24) == []
    with pytest.raises(SpecError) as err:
        rehearsal(spec)
    assert "width/height: wan22_ti2v_5b makes 1280x704, 704x1280 only, not 720x480" in str(err.value)


def test_rehearsal_keeps_mocks_and_the_spec_writer_as_they_are():
    spec = parse_spec(
        {
            "name": "m",
            "dry_run": True,
            "width": 160,
            "height": 96,
            "scenes": [{"visual_prompt": "a boat"}],
            "models": {"video": {"adapter": "mock_video", "options": {"steps": 3}}},
        }
    )
    lines: list[str] = []
    assert rehearsal(spec, log=lines.append) == spec
    assert lines == ["dry run: every adapter is already a mock (or the spec writer)"]


def test_validate_says_a_spec_is_a_dry_run(capsys, monkeypatch):
    assert main(["validate", str(JOBS / "hunyuan_i2v.yaml"), "--set", "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert "dry run:" in out and "hunyuan_i2v -> mock_video" in out and "clip -> none" in out
    monkeypatch.setattr("i2v_dagster.extras.missing", lambda modules: [])  # as on a [models] install
    assert main(["validate", str(JOBS / "hunyuan_i2v.yaml")]) == 0
    assert "dry run" not in capsys.readouterr().out


# ---- end to end ---------------------------------------------------------------------------------------


def _clip_records(instance: dg.DagsterInstance, run_id: str) -> list[dict[str, Any]]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    out = []
    for record in records:
        mat = record.event_log_entry.dagster_event.event_specific_data.materialization
        if mat.asset_key == dg.AssetKey("clip"):
            out.append({k: v.value for k, v in mat.metadata.items()})
    return out


@pytest.mark.slow
def test_the_scaffold_example_renders_as_a_dry_run(tmp_path):
    data = example()
    data["dry_run"] = True
    data["output_root"] = str(tmp_path)
    conversion = convert(data, source=str(EXAMPLE))
    spec = parse_spec(conversion.spec)
    with dg.instance_for_test() as instance:
        result = render(instance, conversion.spec)
        assert result.success
        clips = _clip_records(instance, result.run_id)
    root = tmp_path / spec.name
    stored = json.loads((root / "spec.json").read_text())
    assert stored["dry_run"] is True
    assert clips and {c["adapter"] for c in clips} == {"mock_video"} == {c["model_id"] for c in clips}
    from i2v_dagster.media.video import probe

    info = probe(root / "final" / f"{spec.name}.mp4")
    assert (info.video.width, info.video.height) == (spec.width, spec.height)
    timeline = json.loads((root / "timeline.json").read_text())
    assert info.video.frames == sum(s["frames"] for s in timeline["scenes"])
    assert info.video.frames == sum(math.ceil(s.duration_s * spec.fps) for s in spec.scenes)


@pytest.mark.slow
def test_a_real_jobs_rehearsal_renders_on_the_mocks(tmp_path):
    data = read_document(EXAMPLE_WAN)
    data["output_root"] = str(tmp_path)
    data["shots"][0] |= {"width": 256, "height": 160, "fps": 24, "duration_seconds": 2.5}
    converted = convert(data, source=str(EXAMPLE_WAN)).spec
    converted["models"]["video"]["options"] = {"any_size": True}  # small, so the test stays quick
    spec = parse_spec(converted)
    assert spec.dry_run and spec.models.video.adapter == "wan22_ti2v_5b"
    rehearsed = rehearsal(spec)
    with dg.instance_for_test() as instance:
        result = render(instance, rehearsed.model_dump(mode="json"))
        assert result.success
        clips = _clip_records(instance, result.run_id)
    assert {c["adapter"] for c in clips} == {"mock_video"}
    assert len(clips) == math.ceil(2.5 * 24 / rehearsed.max_clip_frames) > 1
    assert all(c["frames"] <= rehearsed.max_clip_frames for c in clips)


@pytest.mark.slow
def test_i2v_run_says_it_is_a_dry_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["import", str(EXAMPLE), "--set", "dry_run=true", "--set", f"outputs_root={tmp_path}"]) == 0
    capsys.readouterr()
    assert main(["run", "jobs/example-mock.yaml", "--set", "width=160", "--set", "height=96"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run:") and "SUCCESS" in out


@pytest.mark.slow
def test_a_real_dry_run_job_renders_on_the_mocks_through_dagster(tmp_path):
    data = read_document(EXAMPLE_WAN)
    data["output_root"] = str(tmp_path)
    data["shots"][0] |= {"width": 256, "height": 160, "fps": 24, "duration_seconds": 2.5}
    spec = convert(data, source=str(EXAMPLE_WAN)).spec
    spec["models"]["video"]["options"] = {"any_size": True}  # small, so the test stays quick
    assert spec["dry_run"] is True and spec["models"]["video"]["adapter"] == "wan22_ti2v_5b"
    with dg.instance_for_test() as instance:
        result = render(instance, spec)
        clips = _clip_records(instance, result.run_id)
    stored = json.loads((tmp_path / spec["name"] / "spec.json").read_text())
    assert stored["dry_run"] is True and stored["models"]["video"]["adapter"] == "wan22_ti2v_5b"
    assert result.success
    assert clips and {c["adapter"] for c in clips} == {"mock_video"}
