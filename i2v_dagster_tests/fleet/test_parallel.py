"""render_video_parallel on Dagster's multiprocess executor: each scene's clips in its own `gpu` step, the
same files, records and checks as render_video, and the same final video frame for frame."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from i2v_dagster.definitions import render_video_job, render_video_parallel_job
from i2v_dagster.media.video import read_frames
from i2v_dagster_tests.fleet.harness import max_overlap, overlap_excerpt, step_intervals
from i2v_dagster_tests.helpers import materialize_clip, mock_spec, render

pytestmark = pytest.mark.slow

FOUR = [
    {
        "narration": f"Part {i}: the boat sails on.",
        "visual_prompt": f"a paper boat, part {i}",
        "motion_prompt": m,
    }
    for i, m in enumerate(["push in", "pan left", "pan right", "drift"])
]


@pytest.fixture()
def instance():
    with dg.instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 2}}}) as inst:
        yield inst


def execute(instance, job, spec) -> dg.ExecutionResult:
    return render(instance, spec, job)


def recorded(instance, run_id: str) -> dict[str, set]:
    """What a run recorded in Dagster's storage: materializations and check evaluations, by asset and
    partition (with whether each check passed)."""
    mats = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    checks = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    out: dict[str, set] = {"materializations": set(), "checks": set()}
    for r in mats:
        m = r.event_log_entry.dagster_event.event_specific_data.materialization
        out["materializations"].add((m.asset_key.to_user_string(), m.partition))
    for r in checks:
        e = r.event_log_entry.dagster_event.event_specific_data
        out["checks"].add((e.asset_key.to_user_string(), e.check_name, e.partition, e.passed))
    return out


def clip_records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((folder / "clips").glob("clip_*.json"))]


def test_keyframe_scenes_run_as_parallel_gpu_steps_and_match_the_sequential_video(instance, tmp_path):
    seq_spec = mock_spec("four", tmp_path / "seq", scenes=FOUR, chain_mode="keyframe", max_clip_frames=26)
    par_spec = mock_spec("four", tmp_path / "par", scenes=FOUR, chain_mode="keyframe", max_clip_frames=26)
    for spec in (seq_spec, par_spec):  # a slow model, so that two scene steps surely meet
        spec["models"] = {
            "video": {"adapter": "mock_video", "options": {"steps": 4, "seconds_per_step": 0.3}}
        }
    sequential = execute(instance, render_video_job, seq_spec)
    assert sequential.success
    parallel = execute(instance, render_video_parallel_job, par_spec)
    assert parallel.success

    steps = step_intervals(instance, [parallel.run_id])
    scenes = [i for i in steps if i.op == "make_scene"]
    assert sorted(i.step for i in scenes) == [f"scene_clips.make_scene[scene_{s:03d}]" for s in range(4)]
    assert max_overlap(scenes) == 2, "\n".join(overlap_excerpt(scenes))  # the `gpu` pool's limit, reached
    assert len({i.pid for i in scenes}) == 4  # each scene in its own process
    # the run is tagged with the process that runs it, not a step's (gone when the step ends: the dead-run
    # reaper would fail the run)
    start = instance.get_records_for_run(parallel.run_id, of_type=dg.DagsterEventType.RUN_START).records[0]
    pid = instance.get_run_by_id(parallel.run_id).tags["i2v/pid"]
    assert pid == str(start.event_log_entry.dagster_event.pid) and int(pid) not in {i.pid for i in steps}

    seq_final = read_frames(tmp_path / "seq" / "four" / "final" / "four.mp4")
    par_final = read_frames(tmp_path / "par" / "four" / "final" / "four.mp4")
    assert len(par_final) == len(seq_final) > 0
    assert np.array_equal(np.asarray(par_final), np.asarray(seq_final))
    keys = [r["content_key"] for r in clip_records(tmp_path / "seq" / "four")]
    assert [r["content_key"] for r in clip_records(tmp_path / "par" / "four")] == keys

    # the same records in Dagster's storage: `clip` partitions, `clips`, every check with its outcome
    assert recorded(instance, parallel.run_id) == recorded(instance, sequential.run_id)
    mat = next(
        m
        for m in parallel.asset_materializations_for_node("scene_clips")
        if m.asset_key == dg.AssetKey("clips")
    )
    assert mat.metadata["content_keys"].value == keys and mat.metadata["scene_steps"].value == 4
    seq_mat = next(
        m for m in sequential.asset_materializations_for_node("clips") if m.asset_key == dg.AssetKey("clips")
    )
    assert {
        k: v for k, v in mat.metadata.items() if not k.startswith(("seconds", "scene_steps", "reused"))
    } == {k: v for k, v in seq_mat.metadata.items() if not k.startswith(("seconds", "reused"))}

    # single-clip debugging works the same after a parallel render
    one = materialize_clip(instance, "four", 2)
    assert one.success
    assert one.asset_materializations_for_node("clip")[0].metadata["status"].value == "unchanged"


def test_a_last_frame_video_is_one_chain_in_one_step(instance, tmp_path):
    spec = mock_spec("chain", tmp_path / "par")
    result = execute(instance, render_video_parallel_job, spec)
    assert result.success
    steps = [i for i in step_intervals(instance, [result.run_id]) if i.op == "make_scene"]
    assert [i.step for i in steps] == ["scene_clips.make_scene[chain]"]
    messages = [r.event_log_entry.user_message for r in instance.get_records_for_run(result.run_id).records]
    assert any("each clip continues the one before it" in m for m in messages)
    assert execute(instance, render_video_job, mock_spec("chain", tmp_path / "seq")).success
    assert np.array_equal(
        np.asarray(read_frames(tmp_path / "par" / "chain" / "final" / "chain.mp4")),
        np.asarray(read_frames(tmp_path / "seq" / "chain" / "final" / "chain.mp4")),
    )
