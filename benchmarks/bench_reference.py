"""render_video on the mock models, side by side with the reference renderer (``reference_render.py``:
the same frames drawn and written with PyAV, nothing else), alternating, in one run of this script.

The video: 10 narrated scenes of 48 frames each at 720x480, 24 fps (each scene one clip; clips after the
first are generated 49 frames long and keep 48, the join frame not repeated), checks, pictures and the
bundle on. Each side runs as its own process; the figure compared is seconds per 1000 output frames, both
for the whole process (imports included) and for the work alone (the Dagster run's start to end; the
reference's first frame to last file). ``--before PATH`` also runs an older checkout of this project (a
``git worktree`` of an earlier commit) in the same rounds, so before and after are measured together.

    python benchmarks/bench_reference.py [--rounds 3] [--before /tmp/i2v-before]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENES = 10
FRAMES = 48  # a 26-character mock narration lasts 1.99 s: 48 frames at 24 fps


def spec_yaml(outputs: Path, name: str) -> str:
    lines = [
        f"name: {name}",
        "seed: 1",
        "fps: 24",
        "width: 720",
        "height: 480",
        "max_clip_frames: 49",
        f"outputs_root: {outputs}",
        "scenes:",
    ]
    for i in range(SCENES):
        narration = f"Scene {i}: the boat sails on"
        assert len(narration) == 26
        lines.append(
            f'  - {{narration: "{narration}", visual_prompt: "a paper boat, scene {i}", motion_prompt: pan}}'
        )
    return "\n".join(lines) + "\n"


def run_pipeline(tree: Path, workdir: Path, label: str, round_: int) -> dict:
    name = f"bench-{label}-{round_}"
    spec = workdir / f"{name}.yaml"
    outputs = workdir / "outputs"
    spec.write_text(spec_yaml(outputs, name))
    home = workdir / f"home-{label}"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((tree / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(tree)}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "i2v_dagster.cli", "run", str(spec)],
        cwd=tree, env=env, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{label} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    code = (
        "import dagster as dg, json, sys\n"
        "i = dg.DagsterInstance.get()\n"
        "r = i.get_run_records(limit=1)[0]\n"
        "stats = i.get_run_step_stats(r.dagster_run.run_id)\n"
        "steps = {s.step_key: round(s.end_time - s.start_time, 3) for s in stats}\n"
        "print(json.dumps({'run_s': r.end_time - r.start_time, 'steps': steps}))\n"
    )
    info = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    frames = sum(json.loads(p.read_text())["frames"] for p in (outputs / name / "clips").glob("clip_*.json"))
    return {"wall": wall, "work": info["run_s"], "frames": frames, "steps": info["steps"]}


def run_reference(workdir: Path, round_: int) -> dict:
    out = workdir / f"ref-{round_}"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "reference_render.py"), "--clips", str(SCENES),
         "--frames", str(FRAMES), "--out", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.monotonic() - started
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall": wall, "work": info["seconds"], "frames": info["frames"], "steps": {}}


def per_k(results: list[dict], key: str) -> float:
    return statistics.median(r[key] / r["frames"] * 1000 for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="an older checkout to measure in the same rounds")
    args = parser.parse_args()
    sides = {"pipeline": lambda w, r: run_pipeline(ROOT, w, "after", r), "reference": run_reference}
    if args.before:
        sides["before"] = lambda w, r: run_pipeline(args.before.resolve(), w, "before", r)
    results: dict[str, list[dict]] = {k: [] for k in sides}
    with tempfile.TemporaryDirectory(prefix="i2v-bench-") as tmp:
        workdir = Path(tmp)
        for round_ in range(args.rounds + 1):  # round 0 warms the caches and is not counted
            for label, fn in sides.items():
                result = fn(workdir, round_)
                if round_:
                    results[label].append(result)
                line = f"round {round_} {label:9s} wall {result['wall']:6.2f} s  work {result['work']:6.2f} s"
                print(f"{line}  frames {result['frames']}", flush=True)
    ref_wall, ref_work = per_k(results["reference"], "wall"), per_k(results["reference"], "work")
    print(f"\nmedians over {args.rounds} rounds, seconds per 1000 output frames (ratio to the reference):")
    for label, rows in results.items():
        wall, work = per_k(rows, "wall"), per_k(rows, "work")
        ratios = f"process {wall:6.2f} ({wall / ref_wall:4.2f}x)   work {work:6.2f} ({work / ref_work:4.2f}x)"
        print(f"  {label:9s} {ratios}")
    for label in ("pipeline", "before"):
        if label in results:
            steps = results[label][-1]["steps"]
            print(f"  {label} steps (last round): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))


if __name__ == "__main__":
    main()
