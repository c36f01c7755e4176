"""The fleet's two speed-ups, measured in one run on this machine with a slow mock standing in for GPU time.

1. ``queue``: four mock videos through the run queue (deploy/queued: Postgres, QueuedRunCoordinator, one
   dagster-daemon) with the `gpu` pool at 1, then at 2. The four are queued before the daemon starts; the
   time is from the first run's start to the last run's end (each from Dagster's run records). Also prints
   the most GPU steps that ran at once and an excerpt of the event log's GPU steps.
2. ``parallel``: one 4-scene ``keyframe`` video, first with render_video (one process, one step after the
   other), then with render_video_parallel on two workers: Dagster's multiprocess executor with
   ``max_concurrent: 2`` and the `gpu` pool at 2. Prints both times (wall clock around each run), the
   scene steps from the event log, and whether the two final videos are equal frame for frame.

Postgres and Redis are started on loopback by ``scripts/services`` and stopped at the end.

    python benchmarks/bench_fleet.py [--parts queue,parallel] [--clip-seconds 20] [--scene-seconds 90]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from i2v_dagster_tests.fleet import harness  # noqa: E402
from i2v_dagster_tests.helpers import SCENES, mock_spec, run_config  # noqa: E402

FOUR = [
    {
        "narration": f"Part {i}: the boat sails on.",
        "visual_prompt": f"a paper boat, part {i}",
        "motion_prompt": m,
    }
    for i, m in enumerate(["push in", "pan left", "pan right", "drift"])
]
STEPS = 10


def slow(spec: dict, clip_seconds: float) -> dict:
    """Each clip takes ``clip_seconds`` of model time (STEPS steps)."""
    options = {"steps": STEPS, "seconds_per_step": clip_seconds / STEPS}
    spec["models"] = {"video": {"adapter": "mock_video", "options": options}}
    return spec


def queue_part(services: harness.Services, work: Path, pool: int, clip_seconds: float) -> dict:
    import dagster as dg

    folder = work / f"queue-pool{pool}"
    env = services.new_database(f"bench_queue_{pool}_{int(time.time())}")
    home = harness.dagster_home(folder / "home", "queued")
    envs = harness.run_env(home, env)
    os.environ.update({k: v for k, v in env.items() if k.startswith("I2V_")})
    harness.dagster_cli(envs, "instance", "concurrency", "set", "gpu", str(pool))
    specs = [
        slow(
            mock_spec(f"video-{i}", folder / "out", scenes=[dict(s) for s in SCENES[:2]], max_clip_frames=26),
            clip_seconds,
        )
        for i in range(4)
    ]
    run_ids = [harness.submit(envs, harness.write_spec(folder, spec)) for spec in specs]
    with dg.DagsterInstance.from_config(str(home)) as instance, harness.Processes(folder) as processes:
        daemon_started = time.time()
        processes.daemon(envs)
        records = harness.wait_for_runs(instance, run_ids, timeout_s=1800, processes=processes)
        steps = harness.step_intervals(instance, run_ids)
    statuses = {r.dagster_run.status.value for r in records.values()}
    first = min(r.start_time for r in records.values())
    last = max(r.end_time for r in records.values())
    gpu = [i for i in steps if i.op in harness.GPU_OPS]
    return {
        "pool": pool,
        "statuses": sorted(statuses),
        "seconds_first_start_to_last_end": round(last - first, 2),
        "seconds_daemon_start_to_last_end": round(last - daemon_started, 2),
        "max_gpu_steps_at_once": harness.max_overlap(gpu),
        "max_steps_at_once": harness.max_overlap(steps),
        "gpu_steps": harness.overlap_excerpt(gpu, t0=first),
    }


def parallel_part(work: Path, scene_seconds: float) -> dict:
    import dagster as dg
    import numpy as np

    from i2v_dagster.definitions import render_video_job, render_video_parallel_job
    from i2v_dagster.media.video import read_frames

    folder = work / "parallel"
    home = folder / "home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(
        "telemetry: {enabled: false}\nconcurrency: {pools: {default_limit: 2}}\n"
    )
    timings, runs = {}, {}
    for name, job, extra in (
        ("sequential", render_video_job, {}),
        ("parallel", render_video_parallel_job, {"execution": {"config": {"max_concurrent": 2}}}),
    ):
        spec = mock_spec("four", folder / name, scenes=FOUR, chain_mode="keyframe", max_clip_frames=26)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            started = time.time()
            result = dg.execute_job(
                dg.reconstructable(job),
                instance=instance,
                run_config={**run_config(slow(spec, scene_seconds)), **extra},
                tags={"dagster/partition": "four"},
            )
            timings[name] = time.time() - started
            runs[name] = (result.success, harness.step_intervals(instance, [result.run_id]))
    frames = {n: np.asarray(read_frames(folder / n / "four" / "final" / "four.mp4")) for n in timings}
    scenes = [i for i in runs["parallel"][1] if i.op == "make_scene"]
    return {
        "how": "multiprocess executor, max_concurrent 2, gpu pool 2",
        "success": runs["sequential"][0] and runs["parallel"][0],
        "sequential_s": round(timings["sequential"], 2),
        "parallel_s": round(timings["parallel"], 2),
        "ratio": round(timings["parallel"] / timings["sequential"], 3),
        "frames": [len(frames["sequential"]), len(frames["parallel"])],
        "frame_equal": bool(np.array_equal(frames["sequential"], frames["parallel"])),
        "max_scene_steps_at_once": harness.max_overlap(scenes),
        "sequential_clips_step_s": round(
            sum(i.end - i.start for i in runs["sequential"][1] if i.op == "clips"), 2
        ),
        "scene_steps": harness.overlap_excerpt(scenes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="queue,parallel")
    parser.add_argument("--clip-seconds", type=float, default=20.0, help="model time per clip (queue part)")
    parser.add_argument(
        "--scene-seconds", type=float, default=90.0, help="model time per scene (parallel part)"
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    missing = harness.services_missing()
    if missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parts = set(args.parts.split(","))
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        with harness.Services(work / "services") as services:
            if "queue" in parts:
                results["queue"] = [queue_part(services, work, pool, args.clip_seconds) for pool in (1, 2)]
            if "parallel" in parts:
                results["parallel"] = parallel_part(work, args.scene_seconds)
    print(
        f"bench_fleet: {os.cpu_count()} CPUs, slow mock (model time by sleeping), {time.strftime('%Y-%m-%d')}"
    )
    if "queue" in results:
        one, two = results["queue"]
        print(f"queue: 4 videos x 2 clips x {args.clip_seconds:g} s model time; deploy/queued, one daemon")
        for r in results["queue"]:
            span = r["seconds_first_start_to_last_end"]
            print(
                f"  gpu pool {r['pool']}: {span:.2f} s from first start to last end"
                f" ({r['seconds_daemon_start_to_last_end']:.2f} s from daemon start); most GPU steps at once"
                f" {r['max_gpu_steps_at_once']}, most steps at once {r['max_steps_at_once']}; {r['statuses']}"
            )
        ratio = two["seconds_first_start_to_last_end"] / one["seconds_first_start_to_last_end"]
        print(f"  pool 2 / pool 1 = {ratio:.3f}")
        for r in results["queue"]:
            print(f"  GPU steps, pool {r['pool']} (seconds from the first run's start):")
            for line in r["gpu_steps"]:
                print(f"    {line}")
    if "parallel" in results:
        p = results["parallel"]
        print(f"parallel: 4-scene keyframe video, {args.scene_seconds:g} s model time per scene; {p['how']}")
        print(
            f"  render_video {p['sequential_s']:.2f} s (clips step {p['sequential_clips_step_s']:.2f} s),"
            f" render_video_parallel {p['parallel_s']:.2f} s: ratio {p['ratio']:.3f}; most scene steps at"
            f" once {p['max_scene_steps_at_once']}; success {p['success']}"
        )
        equal = p["frame_equal"]
        print(f"  final videos {p['frames'][0]} and {p['frames'][1]} frames, equal frame for frame: {equal}")
        for line in p["scene_steps"]:
            print(f"    {line}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
