"""Durable videos: resume from the first missing clip, re-make only what an edit changed, survive a killed
run, and re-make bad clips automatically."""

from __future__ import annotations

import json
import signal
import time
import zipfile
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml

from i2v_dagster.media.video import read_frames
from i2v_dagster_tests.helpers import mock_spec, project_home, render, spawn_i2v, step_failure_message

pytestmark = pytest.mark.slow  # each test renders whole videos, some twice

ROOT = Path(__file__).resolve().parents[1]
SIX = [
    {
        "narration": f"Part {i}: the boat sails on.",
        "visual_prompt": f"a paper boat, part {i}",
        "motion_prompt": m,
    }
    for i, m in enumerate(["push in", "pan left", "pan right", "drift", "pull back", "tilt up"])
]


@pytest.fixture()
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def six_clips(name: str, outputs: Path, **overrides) -> dict:
    """Six narrated scenes of one clip each (160x96, 12 fps)."""
    return mock_spec(name, outputs, scenes=[dict(s) for s in SIX], max_clip_frames=26, **overrides)


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("clip_*")) if not p.name.startswith(".")}


def by_clip(times: dict[str, int], index: int) -> dict[str, int]:
    return {k: v for k, v in times.items() if k.startswith(f"clip_{index:03d}")}


def messages(instance, run_id: str) -> list[str]:
    return [r.event_log_entry.user_message for r in instance.get_records_for_run(run_id).records]


def clip_records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("clip_*.json"))]


def test_a_failed_run_resumes_at_the_first_missing_clip(instance, tmp_path):
    # clips 0-2 quick; the 4th generation (clip 3) takes 4 s against a 1 s limit and fails the run
    spec = six_clips("resume", tmp_path, clip_time_limit_s=1.0)
    spec["models"] = {
        "video": {"adapter": "mock_video", "options": {"steps": 4, "seconds_per_step": 1.0, "slow_after": 3}}
    }
    first = render(instance, spec)
    assert not first.success
    assert "clip 003" in step_failure_message(instance, first.run_id)
    clips = tmp_path / "resume" / "clips"
    assert sorted(p.name for p in clips.glob("clip_*.json")) == [f"clip_{i:03d}.json" for i in range(3)]
    before = mtimes(clips)
    # the same spec again: the model's first generation in this run is clip 3, which is quick again
    second = render(instance, spec)
    assert second.success
    after = mtimes(clips)
    for i in range(3):
        assert by_clip(after, i) == by_clip(before, i)  # untouched on disk
    log = messages(instance, second.run_id)
    assert [f"reused clip {i:03d}" in " ".join(log) for i in range(6)] == [True] * 3 + [False] * 3
    mat = second.asset_materializations_for_node("clips")
    made = next(m for m in mat if m.asset_key == dg.AssetKey("clips")).metadata
    assert made["reused_clips"].value == ["000", "001", "002"] and made["made_clips"].value == 3
    timeline = json.loads((tmp_path / "resume" / "timeline.json").read_text())
    final = read_frames(tmp_path / "resume" / "final" / "resume.mp4")
    assert len(final) == sum(c["frames"] for c in timeline["clips"])


@pytest.mark.parametrize(("mode", "remade"), [("last_frame", [4, 5]), ("keyframe", [4])])
def test_editing_scene_4_remakes_only_what_it_changed(instance, tmp_path, mode, remade):
    spec = six_clips("edit", tmp_path, chain_mode=mode)
    assert render(instance, spec).success
    clips = tmp_path / "edit" / "clips"
    before = mtimes(clips)
    keys_before = [r["content_key"] for r in clip_records(clips)]
    spec["scenes"][4]["motion_prompt"] = "a slow spin"
    assert render(instance, spec).success
    after = mtimes(clips)
    changed = [i for i in range(6) if by_clip(after, i) != by_clip(before, i)]
    assert changed == remade
    keys_after = [r["content_key"] for r in clip_records(clips)]
    assert [i for i in range(6) if keys_before[i] != keys_after[i]] == remade


def test_clips_no_longer_in_the_plan_are_removed_and_reported(instance, tmp_path):
    spec = six_clips("shorter", tmp_path)
    assert render(instance, spec).success
    spec["scenes"] = spec["scenes"][:4]
    result = render(instance, spec)
    assert result.success
    clips = tmp_path / "shorter" / "clips"
    assert sorted(p.name for p in clips.glob("clip_*.json")) == [f"clip_{i:03d}.json" for i in range(4)]
    stale = [
        r.event_log_entry.dagster_event.event_specific_data.asset_observation
        for r in instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION
        ).records
    ]
    assert sorted(o.partition for o in stale) == ["004|shorter", "005|shorter"]


def test_a_clip_bad_on_the_first_attempt_passes_on_the_second(instance, tmp_path):
    spec = six_clips("gate", tmp_path)
    spec["scenes"] = spec["scenes"][:2]
    spec["models"] = {"video": {"adapter": "mock_video", "options": {"bad_attempts": [1]}}}
    result = render(instance, spec)
    assert result.success
    for record in clip_records(tmp_path / "gate" / "clips"):
        first, second = record["attempts"]
        assert {"broken_frames", "motion"} <= set(first["failed"]) and second["failed"] == []
        assert first["seed"] == record["plan_seed"] and second["seed"] == record["seed"] != first["seed"]
        assert first["values"]["motion"] == 0.0 and second["values"]["motion"] > 0.05


def test_a_clip_bad_on_every_attempt_fails_the_run_naming_it(instance, tmp_path):
    spec = six_clips("hopeless", tmp_path, max_attempts=2)
    spec["models"] = {"video": {"adapter": "mock_video", "options": {"bad_attempts": [1, 2]}}}
    result = render(instance, spec)
    assert not result.success
    message = step_failure_message(instance, result.run_id)
    assert "clip 000 of video 'hopeless'" in message and "all 2 attempts failed" in message
    assert "broken_frames" in message and "motion" in message
    assert not (tmp_path / "hopeless" / "clips" / "clip_000.mp4").exists()


def test_kill_9_mid_clip_then_rerun_resumes_and_is_not_blocked(tmp_path):
    """The run's process is killed during clip 4; the next run (same instance, `gpu` pool at 1) is not
    blocked by the dead run's pool slot, resumes at clip 4, and leaves no temporary file behind."""
    home = project_home(tmp_path / "home")
    spec = six_clips("killed", tmp_path / "out")
    spec["models"] = {"video": {"adapter": "mock_video", "options": {"steps": 4, "seconds_per_step": 0.5}}}
    spec_file = tmp_path / "killed.yaml"
    spec_file.write_text(yaml.safe_dump({"ops": {"script": {"config": spec}}}))
    clips = tmp_path / "out" / "killed" / "clips"
    first = spawn_i2v(home, "run", str(spec_file))
    deadline = time.monotonic() + 120
    while not (clips / "clip_003.json").exists():
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "clip 3 never finished"
        time.sleep(0.05)
    time.sleep(0.7)  # clip 4 is being made
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (clips / "clip_004.json").exists()
    before = mtimes(clips)
    second = spawn_i2v(home, "run", str(spec_file))
    out, _ = second.communicate(timeout=180)
    assert second.returncode == 0, out
    assert "marked failed and its pool slots freed" in out
    after = mtimes(clips)
    for i in range(4):
        assert by_clip(after, i) == by_clip(before, i)
    assert [f.name for f in (tmp_path / "out" / "killed").rglob(".*tmp-*")] == []
    timeline = json.loads((tmp_path / "out" / "killed" / "timeline.json").read_text())
    final = read_frames(tmp_path / "out" / "killed" / "final" / "killed.mp4")
    assert len(final) == sum(c["frames"] for c in timeline["clips"])
    bundles = sorted((tmp_path / "out" / "killed" / "bundles").glob("*.zip"))
    assert len(bundles) == 1
    with zipfile.ZipFile(bundles[0]) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert (
            zf.read("final/killed.mp4") == (tmp_path / "out" / "killed" / "final" / "killed.mp4").read_bytes()
        )
    assert manifest["run"]["status"] == "STARTED"  # exported while the run is still going
    frames = np.asarray(final)
    assert frames.shape[1:3] == (96, 160)


def test_a_clip_copied_from_another_index_must_match_that_clips_record(instance, tmp_path, monkeypatch):
    """Reuse across indices copies the stored clip; a source rewritten between the check and the copy is not
    taken (the target stays as it was), and an intact one is copied with the source record's hashes."""
    import dataclasses

    from i2v_dagster import render as render_module
    from i2v_dagster.render import ClipMaker
    from i2v_dagster.state import VideoState

    spec = six_clips("copy", tmp_path, chain_mode="keyframe")
    assert render(instance, spec).success
    clips = tmp_path / "copy" / "clips"
    maker = ClipMaker(VideoState.load(tmp_path / "copy", "copy"))
    timeline = maker.state.timeline()
    first = maker.prepare(timeline.clips[0])
    # clip 001 asked for with clip 000's key: only clip 000's stored files can serve it
    wanted = dataclasses.replace(first, plan=timeline.clips[1])
    before = (clips / "clip_001.mp4").read_bytes()

    real_copy = render_module.shutil.copyfile

    def rewritten_meanwhile(source, target):
        real_copy(source, target)
        with open(target, "ab") as out:
            out.write(b"rewritten by another step")

    monkeypatch.setattr(render_module.shutil, "copyfile", rewritten_meanwhile)
    assert maker.reuse(wanted) is None
    assert (clips / "clip_001.mp4").read_bytes() == before
    monkeypatch.setattr(render_module.shutil, "copyfile", real_copy)

    made = maker.reuse(wanted)
    assert made is not None and made.reused and made.record["copied_from"] == "000"
    assert (clips / "clip_001.mp4").read_bytes() == (clips / "clip_000.mp4").read_bytes()
    source = json.loads((clips / "clip_000.json").read_text())["files"]
    assert made.record["files"]["clips/clip_001.mp4"] == source["clips/clip_000.mp4"]
    assert json.loads((clips / "clip_001.json").read_text())["copied_from"] == "000"
