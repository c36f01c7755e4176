"""render_video end to end on mock models, on a real (temporary) Dagster instance."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from i2v_dagster.media.audio import wav_duration
from i2v_dagster.media.video import probe, read_frames
from i2v_dagster_tests.helpers import materialize_clip, mock_spec, render, step_failure_message

pytestmark = pytest.mark.slow  # each test renders whole videos


@pytest.fixture()
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_three_scene_video_end_to_end(instance, tmp_path):
    spec = mock_spec("boat", tmp_path)
    result = render(instance, spec)
    assert result.success
    root = tmp_path / "boat"
    info = probe(root / "final" / "boat.mp4")
    assert info.video is not None and info.audio is not None
    narration = wav_duration(root / "narration.wav")
    assert abs(info.video.duration_s - narration) <= 1 / spec["fps"]
    assert abs(info.audio.duration_s - info.video.duration_s) <= 1 / spec["fps"]
    timeline = json.loads((root / "timeline.json").read_text())
    assert info.video.frames == sum(s["frames"] for s in timeline["scenes"])
    assert len(timeline["scenes"]) == 3 and len(timeline["clips"]) >= 3
    bundles = list((root / "bundles").glob("*.zip"))
    assert [b.name for b in bundles] == [f"boat-{result.run_id[:8]}.zip"]
    with zipfile.ZipFile(bundles[0]) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
    assert {"final/boat.mp4", "narration.wav", "spec.json", "clips/clip_000.mp4"} <= names
    assert all(not Path(n).is_absolute() and ".." not in Path(n).parts for n in manifest["files"])
    assert set(manifest["files"]) == names - {"manifest.json"}
    assets = {m["asset"] for m in manifest["materializations"]}
    assert {"script", "narration", "keyframes", "clips", "stitched_video", "clip"} <= assets
    assert manifest["run"]["run_id"] == result.run_id
    # the clip partitions were materialized by the clips step, one per planned clip
    clip_keys = instance.get_materialized_partitions(dg.AssetKey("clip"))
    assert {f"{i:03d}|boat" for i in range(len(timeline["clips"]))} <= set(clip_keys)


def test_last_frame_chain_conditions_on_the_exact_last_frame_and_repeats_none(instance, tmp_path):
    assert render(instance, mock_spec("chain", tmp_path)).success
    root = tmp_path / "chain"
    clips = root / "clips"
    records = sorted(clips.glob("clip_*.json"))
    assert len(records) >= 3
    for i in range(1, len(records)):
        record = json.loads(records[i].read_text())
        assert record["conditioning"] == f"clips/clip_{i - 1:03d}_last.png"
        previous_last = _png(clips / f"clip_{i - 1:03d}_last.png")
        digest = __import__("hashlib").sha256(previous_last.tobytes()).hexdigest()
        assert record["conditioning_sha256"] == digest  # conditioned on exactly those pixels
        assert record["dropped_first_frame"] and record["generated_frames"] == record["frames"] + 1
    # the final video: no frame repeated at any join, and every join measured as continuous
    timeline = json.loads((root / "timeline.json").read_text())
    frames = read_frames(root / "final" / "chain.mp4")
    assert len(frames) == sum(c["frames"] for c in timeline["clips"])
    for clip in timeline["clips"][1:]:
        at = clip["start_frame"]
        diff = np.abs(frames[at].astype(int) - frames[at - 1]).mean()
        assert diff > 1.0, f"join before frame {at} repeats a frame (mean diff {diff:.2f})"


def test_same_spec_gives_identical_outputs(instance, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert render(instance, mock_spec("same", a)).success
    assert render(instance, mock_spec("same", b)).success
    for kf in sorted((a / "same" / "keyframes").glob("*.png")):
        assert kf.read_bytes() == (b / "same" / "keyframes" / kf.name).read_bytes()
    for clip in sorted((a / "same" / "clips").glob("*.mp4")):
        assert np.array_equal(read_frames(clip), read_frames(b / "same" / "clips" / clip.name))


def test_keyframe_chain_mode_starts_each_scene_from_its_keyframe(instance, tmp_path):
    assert render(instance, mock_spec("kf", tmp_path, chain_mode="keyframe")).success
    timeline = json.loads((tmp_path / "kf" / "timeline.json").read_text())
    for clip in timeline["clips"]:
        record = json.loads((tmp_path / "kf" / "clips" / f"clip_{clip['index']:03d}.json").read_text())
        if clip["first_of_scene"]:
            assert record["conditioning"] == f"keyframes/keyframe_{clip['scene']:03d}.png"
        else:
            assert record["conditioning"] == f"clips/clip_{clip['index'] - 1:03d}_last.png"


def test_single_clip_rematerialized_from_stored_last_frame(instance, tmp_path):
    assert render(instance, mock_spec("one", tmp_path)).success
    clips = tmp_path / "one" / "clips"
    before = (clips / "clip_001.mp4").stat().st_mtime_ns
    untouched = (clips / "clip_002.mp4").stat().st_mtime_ns
    # nothing changed: the clip is kept as it is, and said so
    same = materialize_clip(instance, "one", 1)
    assert same.success
    assert same.asset_materializations_for_node("clip")[0].metadata["status"].value == "unchanged"
    assert (clips / "clip_001.mp4").stat().st_mtime_ns == before
    # its file lost: re-made, from the stored last frame of clip 0
    (clips / "clip_001.mp4").unlink()
    result = materialize_clip(instance, "one", 1)
    assert result.success
    assert result.asset_materializations_for_node("clip")[0].metadata["status"].value == "made"
    assert (clips / "clip_001.mp4").stat().st_mtime_ns > before
    assert (clips / "clip_002.mp4").stat().st_mtime_ns == untouched
    stored_last = _png(clips / "clip_000_last.png")
    record = json.loads((clips / "clip_001.json").read_text())
    assert record["conditioning_sha256"] == __import__("hashlib").sha256(stored_last.tobytes()).hexdigest()
    mat = result.asset_materializations_for_node("clip")[0]
    assert mat.metadata["conditioning"].value == "clips/clip_000_last.png"
    # a following stitched_video picks the re-made clip up
    from i2v_dagster.definitions import defs

    stitched = dg.materialize(
        list(defs.assets),
        selection=["stitched_video"],
        instance=instance,
        resources=dict(defs.resources),
        partition_key="one",
    )
    assert stitched.success
    keys = stitched.asset_materializations_for_node("stitched_video")[0].metadata["clip_content_keys"].value
    assert keys[1] == json.loads((clips / "clip_001.json").read_text())["content_key"][:12]
    frames = read_frames(tmp_path / "one" / "final" / "one.mp4")
    first = json.loads((tmp_path / "one" / "timeline.json").read_text())["clips"][1]["start_frame"]
    clip1 = read_frames(clips / "clip_001.mp4")
    assert np.array_equal(frames[first : first + len(clip1)], clip1)


def test_clip_over_its_limit_fails_fast_and_keeps_earlier_clips(instance, tmp_path):
    spec = mock_spec("slow", tmp_path, clip_time_limit_s=1.0)
    spec["models"] = {
        "video": {
            "adapter": "mock_video",
            "options": {"steps": 40, "seconds_per_step": 0.25, "slow_after": 1},
        }
    }
    started = time.monotonic()
    result = render(instance, spec)
    elapsed = time.monotonic() - started
    assert not result.success
    message = step_failure_message(instance, result.run_id)
    assert "clip 001" in message and "slow" in message and "time limit" in message
    clip0 = json.loads((tmp_path / "slow" / "clips" / "clip_000.json").read_text())
    assert (tmp_path / "slow" / "clips" / "clip_000.mp4").is_file()
    assert not (tmp_path / "slow" / "clips" / "clip_001.mp4").exists()
    failure = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records[0]
    data = failure.event_log_entry.dagster_event.event_specific_data
    md = {k: v.value for k, v in data.user_failure_data.metadata.items()}
    assert md["clip"] == "001" and md["limit_s"] == 1.0 and md["elapsed_s"] <= 1.0 + 2.0
    stats = {s.step_key: s for s in instance.get_run_step_stats(result.run_id)}
    clips_step = stats["clips"].end_time - stats["clips"].start_time
    assert clips_step <= clip0["seconds_generate"] + 1.0 + 2.0 + 1.0, clips_step
    assert elapsed < 40
    assert "000|slow" in instance.get_materialized_partitions(dg.AssetKey("clip"))


def test_two_videos_do_not_touch_each_other(instance, tmp_path):
    assert render(instance, mock_spec("first", tmp_path)).success
    before = _files(tmp_path / "first")
    assert render(instance, mock_spec("second", tmp_path, seed=99)).success
    assert _files(tmp_path / "first") == before
    second = _files(tmp_path / "second")
    assert second and all(not name.startswith("..") for name in second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "second"]


def test_spec_name_must_match_partition(instance, tmp_path):
    import dagster as dg

    from i2v_dagster.definitions import render_video_job
    from i2v_dagster_tests.helpers import run_config

    result = dg.execute_job(
        dg.reconstructable(render_video_job),
        instance=instance,
        run_config=run_config(mock_spec("alpha", tmp_path)),
        tags={"dagster/partition": "beta"},
        raise_on_error=False,
    )
    assert not result.success
    assert "alpha" in step_failure_message(instance, result.run_id)
    assert not (tmp_path / "alpha").exists() and not (tmp_path / "beta").exists()
    assert "beta" not in instance.get_dynamic_partitions("videos")


def test_corrupt_clip_fails_stitching_naming_the_file_and_keeps_the_final(instance, tmp_path):
    assert render(instance, mock_spec("bad", tmp_path)).success
    final = tmp_path / "bad" / "final" / "bad.mp4"
    good = final.read_bytes()
    (tmp_path / "bad" / "clips" / "clip_001.mp4").write_bytes(b"\x00not a video" * 64)
    from i2v_dagster.definitions import defs

    result = dg.materialize(
        list(defs.assets),
        selection=["stitched_video"],
        instance=instance,
        resources=dict(defs.resources),
        partition_key="bad",
        raise_on_error=False,
    )
    assert not result.success
    message = step_failure_message(instance, result.run_id)
    assert "clips/clip_001.mp4" in message and "check: clip sha256" in message
    assert final.read_bytes() == good  # the earlier stitched video is intact


def test_hf_token_never_reaches_metadata_logs_or_bundle(instance, tmp_path, monkeypatch):
    secret = "hf_test_SECRET_do_not_leak_0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    result = render(instance, mock_spec("secret", tmp_path))
    assert result.success
    for record in instance.get_records_for_run(result.run_id).records:
        assert secret not in dg.serialize_value(record.event_log_entry)
    for path in (tmp_path / "secret").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    bundle = next((tmp_path / "secret" / "bundles").glob("*.zip"))
    with zipfile.ZipFile(bundle) as zf:
        for name in zf.namelist():
            assert secret.encode() not in zf.read(name), name
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["hf_cache"]["HF_HOME"]


def test_every_clip_reports_its_place_and_an_eta(instance, tmp_path):
    spec = mock_spec("nine", tmp_path, max_clip_frames=8)
    result = render(instance, spec)
    assert result.success
    planned = len(json.loads((tmp_path / "nine" / "timeline.json").read_text())["clips"])
    assert planned == 9
    lines = [
        r.event_log_entry.user_message
        for r in instance.get_records_for_run(result.run_id).records
        if " done: " in (r.event_log_entry.user_message or "")
    ]
    for i in range(planned):
        assert any(
            line.startswith(f"clip {i + 1} of 9 ({i:03d}) done: ") and "ETA " in line for line in lines
        ), i
