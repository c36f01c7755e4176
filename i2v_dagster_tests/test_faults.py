"""Faults: a broken input never replaces a good final, bundle or report; two runs of one video never mix;
the clip's alarm never cuts a storage write; files have one mode; the manifest holds no machine paths."""

from __future__ import annotations

import json
import shutil
import stat
import time
import wave
import zipfile
from pathlib import Path

import dagster as dg
import pytest
import yaml

from i2v_dagster_tests.helpers import (
    mock_spec,
    project_home,
    render,
    run_config,
    spawn_i2v,
    step_failure_message,
)

pytestmark = pytest.mark.slow  # whole videos

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def materialize(instance, asset: str, video: str) -> dg.ExecuteInProcessResult:
    from i2v_dagster.definitions import defs

    return dg.materialize(
        list(defs.assets),
        selection=[asset],
        instance=instance,
        resources=dict(defs.resources),
        partition_key=video,
        raise_on_error=False,
    )


def snapshot(root: Path) -> dict[str, bytes]:
    """The bytes of the final, every bundle and the report."""
    wanted = [root / "final" / f"{root.name}.mp4", root / "verify" / "report.html"]
    wanted += sorted((root / "bundles").glob("*.zip"))
    return {str(p.relative_to(root)): p.read_bytes() for p in wanted}


def truncate_wav(path: Path) -> None:
    with wave.open(str(path), "rb") as w:
        params, frames = w.getparams(), w.readframes(w.getnframes() // 2)
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(frames)


def cut_timeline(path: Path) -> None:
    data = json.loads(path.read_text())
    data["clips"] = data["clips"][:3]
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("label", "asset", "damage", "needle"),
    [
        ("narration deleted", "stitched_video", lambda r, o: (r / "narration.wav").unlink(),
         "narration.wav: missing, but the spec narrates (check: narration present)"),
        ("narration truncated", "stitched_video", lambda r, o: truncate_wav(r / "narration.wav"),
         "narration.wav: changed since `narration` wrote it (check: narration sha256)"),
        ("timeline cut", "stitched_video", lambda r, o: cut_timeline(r / "timeline.json"),
         "timeline.json: changed since `narration` planned it (check: timeline sha256)"),
        ("clip from another video", "stitched_video",
         lambda r, o: shutil.copyfile(o / "other" / "clips" / "clip_001.mp4", r / "clips" / "clip_001.mp4"),
         "clips/clip_001.mp4: the file is not the one its record describes (check: clip sha256"),
        ("clip of another size", "stitched_video",
         lambda r, o: shutil.copyfile(o / "big" / "clips" / "clip_001.mp4", r / "clips" / "clip_001.mp4"),
         "clips/clip_001.mp4: the file is not the one its record describes (check: clip sha256"),
        ("record deleted before bundling", "bundle", lambda r, o: (r / "clips" / "clip_001.json").unlink(),
         "no record for planned clip(s) 001"),
        ("final swapped before bundling", "bundle",
         lambda r, o: shutil.copyfile(o / "other" / "final" / "other.mp4", r / "final" / "main.mp4"),
         "final/main.mp4: not the file `stitched_video` recorded (check: final sha256)"),
    ],
)  # fmt: skip
def test_a_broken_input_fails_the_step_naming_it_and_keeps_the_old_outputs(
    instance, tmp_path, label, asset, damage, needle
):
    assert render(instance, mock_spec("main", tmp_path)).success
    assert render(instance, mock_spec("other", tmp_path, seed=99)).success
    assert render(instance, mock_spec("big", tmp_path, width=320, height=192)).success
    root = tmp_path / "main"
    before = snapshot(root)
    damage(root, tmp_path)
    after_damage = snapshot(root)  # a damaged final is part of the case, not of the step's doing
    result = materialize(instance, asset, "main")
    assert not result.success
    message = step_failure_message(instance, result.run_id)
    assert needle in message, message
    assert snapshot(root) == after_damage
    assert [k for k in before if k.startswith("bundles/")] == [
        k for k in after_damage if k.startswith("bundles/")
    ]


def test_two_runs_of_one_video_never_mix(tmp_path):
    """Run A holds the video; run B of the same video, started meanwhile, is refused naming A; A's bundle
    holds only A's spec, keyframes and clips."""
    home = project_home(tmp_path / "home")
    first = mock_spec("shared", tmp_path / "out", seed=1)
    first["models"] = {"video": {"adapter": "mock_video", "options": {"steps": 4, "seconds_per_step": 0.3}}}
    spec_file = tmp_path / "a.yaml"
    spec_file.write_text(yaml.safe_dump(run_config(first)))
    run_a = spawn_i2v(home, "run", str(spec_file), "--progress", "off")
    clips = tmp_path / "out" / "shared" / "clips"
    deadline = time.monotonic() + 120
    while not (clips / "clip_000.json").exists():
        assert run_a.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance:
            second = render(instance, mock_spec("shared", tmp_path / "out", seed=2))
            assert not second.success
            holder = next(
                r.dagster_run.run_id
                for r in instance.get_run_records()
                if r.dagster_run.run_id != second.run_id
            )
            records = instance.get_records_for_run(second.run_id).records
            errors = [
                getattr(r.event_log_entry.dagster_event.event_specific_data, "error", None)
                for r in records
                if r.event_log_entry.dagster_event is not None
            ]
            failure = "\n".join(e.to_string() for e in errors if e is not None)
            assert f"video 'shared' is being written by run {holder}" in failure
            started = instance.get_records_for_run(second.run_id, of_type=dg.DagsterEventType.STEP_START)
            assert started.records == []  # B ran no step: it made nothing
    out, _ = run_a.communicate(timeout=180)
    assert run_a.returncode == 0, out
    bundle = next((tmp_path / "out" / "shared" / "bundles").glob("*.zip"))
    with zipfile.ZipFile(bundle) as zf:
        spec = json.loads(zf.read("spec.json"))
        manifest = json.loads(zf.read("manifest.json"))
        recorded = {name: info["sha256"] for name, info in manifest["files"].items()}
        import hashlib

        for name in zf.namelist():
            if name != "manifest.json":
                assert hashlib.sha256(zf.read(name)).hexdigest() == recorded[name], name
        clip_seeds = [
            json.loads(zf.read(n))["plan_seed"]
            for n in sorted(zf.namelist())
            if n.endswith(".json") and "/clip_" in n
        ]
    assert spec["seed"] == 1
    from i2v_dagster.spec import derive_seed

    assert clip_seeds == [derive_seed(1, f"clip:{i}") for i in range(len(clip_seeds))]


def test_the_clip_alarm_never_cuts_an_event_write(instance, tmp_path, monkeypatch):
    """Every step line is logged (throttling off) while a 1 s limit fires mid-clip: the alarm is held while
    Dagster writes, so every line the callback finished is in the event log and none is half-written."""
    from i2v_dagster.progress import Progress

    monkeypatch.setattr(Progress, "should_report", lambda self, step, total: True)
    spec = mock_spec("alarm", tmp_path, clip_time_limit_s=1.0)
    spec["scenes"] = spec["scenes"][:1]
    spec["models"] = {"video": {"adapter": "mock_video", "options": {"steps": 200, "seconds_per_step": 0.01}}}
    result = render(instance, spec)
    assert not result.success
    assert "ran over its time limit" in step_failure_message(instance, result.run_id)
    lines = [
        r.event_log_entry.user_message
        for r in instance.get_records_for_run(result.run_id).records
        if "step " in (r.event_log_entry.user_message or "") and "of 200" in r.event_log_entry.user_message
    ]
    steps = [int(line.split("step ")[1].split(" of")[0]) for line in lines]
    assert len(steps) > 20 and steps == list(range(1, len(steps) + 1))  # none lost, none out of order


def test_files_share_one_mode_and_the_manifest_holds_no_machine_paths(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert render(instance, mock_spec("modes", tmp_path)).success
    root = tmp_path / "modes"
    modes = {stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file() and p.name != ".lock"}
    assert len(modes) == 1, modes
    with zipfile.ZipFile(next((root / "bundles").glob("*.zip"))) as zf:
        text = zf.read("manifest.json").decode()
    manifest = json.loads(text)
    assert str(tmp_path) not in text and str(Path.home()) + "/" not in text
    assert manifest["hf_cache"]["HF_HOME"] == "~/.cache/huggingface"
    assert manifest["run"]["run_config"]["ops"]["script"]["config"]["outputs_root"] == ".."
