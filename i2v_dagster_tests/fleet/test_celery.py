"""The fleet of deploy/fleet on one machine: Postgres, Redis, the run queue, dagster-celery's run launcher and
two Celery workers (one per GPU: CUDA_VISIBLE_DEVICES 0 and 1, concurrency 1). Four queued videos are split
across both workers, each worker runs one at a time, and every step of a run runs in one process (the
worker's), so the residency rules hold as on one box."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pytest

from i2v_dagster_tests.fleet.harness import (
    Processes,
    dagster_cli,
    dagster_home,
    max_overlap,
    run_env,
    step_intervals,
    submit,
    wait_for_runs,
    write_spec,
)
from i2v_dagster_tests.fleet.test_queue import queued_specs

pytestmark = [pytest.mark.slow, pytest.mark.services]


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def fleet_instance(services, tmp_path: Path, monkeypatch, prefix: str) -> tuple[Path, dict[str, str]]:
    """A fresh Postgres database and a fleet instance on it (the `gpu` pool at 2); the I2V_ settings go to
    this process too. Returns the instance's home and the environment of its processes."""
    env = services.new_database(f"{prefix}_{uuid.uuid4().hex[:8]}")
    home = dagster_home(tmp_path / "home", "fleet")
    envs = run_env(home, env, I2V_SHARED_DAGSTER=str(tmp_path / "shared"))
    for key, value in envs.items():
        if key.startswith("I2V_"):
            monkeypatch.setenv(key, value)
    dagster_cli(envs, "instance", "concurrency", "set", "gpu", "2")
    return home, envs


def test_two_celery_workers_split_the_runs_one_at_a_time(services, tmp_path, monkeypatch):
    home, envs = fleet_instance(services, tmp_path, monkeypatch, "celery")
    run_ids = [submit(envs, write_spec(tmp_path, spec)) for spec in queued_specs(tmp_path / "out")]
    with dg.DagsterInstance.from_config(str(home)) as instance, Processes(tmp_path) as processes:
        workers = [processes.celery_worker(f"gpu{d}", str(d), envs, ["gpu"]) for d in (0, 1)]
        processes.daemon(envs)
        records = wait_for_runs(instance, run_ids, timeout_s=420, processes=processes)
        assert {r.dagster_run.status for r in records.values()} == {dg.DagsterRunStatus.SUCCESS}
        steps = step_intervals(instance, run_ids)
        by_worker: dict[str, list] = {w.name: [] for w in workers}
        for run_id, record in records.items():
            pids = {i.pid for i in steps if i.run_id == run_id}
            assert pids == {int(record.dagster_run.tags["i2v/pid"])}, pids  # every step in one process
            (pid,) = pids
            worker = processes.session_of(pid)  # the worker whose pool process ran it (still alive)
            assert worker in workers, (pid, processes.logs())
            assert environ_of(pid)["CUDA_VISIBLE_DEVICES"] == worker.name[3]  # the worker's own GPU
            by_worker[worker.name].append(record)
    for name, runs in by_worker.items():  # shown with `pytest -s`
        spans = ", ".join(
            f"{r.dagster_run.run_id[:8]} pid {r.dagster_run.tags['i2v/pid']} "
            f"{r.start_time - min(x.start_time for x in records.values()):.1f}-"
            f"{r.end_time - min(x.start_time for x in records.values()):.1f} s"
            for r in sorted(runs, key=lambda r: r.start_time)
        )
        print(f"worker {name} (CUDA_VISIBLE_DEVICES={name[3]}): {len(runs)} runs: {spans}")
    assert all(by_worker.values()), {k: len(v) for k, v in by_worker.items()}  # both took runs
    for name, runs in by_worker.items():  # one run at a time per worker: the runs' spans never overlap
        spans = sorted((r.start_time, r.end_time) for r in runs)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), (name, spans)
    assert max_overlap(steps) >= 2  # the two workers did run at once


def test_a_host_worker_spreads_one_videos_scenes_over_its_gpus(services, tmp_path, monkeypatch):
    """render_video_parallel submitted to the queue of a worker that sees two GPUs: its scene steps run two
    at a time, each on a device of its own."""
    from i2v_dagster_tests.fleet.test_parallel import FOUR
    from i2v_dagster_tests.helpers import mock_spec, step_failure_message

    home, envs = fleet_instance(services, tmp_path, monkeypatch, "host")
    spec = mock_spec("hosted", tmp_path / "out", scenes=FOUR, chain_mode="keyframe", max_clip_frames=26)
    spec["models"] = {"video": {"adapter": "mock_video", "options": {"steps": 4, "seconds_per_step": 0.3}}}
    run_id = submit(envs, write_spec(tmp_path, spec), "--parallel", "--queue", "gpu-host")
    with dg.DagsterInstance.from_config(str(home)) as instance, Processes(tmp_path) as processes:
        processes.celery_worker("host0", "0,1", envs, ["gpu-host"], host_worker=True)
        processes.daemon(envs)
        records = wait_for_runs(instance, [run_id], timeout_s=420, processes=processes)
        assert records[run_id].dagster_run.status == dg.DagsterRunStatus.SUCCESS, step_failure_message(
            instance, run_id
        )
        scenes = [i for i in step_intervals(instance, [run_id]) if i.op == "make_scene"]
        claims = {
            r.event_log_entry.step_key: r.event_log_entry.user_message
            for r in instance.get_records_for_run(run_id).records
            if "of I2V_GPU_DEVICES=0,1" in r.event_log_entry.user_message
        }
    assert len(scenes) == 4 and max_overlap(scenes) == 2
    assert sorted(claims) == sorted(i.step for i in scenes)
    for a in scenes:  # two scenes at once never on the same device
        for b in scenes:
            if a is not b and a.start < b.end and b.start < a.end:
                assert claims[a.step].split()[1] != claims[b.step].split()[1], claims
