"""Four mock videos through the run queue (deploy/queued: Postgres, QueuedRunCoordinator, one dagster-daemon)
with the `gpu` pool at 1 and at 2: from the event log, GPU steps never run more at once than the pool
allows, while other steps of other videos run beside them."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from i2v_dagster_tests.fleet.harness import (
    GPU_OPS,
    Processes,
    dagster_cli,
    dagster_home,
    max_overlap,
    overlap_excerpt,
    run_env,
    step_intervals,
    submit,
    wait_for_runs,
    write_spec,
)
from i2v_dagster_tests.helpers import SCENES, mock_spec

pytestmark = [pytest.mark.slow, pytest.mark.services]


def queued_specs(outputs, count: int = 4, seconds_per_step: float = 0.4) -> list[dict]:
    """Videos of two scenes whose clips take a while (a slow mock stands in for GPU time)."""
    specs = []
    for i in range(count):
        spec = mock_spec(f"queued-{i}", outputs, scenes=[dict(s) for s in SCENES[:2]], max_clip_frames=26)
        spec["models"] = {
            "video": {"adapter": "mock_video", "options": {"steps": 4, "seconds_per_step": seconds_per_step}}
        }
        specs.append(spec)
    return specs


@pytest.mark.parametrize("pool", [1, 2])
def test_queued_videos_share_the_gpu_pool(services, tmp_path, monkeypatch, pool):
    env = services.new_database(f"queue_{pool}_{uuid.uuid4().hex[:8]}")
    home = dagster_home(tmp_path / "home", "queued")
    envs = run_env(home, env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    dagster_cli(envs, "instance", "concurrency", "set", "gpu", str(pool))
    # queued first, then the daemon: the four runs reach the queue together
    run_ids = [submit(envs, write_spec(tmp_path, spec)) for spec in queued_specs(tmp_path / "out")]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        queued = instance.get_run_records(filters=dg.RunsFilter(run_ids=run_ids))
        assert {r.dagster_run.status for r in queued} == {dg.DagsterRunStatus.QUEUED}
        with Processes(tmp_path) as processes:
            processes.daemon(envs)
            records = wait_for_runs(instance, run_ids, timeout_s=420, processes=processes)
        assert {r.dagster_run.status for r in records.values()} == {dg.DagsterRunStatus.SUCCESS}
        steps = step_intervals(instance, run_ids)
    gpu = [i for i in steps if i.op in GPU_OPS]
    excerpt = "\n".join(overlap_excerpt(gpu))
    assert max_overlap(gpu) == pool, excerpt  # never beyond the pool, and the pool is used
    assert max_overlap(steps) > pool, "\n".join(overlap_excerpt(steps))  # other steps ran beside them
    assert len({i.pid for i in steps}) == 4  # each run in its own process (in-process executor)
