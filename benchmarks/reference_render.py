"""The reference renderer: the frames a mock video has, drawn and written as H.264 with PyAV, nothing else
(no Dagster, no narration, no checks, no pictures, no bundle).

It draws with the mock video model's own drawing code (a chain: each clip starts from the previous clip's
last frame) and encodes each clip with libx264 at the same preset and quality as the pipeline's mock
default, so the only difference from ``render_video`` is the pipeline's own work.

    python benchmarks/reference_render.py --clips 10 --frames 48 --size 720x480 --out /tmp/ref
Prints one JSON line: {"seconds": ..., "frames": ...} (seconds from the first frame drawn to the last
file closed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import av
import numpy as np

from i2v_dagster.models.base import ClipRequest
from i2v_dagster.models.mock import MockImage, MockVideo
from i2v_dagster.render import MOCK_ENCODER


def write_clip(frames: np.ndarray, path: Path, fps: int) -> None:
    preset, crf = MOCK_ENCODER
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"preset": preset, "crf": str(crf)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="720x480")
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    image = MockImage().generate("reference keyframe", width=width, height=height, seed=1).image
    total = 0
    for index in range(args.clips):
        request = ClipRequest(
            image=image, prompt="reference", num_frames=args.frames, width=width, height=height,
            fps=args.fps, seed=index,
        )  # fmt: skip
        frames = MockVideo.draw(request, args.frames, np.zeros(3))
        write_clip(frames, args.out / f"clip_{index:03d}.mp4", args.fps)
        image = frames[-1]
        total += len(frames)
        from PIL import Image

        image = Image.fromarray(image)
    print(json.dumps({"seconds": round(time.monotonic() - started, 4), "frames": total}))


if __name__ == "__main__":
    main()
