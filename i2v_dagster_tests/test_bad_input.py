"""Every bad input is refused before any work, naming the key or the file, in ``i2v validate`` and through
Dagster (``dagster job execute`` and the Launchpad resolve run config the same way, where the spec's rules
run as the config's post-processing): no run, no partition, no file is made."""

from __future__ import annotations

import copy
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from i2v_dagster.cli import main
from i2v_dagster_tests.helpers import mock_spec, run_config

ROOT = Path(__file__).resolve().parents[1]


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (its pixel data is one empty row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def _set(spec: dict, path: str, value) -> dict:
    out = copy.deepcopy(spec)
    target = out
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    if isinstance(target, list):
        target[int(parts[-1])] = value
    else:
        target[parts[-1]] = value
    return out


def files(tmp: Path):
    images = tmp / "images"
    images.mkdir(exist_ok=True)
    (images / "notes.png").write_text("not a picture")
    (images / "empty.png").write_bytes(b"")
    (images / "huge.png").write_bytes(png_claiming(20000, 20000))
    return images


# (label, change to a valid spec, text the one-line error must hold)
def _image(name: str):
    return lambda s, t: {**s, "initial_image": str(files(t) / name)}


def _option(**options):
    return lambda s, t: _set(s, "models.video.options", options)


# (label, change to a valid spec, text the one-line error must hold)
CASES = [
    ("unknown top-level key", lambda s, t: {**s, "colour": "red"}, "colour: unknown key"),
    (
        "unknown nested key",
        lambda s, t: _set(s, "models.video.adaptor", "x"),
        "models.video.adaptor: unknown",
    ),
    ("unknown scene key", lambda s, t: _set(s, "scenes.0.narrator", "x"), "scenes.0.narrator: unknown key"),
    ("bool as a number", lambda s, t: {**s, "fps": True}, "fps: Input should be a valid integer"),
    (
        "infinite limit",
        lambda s, t: {**s, "clip_time_limit_s": float("inf")},
        "clip_time_limit_s: Input should be a finite number",
    ),
    (
        "option of the wrong type",
        _option(seconds_per_step="fast"),
        "models.video.options.seconds_per_step: Input should be a valid number",
    ),
    (
        "absurd steps",
        _option(steps=10**9),
        "models.video.options.steps: Input should be less than or equal to 200",
    ),
    ("unknown option", _option(sped=1), "models.video.options.sped: unknown option of mock_video"),
    (
        "too many scenes",
        lambda s, t: {**s, "scenes": [s["scenes"][0]] * 201},
        "scenes: List should have at most 200 items",
    ),
    (
        "huge narration",
        lambda s, t: _set(s, "scenes.0.narration", "word " * 20_000),
        "scenes.0.narration: String should have at most 2000 characters",
    ),
    (
        "unknown adapter",
        lambda s, t: _set(s, "models.video.adapter", "sora"),
        "models.video.adapter: unknown adapter 'sora'",
    ),
    (
        "initial image is /etc/passwd",
        lambda s, t: {**s, "initial_image": "/etc/passwd"},
        "initial_image: /etc/passwd is not an image",
    ),
    ("initial image is text", _image("notes.png"), "notes.png is not an image"),
    ("initial image is empty", _image("empty.png"), "empty.png is not an image"),
    ("initial image 20000x20000", _image("huge.png"), "huge.png is too large an image"),
    (
        "initial image missing",
        lambda s, t: {**s, "initial_image": str(t / "nope.png")},
        "initial_image: file not found",
    ),
    (
        "outputs root is a file",
        lambda s, t: {**s, "outputs_root": "/etc/passwd"},
        "outputs_root: /etc/passwd exists and is not a folder",
    ),
    (
        "outputs root unwritable",
        lambda s, t: {**s, "outputs_root": "/proc/self"},
        "outputs_root: /proc/self is not a writable folder",
    ),
    ("bad name", lambda s, t: {**s, "name": "../../etc"}, "name: name must match"),
]


@pytest.mark.parametrize(("label", "change", "needle"), CASES, ids=[c[0] for c in CASES])
def test_validate_refuses_naming_the_key(tmp_path, capsys, label, change, needle):
    spec = change(mock_spec("bad", tmp_path / "out"), tmp_path)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(run_config(spec), width=10**7))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("label", "change", "needle"), CASES, ids=[c[0] for c in CASES])
def test_dagster_refuses_before_creating_a_run(tmp_path, label, change, needle):
    spec = change(mock_spec("bad", tmp_path / "out"), tmp_path)
    from i2v_dagster.definitions import render_video_job

    with dg.instance_for_test() as instance:
        with pytest.raises(dg.DagsterInvalidConfigError) as info:
            dg.execute_job(
                dg.reconstructable(render_video_job),
                instance=instance,
                run_config=run_config(spec),
                tags={"dagster/partition": str(spec.get("name", "bad"))},
            )
        message = str(info.value)
        key = needle.split(":")[0].split(".")[-1].split()[-1]
        dagster_types = ("Received unexpected config entry", "not in enum type", "Invalid scalar")
        assert key in message and (needle in message or any(d in message for d in dagster_types)), message
        assert instance.get_run_records() == []
        assert instance.get_dynamic_partitions("videos") == []
    assert not (tmp_path / "out").exists()


YAML_CASES = [
    (
        "duplicate key",
        "ops:\n  script:\n    config:\n      name: a\n      name: b\n",
        "duplicate key ops.script.config.name at line 5, column 7 (first at line 4)",
    ),
    (
        "duplicate key in a list's mapping",
        "scenes:\n  - prompt: a\n    narration: x\n  - prompt: b\n    prompt: c\n",
        "duplicate key scenes.1.prompt at line 5",
    ),
    (
        "alias bomb",
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
        "expands to more than 100,000 values",
    ),
]


def test_a_duplicate_json_key_is_named_by_its_path(tmp_path, capsys):
    path = tmp_path / "spec.json"
    path.write_text('{"name": "a", "scenes": [{"prompt": "x", "narration": "y", "prompt": "z"}]}')
    assert main(["validate", str(path)]) == 2
    assert f"{path}: duplicate key scenes.0.prompt at line 1" in capsys.readouterr().err


@pytest.mark.parametrize(("label", "text", "needle"), YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_validate_refuses_bad_yaml(tmp_path, capsys, label, text, needle):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("SEED=5", "--set SEED: no field 'SEED' in the spec"),
        ("seed.x=1", "--set seed.x: seed holds int 1234, not a mapping"),
        ("scenes.9.narration=x", "--set scenes.9.narration: '9' is not an index of a list of 3"),
        ("fps", "--set 'fps': expected key=value"),
    ],
)
def test_overrides_that_name_no_field_are_refused(capsys, override, needle):
    assert main(["validate", "jobs/example_mock.yaml", "--set", override]) == 2
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "lines"),
    [
        ({"fps": 1000}, ["fps: Input should be less than or equal to 120 (got 1000)"]),
        (
            {"fps": 1000, "name": "Bad Name"},
            [
                "fps: Input should be less than or equal to 120 (got 1000)",
                "name: name must match ^[a-z0-9][a-z0-9_-]{0,63}$ (lowercase letters, digits, '-' and '_'; "
                "no '/', '..' or spaces) (got 'Bad Name')",
            ],
        ),
        ({"colour": "red"}, ['Received unexpected config entry "colour" at path root:ops:script:config.']),
    ],
)
def test_a_refused_run_config_is_told_one_line_per_problem(tmp_path, change, lines):
    from i2v_dagster.definitions import render_video_job
    from i2v_dagster.defs.config import config_error_lines

    config = run_config({**mock_spec("bad", tmp_path), **change})
    with pytest.raises(dg.DagsterInvalidConfigError) as refused:
        dg.validate_run_config(render_video_job(), config)
    assert sorted(config_error_lines(refused.value)) == sorted(lines)
    assert config_error_lines(ValueError("other")) is None


def _duplicate_name(text: str) -> str:
    return text.replace("      name: badfps\n", "      name: badfps\n      name: other\n", 1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "refusal"),
    [
        (None, "error: invalid run config:\n  fps: Input should be less than or equal to 120 (got 1000)\n"),
        (
            _duplicate_name,
            "error: invalid run config:\n  {path}: duplicate key ops.script.config.name at line 5, column 7 "
            "(first at line 4)\n",
        ),
    ],
    ids=["rule", "duplicate key"],
)
def test_dagster_job_execute_refuses_in_its_first_line_and_makes_nothing(tmp_path, edit, refusal):
    """Dagster's CLI reads the file with its own YAML loader (the last of two equal keys wins); the spec's
    config re-reads the files named by ``-c`` strictly, so a duplicate key is refused before a run exists."""
    home = tmp_path / "home"
    home.mkdir()
    spec = mock_spec("badfps", tmp_path / "out", fps=1000 if edit is None else 12)
    path = tmp_path / "bad.yaml"
    text = yaml.safe_dump(run_config(spec), sort_keys=False)
    path.write_text(edit(text) if edit else text)
    if edit:
        assert yaml.safe_load(path.read_text())["ops"]["script"]["config"]["name"] == "other"
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "i2v_dagster.definitions",
         "-j", "render_video", "-c", str(path), "--tags", '{"dagster/partition": "badfps"}'],
        cwd=ROOT, env={**__import__("os").environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode != 0
    assert refusal.format(path=path) in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "original value" not in out.stderr
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance:
            assert instance.get_run_records() == [] and instance.get_dynamic_partitions("videos") == []
    assert not (tmp_path / "out").exists()


def test_the_config_files_of_a_dagster_command_line_are_found(tmp_path):
    from i2v_dagster.defs.config import cli_config_files

    (tmp_path / "a.yaml").write_text("x: 1")
    (tmp_path / "b.yaml").write_text("x: 2")
    job = ["/venv/bin/dagster", "job", "execute", "-m", "m", "-c", str(tmp_path / "*.yaml")]
    assert cli_config_files(job) == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    assert cli_config_files(["/x/dg", "launch", "--config=f.yaml", "--config", "g.yaml"]) == [
        "f.yaml",
        "g.yaml",
    ]
    assert cli_config_files(["/p/dagster/__main__.py", "job", "execute", "-c", "h.yaml"]) == ["h.yaml"]
    assert cli_config_files(["/venv/bin/pytest", "-c", "pytest.ini"]) == []  # not a Dagster command line


def test_a_real_job_on_an_install_without_the_models_extra_is_refused_in_one_line(monkeypatch):
    import importlib.util

    from i2v_dagster.definitions import render_video_job
    from i2v_dagster.errors import SpecError
    from i2v_dagster.specfile import load_spec, read_spec_file

    real_find_spec = importlib.util.find_spec
    absent = {"torch", "diffusers", "transformers", "open_clip", "sentencepiece"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in absent else real_find_spec(name, *a)
    )
    with pytest.raises(SpecError) as info:
        load_spec("jobs/cogvideox_5b_i2v.yaml")
    lines = str(info.value).splitlines()[1:]
    assert len(lines) == 1 and "models.video.adapter" in lines[0]
    assert "torch" in lines[0] and "[models] extra: pip install -c constraints.txt -e '.[models]'" in lines[0]
    assert load_spec("jobs/cogvideox_5b_i2v.yaml", ["dry_run=true"]).dry_run  # a dry run needs no models
    with pytest.raises(SpecError) as both:  # the adapters' size rules are checked all the same
        load_spec("jobs/cogvideox_5b_i2v.yaml", ["width=640"])
    lines = str(both.value).splitlines()[1:]
    assert "[models] extra" in lines[0]
    assert lines[1:] == ["  width/height: cogvideox_5b_i2v makes 720x480 only, not 640x480"]
    spec = read_spec_file("jobs/cogvideox_5b_i2v.yaml")
    with (
        dg.instance_for_test() as instance,
        pytest.raises(dg.DagsterInvalidConfigError, match=r"\[models\] extra"),
    ):
        dg.execute_job(
            dg.reconstructable(render_video_job),
            instance=instance,
            run_config=run_config(spec),
            tags={"dagster/partition": spec["name"]},
        )
