"""Seconds per clip of each part of making one mock clip (48 kept frames, 720x480), old code against new.

Times, each as the median of ``--repeat`` runs in one process: the mock model's drawing, the H.264 encode
at the preset the pipeline uses for the mock, the two lossless PNGs, the probe of the encoded file, the
per-clip checks, and colour correction (off by default in a spec). ``--tree PATH`` runs the same
measurements against another checkout of this project (a ``git worktree`` of an earlier commit), in a
subprocess, so one run prints both columns.

    python benchmarks/bench_components.py [--repeat 7] [--tree /tmp/i2v-before]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEASURE = r"""
import json, statistics, sys, tempfile, time
from pathlib import Path
import numpy as np
repeat = int(sys.argv[1])
from i2v_dagster.models.base import ClipRequest
from i2v_dagster.models.mock import MockImage, MockVideo
from i2v_dagster.media.video import encode_frames, probe
from i2v_dagster.fsutil import save_png_atomic
image = MockImage().generate("a boat", width=720, height=480, seed=1).image
request = ClipRequest(image=image, prompt="pan", num_frames=49, width=720, height=480, fps=24, seed=3)
reference = np.asarray(image)
new = Path("i2v_dagster/render.py").is_file()
if new:
    from i2v_dagster.render import MOCK_ENCODER
    from i2v_dagster.verify.clip import Shape, clip_outcomes
    def encode(frames, dest):
        encode_frames(frames, dest, fps=24, preset=MOCK_ENCODER[0], crf=MOCK_ENCODER[1])
    def checks(frames):
        shape = Shape(len(frames), 24, 720, 480)
        clip_outcomes(frames, planned=shape, encoded=shape, reference=reference)
else:
    from i2v_dagster.verify.metrics import (
        check_broken_frames, check_color_drift, check_motion, pair_mean_abs_diffs)
    def encode(frames, dest):
        encode_frames(frames, dest, fps=24)
    def checks(frames):
        check_broken_frames(frames); check_motion(frames); check_color_drift(frames, reference)
        pair_mean_abs_diffs(frames)
def timed(fn):
    out = []
    for _ in range(repeat):
        started = time.perf_counter(); fn(); out.append(time.perf_counter() - started)
    return statistics.median(out)
frames = MockVideo().generate(request).frames[1:49]
with tempfile.TemporaryDirectory() as tmp:
    clip = Path(tmp) / "clip.mp4"
    encode(frames, clip)
    result = {
        "mock drawing": timed(lambda: MockVideo().generate(request)),
        "H.264 encode": timed(lambda: encode(frames, clip)),
        "two PNGs": timed(lambda: (save_png_atomic(frames[0], Path(tmp) / "a.png"),
                                   save_png_atomic(frames[-1], Path(tmp) / "b.png"))),
        "probe": timed(lambda: probe(clip)),
        "per-clip checks": timed(lambda: checks(frames)),
    }
    from i2v_dagster.verify.color import match_color
    result["colour correction"] = timed(lambda: match_color(frames, reference))
print(json.dumps(result))
"""


def measure(tree: Path, repeat: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(repeat)], cwd=tree, env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--tree", type=Path, help="an older checkout to measure beside this one")
    args = parser.parse_args()
    columns = {"now": measure(ROOT, args.repeat)}
    if args.tree:
        columns = {"before": measure(args.tree.resolve(), args.repeat), **columns}
    print(f"{'seconds per clip':20s}" + "".join(f"{name:>10s}" for name in columns))
    for part in columns["now"]:
        print(f"{part:20s}" + "".join(f"{col[part]:10.3f}" for col in columns.values()))
    print(f"{'sum':20s}" + "".join(f"{sum(col.values()):10.3f}" for col in columns.values()))


if __name__ == "__main__":
    main()
