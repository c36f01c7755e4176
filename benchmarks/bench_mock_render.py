"""Time `render_video` on the mock models for 3, 10 and 30 clips.

Each video has N silent scenes of exactly one clip each (720x480, 24 fps, 24 frames per clip), so the
clip count is exact. Prints, per size, the run's wall time, the `clips` step's seconds per clip, and the
fixed overhead (run wall time minus the clips step); then a least-squares fit wall = a + b * clips over
the sizes, whose intercept is the run's fixed overhead and slope the marginal time per clip. A 1-clip
warm-up run (imports, first FFmpeg start) comes first and is not reported.

    python benchmarks/bench_mock_render.py [--clips 3 10 30] [--size 720x480]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np

from i2v_dagster.definitions import render_video_job


def spec_for(n: int, outputs: Path, width: int, height: int) -> dict:
    return {
        "name": f"bench-{n}-{outputs.name}",
        "seed": 1,
        "fps": 24,
        "width": width,
        "height": height,
        "max_clip_frames": 24,
        "outputs_root": str(outputs),
        "models": {"speech": {"adapter": "none"}},
        "scenes": [{"visual_prompt": f"scene {i}", "duration_s": 1.0} for i in range(n)],
    }


def run_once(instance: dg.DagsterInstance, spec: dict) -> dict:
    started = time.monotonic()
    result = dg.execute_job(
        dg.reconstructable(render_video_job),
        instance=instance,
        run_config={"ops": {"script": {"config": spec}}},
        tags={"dagster/partition": spec["name"]},
    )
    wall = time.monotonic() - started
    assert result.success, f"run for {spec['name']} failed"
    steps = {s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(result.run_id)}
    return {"wall": wall, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[3, 10, 30])
    parser.add_argument("--size", default="720x480")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    workdir = Path(tempfile.mkdtemp(prefix="i2v-bench-"))
    rows = []
    try:
        (workdir / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(workdir / "home")) as instance:
            run_once(instance, spec_for(1, workdir / "warmup", width, height))  # imports, first encoder start
            for n in args.clips:
                r = run_once(instance, spec_for(n, workdir / "outputs", width, height))
                clips_s = r["steps"]["clips"]
                rows.append((n, r["wall"], clips_s, clips_s / n, r["wall"] - clips_s, r["steps"]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"render_video on mock models, {width}x{height}, 24 frames per clip, in-process executor")
    print(
        f"{'clips':>5} {'run wall s':>10} {'clips step s':>12} {'s/clip':>7} {'fixed s':>8}   other steps (s)"
    )
    for n, wall, clips_s, per_clip, fixed, steps in rows:
        others = ", ".join(f"{k} {v:.2f}" for k, v in steps.items() if k != "clips")
        print(f"{n:>5} {wall:>10.2f} {clips_s:>12.2f} {per_clip:>7.3f} {fixed:>8.2f}   {others}")
    if len(rows) >= 2:
        x = np.array([r[0] for r in rows], dtype=float)
        y = np.array([r[1] for r in rows])
        slope, intercept = np.polyfit(x, y, 1)
        print(f"fit: run wall = {intercept:.2f} s fixed overhead + {slope:.3f} s per clip")


if __name__ == "__main__":
    main()
