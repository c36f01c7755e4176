from __future__ import annotations

import importlib.util

import pytest

from i2v_dagster.cli import main


def test_validate_ok_and_overrides(capsys):
    assert main(["validate", "jobs/example_mock.yaml", "--set", "fps=12"]) == 0
    out = capsys.readouterr().out
    assert "valid spec for video 'demo'" in out and "fps: 12" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "models.video.adapter=nope"], "models.video.adapter: unknown adapter 'nope'"),
        (["--set", "fps=0"], "fps: Input should be greater than 0"),
        (["--set", "name=a/b"], "name: name must match"),
        (
            ["--set", "initial_image=/nonexistent/start.png"],
            "initial_image: file not found: /nonexistent/start.png",
        ),
        (["--set", "width=721"], "width: mock_image needs a multiple of 8, got 721"),
    ],
)
def test_validate_bad_input_exits_2_naming_the_field(capsys, args, needle):
    assert main(["validate", "jobs/example_mock.yaml", *args]) == 2
    assert needle in capsys.readouterr().err


def test_validate_missing_file(capsys, tmp_path):
    assert main(["validate", str(tmp_path / "none.yaml")]) == 2
    assert "spec file not found" in capsys.readouterr().err


@pytest.mark.parametrize("job", ["cogvideox_5b_i2v", "cogvideox15_5b_i2v", "wan22_ti2v_5b", "hunyuan_i2v"])
def test_plan_prints_each_gpu_stage_on_the_card_the_job_file_names(capsys, monkeypatch, job):
    from pathlib import Path

    import yaml

    monkeypatch.setattr("i2v_dagster.gpu_plan.current_free_gb", lambda: None)  # as on a machine without a GPU
    target = yaml.safe_load(Path(f"jobs/{job}.yaml").read_text())["ops"]["script"]["config"]["target_gpu_gb"]
    assert main(["plan", f"jobs/{job}.yaml"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"on the {target:g} GB card the spec names" in out[0]
    stages = [line.split(":")[0].strip() for line in out[1:-1]]
    assert stages == ["narration", "keyframes", "clips", "scorer"]
    assert all("est. peak" in line and line.endswith(("fits", ")")) for line in out[1:-1])
    assert f": {job}: " in out[3] and out[-1] == "all stages fit"


def test_plan_of_a_spec_over_the_card_names_the_stage_estimate_and_fix(capsys):
    over = ["--set", "models.video.quantization=none", "--card-gb", "24"]
    assert main(["plan", "jobs/wan22_ti2v_5b.yaml", *over]) == 1
    out = capsys.readouterr().out
    (clips,) = [line for line in out.splitlines() if line.strip().startswith("clips:")]
    assert "does NOT fit; fix: set models.video.quantization: auto" in clips
    assert "est. peak 31.0 GB" in clips and "of 25.0 GB free" in clips
    assert out.splitlines()[-1] == "1 stage(s) do not fit: see the fix above"


def test_doctor_reports_each_part(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "[ok  ] ffmpeg" in out and "H.264 encode ok" in out
    assert "torch" in out and "hf cache" in out and "free" in out
    if importlib.util.find_spec("ollama") is not None:
        assert "[FAIL] ollama" in out and "127.0.0.1:9" in out  # conftest points OLLAMA_HOST at a closed port
    else:  # the quickstart install has no [models] extra
        assert "ollama" in out and "install the [models] extra" in out


def test_adapters_lists_every_role(capsys):
    assert main(["adapters"]) == 0
    out = capsys.readouterr().out
    for name in ("cogvideox_5b_i2v", "wan22_ti2v_5b", "flux_schnell", "bark", "clip", "ollama", "mock_video"):
        assert name in out


@pytest.mark.slow
def test_run_renders_into_the_dagster_home(capsys, tmp_path):
    import os

    code = main(
        [
            "run",
            "jobs/example_mock.yaml",
            "--set",
            f"outputs_root={tmp_path}",
            "--set",
            "width=160",
            "--set",
            "height=96",
            "--set",
            "max_clip_frames=24",
            "--set",
            "fps=12",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SUCCESS" in out and f"video:   {tmp_path / 'demo' / 'final' / 'demo.mp4'}" in out
    assert (tmp_path / "demo" / "final" / "demo.mp4").is_file()
    assert os.path.isdir(os.path.join(os.environ["DAGSTER_HOME"], "storage"))


@pytest.mark.slow
def test_run_in_a_terminal_shows_a_live_progress_bar(tmp_path):
    """`i2v run` in a pseudo-terminal: rich's bar with the phase, clip i of N with its step, and the ETA."""
    import os
    import pty
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    home = tmp_path / "home"
    home.mkdir()
    args = ["--set", f"outputs_root={tmp_path}", "--set", "width=160", "--set", "height=96"]
    args += ["--set", "fps=12", "--set", "max_clip_frames=12"]
    args += ["--set", "models.video.options.seconds_per_step=0.05", "--set", "models.video.options.steps=6"]
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "i2v_dagster.cli", "run", "jobs/example_mock.yaml", *args],
        cwd=root,
        env={**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(root), "COLUMNS": "160"},
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "━" in screen  # the bar itself
    assert "clip 3 of" in screen and "step 6 of 6" in screen and "ETA" in screen
    assert "SUCCESS" in screen and "video:" in screen
    assert "ASSET_MATERIALIZATION" not in screen  # Dagster's debug lines stay out of the way
