"""Making one clip, in named steps (plain Python; the Dagster layer calls :class:`ClipMaker` and turns
its results into materializations and check results).

1. :func:`conditioning_for`: the picture the clip starts from (keyframe, initial image, or the previous
   clip's lossless last frame), with the hash of its pixels;
2. :func:`content_key`: the hash of everything that determines the clip;
3. :meth:`ClipMaker.generate`: the model call, under the clip's deadline (the watchdog is armed around model
   code only);
4. :meth:`ClipMaker.finish`: the frames the video keeps (a continuing clip's first frame, which repeats the
   conditioning image, dropped; colour correction);
5. :meth:`ClipMaker.write`: the MP4 encoded in an FFmpeg process while the checks measure the same frames,
   the lossless first/last frames, then the record (written last: a record means every file is complete).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from i2v_dagster.errors import MediaError
from i2v_dagster.fsutil import save_png_atomic, sha256_file, write_json_atomic
from i2v_dagster.guardrails import Deadline, watchdog
from i2v_dagster.models.base import ClipFrames, ClipRequest, StepProgress, VideoModel
from i2v_dagster.planning import ClipPlan
from i2v_dagster.spec import JobSpec
from i2v_dagster.state import VideoState, load_frame

MOCK_ENCODER = ("ultrafast", 18)
REAL_ENCODER = ("medium", 16)

StepCallback = Callable[[ClipPlan, StepProgress], None]


@dataclass(frozen=True)
class Conditioning:
    image: np.ndarray
    """(H, W, 3) uint8 at the spec's size."""
    source: str
    """Where it came from, relative to the video folder where it lies inside it."""
    sha256: str
    """Of its pixels (not of the file)."""


@dataclass(frozen=True)
class MadeClip:
    """A clip written to disk: its record (what ``clips/clip_NNN.json`` holds) and its check outcomes."""

    plan: ClipPlan
    record: dict[str, Any]

    @property
    def outcomes(self) -> list[dict[str, Any]]:
        return self.record["checks"]["outcomes"]


def conditioning_for(state: VideoState, plan: ClipPlan) -> Conditioning:
    """Clip 0: the initial image or keyframe 0. A scene's first clip in ``keyframe`` mode: its keyframe.
    Any other clip: the previous clip's last frame."""
    spec, paths = state.spec, state.paths
    if plan.index == 0:
        path = state.start_image
    elif spec.chain_mode == "keyframe" and plan.first_of_scene:
        path = paths.keyframe(plan.scene)
    else:
        path = paths.clip_last(plan.index - 1)
    if not path.is_file():
        what = f"last frame of clip {plan.index - 1:03d}" if path.name.endswith("_last.png") else "image"
        raise MediaError(f"clip {plan.key} of {spec.name}: conditioning {what} not found at {path}")
    image = load_frame(path, spec.width, spec.height)
    inside = path.resolve().is_relative_to(paths.root)
    return Conditioning(
        image=image,
        source=paths.rel(path) if inside else path.name,
        sha256=hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(),
    )


def content_key(spec: JobSpec, plan: ClipPlan, cond: Conditioning, prompt: str, seed: int) -> str:
    """What determines a clip: conditioning pixels, prompt, seed, adapter and settings, size, frames,
    colour correction and encoder settings."""
    blob = json.dumps(
        {
            "conditioning": cond.sha256,
            "prompt": prompt,
            "seed": seed,
            "frames": plan.frames,
            "continues": plan.continues,
            "video": spec.models.video.model_dump(mode="json"),
            "size": [spec.width, spec.height],
            "fps": spec.fps,
            "color_correction": spec.color_correction,
            "encoder": list(encoder_for(spec)),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def encoder_for(spec: JobSpec) -> tuple[str, int]:
    """(x264 preset, crf): the spec's, else a fast default for the mock and a quality default for real
    models."""
    mock = spec.models.video.adapter.startswith("mock_")
    preset, crf = MOCK_ENCODER if mock else REAL_ENCODER
    if spec.encoder.preset != "auto":
        preset = spec.encoder.preset
    return preset, spec.encoder.crf if spec.encoder.crf is not None else crf


class ClipMaker:
    """Makes the clips of one video, one :meth:`make` call each."""

    def __init__(
        self,
        state: VideoState,
        *,
        log: logging.Logger | None = None,
        on_step: StepCallback | None = None,
    ) -> None:
        self.state = state
        self.log = log or logging.getLogger(__name__)
        self.on_step = on_step
        self._script = state.script()

    @property
    def spec(self) -> JobSpec:
        return self.state.spec

    def prompt(self, plan: ClipPlan) -> str:
        return self.spec.motion_prompt(self._script.scenes[plan.scene])

    def make(self, model: VideoModel, plan: ClipPlan, *, limit_s: float, label: str) -> MadeClip:
        """Generate, finish and write clip ``plan``; raises ClipTimeoutError past ``limit_s``."""
        prompt = self.prompt(plan)
        cond = conditioning_for(self.state, plan)
        started = time.monotonic()
        raw, steps = self.generate(model, plan, cond, prompt, limit_s=limit_s, label=label)
        seconds = time.monotonic() - started
        frames = self.finish(plan, raw)
        record = self.write(plan, frames, raw, cond=cond, prompt=prompt, seconds=seconds, steps=steps)
        return MadeClip(plan=plan, record=record)

    def generate(
        self,
        model: VideoModel,
        plan: ClipPlan,
        cond: Conditioning,
        prompt: str,
        *,
        limit_s: float,
        label: str,
    ) -> tuple[ClipFrames, list[float]]:
        """The model call under the clip's deadline; returns the frames and each step's seconds."""
        from PIL import Image

        steps: list[float] = []

        def on_step(progress: StepProgress) -> None:
            steps.append(progress.seconds)
            if self.on_step is not None:
                self.on_step(plan, progress)

        deadline = Deadline(max(limit_s, 0.001), label=label)
        deadline.check()
        request = ClipRequest(
            image=Image.fromarray(cond.image),
            prompt=prompt,
            num_frames=plan.generate_frames,
            width=self.spec.width,
            height=self.spec.height,
            fps=self.spec.fps,
            seed=plan.seed,
            deadline=deadline,
            on_step=on_step,
        )
        with watchdog(deadline):
            result = model.generate(request)
        if result.frames.shape[0] != plan.generate_frames:
            raise MediaError(
                f"{label}: the adapter returned {result.frames.shape[0]} frames, "
                f"{plan.generate_frames} asked for"
            )
        return result, steps

    def finish(self, plan: ClipPlan, raw: ClipFrames) -> np.ndarray:
        """The frames the video keeps: a continuing clip's first frame (a copy of the previous clip's last)
        dropped, then colour correction toward the first clip's reference."""
        frames = raw.frames[1:] if plan.continues else raw.frames
        if self.spec.color_correction:
            from i2v_dagster.verify.color import match_color

            frames = match_color(frames, self.state.color_reference)
        return frames

    def write(
        self,
        plan: ClipPlan,
        frames: np.ndarray,
        raw: ClipFrames,
        *,
        cond: Conditioning,
        prompt: str,
        seconds: float,
        steps: list[float],
    ) -> dict[str, Any]:
        """Encode (in an FFmpeg process) while the checks measure the frames; then the record."""
        from i2v_dagster.media.video import PendingEncode, probe
        from i2v_dagster.verify.clip import Shape, Thresholds, clip_outcomes
        from i2v_dagster.verify.frames import ClipMeasures

        spec, paths = self.spec, self.state.paths
        preset, crf = encoder_for(spec)
        written = time.monotonic()
        encode = PendingEncode(frames, paths.clip(plan.index), fps=spec.fps, preset=preset, crf=crf)
        try:
            measures = ClipMeasures.of(frames)
            save_png_atomic(frames[0], paths.clip_first(plan.index))
            save_png_atomic(frames[-1], paths.clip_last(plan.index))
        except BaseException:
            encode.abort()
            raise
        encode.finish()
        video = probe(paths.clip(plan.index)).video
        if video is None:
            raise MediaError(f"{paths.clip(plan.index)}: no video stream after encoding")
        dropped = 1 if plan.continues else 0
        checks = clip_outcomes(
            frames,
            planned=Shape(plan.frames, spec.fps, spec.width, spec.height),
            encoded=Shape(video.frames, video.fps, video.width, video.height),
            reference=self.state.first_keyframe,
            nan_frames=[i - dropped for i in raw.nan_frames if i >= dropped],
            thresholds=Thresholds(
                min_motion=spec.checks.min_motion,
                max_color_drift=spec.checks.max_color_drift,
                max_frozen_frames=spec.checks.max_frozen_frames,
            ),
            measures=measures,
        )
        record = {
            "clip": plan.key,
            "scene": plan.scene,
            "frames": int(frames.shape[0]),
            "generated_frames": int(raw.generated_frames or raw.frames.shape[0]),
            "dropped_first_frame": plan.continues,
            "fps": spec.fps,
            "seed": plan.seed,
            "prompt": prompt,
            "model_id": raw.model_id,
            "adapter": spec.models.video.adapter,
            "conditioning": cond.source,
            "conditioning_sha256": cond.sha256,
            "content_key": content_key(spec, plan, cond, prompt, plan.seed),
            "nan_frames": list(raw.nan_frames),
            "seconds_generate": round(seconds, 3),
            "seconds_write": round(time.monotonic() - written, 3),
            "seconds_per_step": round(float(np.mean(steps)), 4) if steps else None,
            "steps": len(steps),
            "color_corrected": spec.color_correction,
            "encoder": {"preset": preset, "crf": crf},
            "file": paths.rel(paths.clip(plan.index)),
            "sha256": sha256_file(paths.clip(plan.index)),
            "bytes": paths.clip(plan.index).stat().st_size,
            "first_frame": paths.rel(paths.clip_first(plan.index)),
            "last_frame": paths.rel(paths.clip_last(plan.index)),
            "checks": checks.to_record(),
        }
        write_json_atomic(paths.clip_record(plan.index), record)
        return record
