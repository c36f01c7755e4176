"""Making one clip, in named steps (plain Python; the Dagster layer calls :class:`ClipMaker` and turns
its results into materializations and check results).

1. :meth:`ClipMaker.prepare`: the picture the clip starts from (keyframe, initial image, or the previous
   clip's lossless last frame), its prompt, and the clip's content key (the hash of everything that
   determines it);
2. :meth:`ClipMaker.reuse`: a stored clip with the same key and intact files is taken as it is;
3. :meth:`ClipMaker.make`: otherwise up to ``max_attempts`` tries, each: the model call under the clip's
   deadline (the watchdog armed around model code only); the frames the video keeps (a continuing clip's
   first frame, which repeats the conditioning image, dropped; colour correction); the encode started in
   an FFmpeg process while one shared pass measures the frames; the blocking checks (broken frames,
   motion, the join with the clip before). A rejected try is dropped and the next derived seed tried;
4. the accepted try's lossless first/last frames, then its record (written last: a record means every
   file is complete).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from i2v_dagster.artefacts import content_key, file_hashes, read_record, reusable
from i2v_dagster.errors import ClipRejectedError, MediaError
from i2v_dagster.fsutil import atomic_path, save_png_atomic, sha256_file, write_json_atomic
from i2v_dagster.guardrails import Deadline, watchdog
from i2v_dagster.models.base import ClipFrames, ClipRequest, StepProgress, VideoModel
from i2v_dagster.planning import ClipPlan
from i2v_dagster.spec import JobSpec, derive_seed
from i2v_dagster.state import VideoState, load_frame

MOCK_ENCODER = ("ultrafast", 18)
REAL_ENCODER = ("medium", 16)
PREVIEW_STEP = 3
"""Every third frame goes into a clip's animated preview."""
BLOCKING = ("broken_frames", "motion", "seam")
"""Checks that reject a try (shape and colour drift are reported, not retried: a new seed fixes neither)."""

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
class Prepared:
    """What a clip will be made from, and its content key."""

    plan: ClipPlan
    cond: Conditioning
    prompt: str
    key: str
    override: dict[str, Any] | None = None
    """A stored seed/prompt for this clip (``clips/clip_NNN.override.json``), when one is set."""


@dataclass(frozen=True)
class MadeClip:
    """A clip on disk: its record (what ``clips/clip_NNN.json`` holds); ``reused`` when nothing was made."""

    plan: ClipPlan
    record: dict[str, Any]
    reused: bool = False

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


def clip_key(spec: JobSpec, plan: ClipPlan, cond: Conditioning, prompt: str) -> str:
    """What determines a clip: conditioning pixels, prompt, seed, adapter and settings, size, frames,
    colour correction, encoder, and the quality gate that picks among tries."""
    checks = spec.checks
    return content_key(
        {
            "conditioning": cond.sha256,
            "prompt": prompt,
            "seed": plan.seed,
            "frames": plan.frames,
            "continues": plan.continues,
            "video": spec.models.video.model_dump(mode="json"),
            "size": [spec.width, spec.height],
            "fps": spec.fps,
            "color_correction": spec.color_correction,
            "encoder": list(encoder_for(spec)),
            "gate": [spec.max_attempts, checks.min_motion, checks.max_frozen_frames, checks.max_seam_ratio],
        }
    )


def encoder_for(spec: JobSpec) -> tuple[str, int]:
    """(x264 preset, crf): the spec's, else a fast default for the mock and a quality default for real
    models."""
    mock = spec.models.video.adapter.startswith("mock_")
    preset, crf = MOCK_ENCODER if mock else REAL_ENCODER
    if spec.encoder.preset != "auto":
        preset = spec.encoder.preset
    return preset, spec.encoder.crf if spec.encoder.crf is not None else crf


def attempt_seed(seed: int, attempt: int) -> int:
    """Attempt 1 uses the clip's own seed; later attempts seeds derived from it."""
    return seed if attempt == 1 else derive_seed(seed, f"attempt:{attempt}")


class _SourceChanged(Exception):
    """A clip being copied for reuse no longer matches its record."""


class ClipMaker:
    """Makes (or reuses) the clips of one video, in order."""

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
        self._stored = self._stored_records()

    @property
    def spec(self) -> JobSpec:
        return self.state.spec

    def _stored_records(self) -> dict[str, tuple[int, dict[str, Any]]]:
        """Content key -> (index, record) of every clip record in the folder when the step started."""
        found: dict[str, tuple[int, dict[str, Any]]] = {}
        for path in sorted(self.state.paths.root.glob("clips/clip_*.json")):
            record = read_record(path)
            stem = path.stem.removeprefix("clip_")
            if record and stem.isdigit() and record.get("content_key"):
                found.setdefault(record["content_key"], (int(stem), record))
        return found

    # ----- 1. what the clip is made from -----

    def prepare(self, plan: ClipPlan) -> Prepared:
        """The clip's inputs: the plan's seed and the scene's motion prompt, or the override stored for this
        clip (a single-clip re-make with another seed or prompt, kept until cleared)."""
        scene = self._script.scenes[plan.scene]
        override = read_record(self.state.paths.clip_override(plan.index))
        if override:
            if override.get("seed") is not None:
                plan = dataclasses.replace(plan, seed=int(override["seed"]))
            if override.get("motion_prompt"):
                scene = scene.model_copy(update={"motion_prompt": str(override["motion_prompt"])})
        prompt = self.spec.motion_prompt(scene)
        cond = conditioning_for(self.state, plan)
        key = clip_key(self.spec, plan, cond, prompt)
        return Prepared(plan=plan, cond=cond, prompt=prompt, key=key, override=override or None)

    # ----- 2. reuse -----

    def reuse(self, prepared: Prepared) -> MadeClip | None:
        """A stored clip with this key and intact files (at this index, or copied from another)."""
        paths, plan = self.state.paths, prepared.plan
        own = read_record(paths.clip_record(plan.index))
        if reusable(own, prepared.key, paths.root):
            return MadeClip(plan=plan, record=own, reused=True)
        index, record = self._stored.get(prepared.key, (None, None))
        if index is None or index == plan.index or not reusable(record, prepared.key, paths.root):
            return None
        sources = (paths.clip(index), paths.clip_first(index), paths.clip_last(index))
        targets = (paths.clip(plan.index), paths.clip_first(plan.index), paths.clip_last(plan.index))
        expected = record.get("files") or {}
        try:
            for source, target in zip(sources, targets, strict=True):
                with atomic_path(target) as tmp:
                    shutil.copyfile(source, tmp)
                    # the copy must be the file the source record describes (another step may rewrite it)
                    if sha256_file(tmp) != expected.get(paths.rel(source)):
                        raise _SourceChanged(source)
        except _SourceChanged:
            return None
        preview = paths.clip_preview(plan.index)
        if paths.clip_preview(index).is_file():
            with atomic_path(preview) as tmp:
                shutil.copyfile(paths.clip_preview(index), tmp)
        moved = {
            **record,
            "clip": plan.key,
            "file": paths.rel(targets[0]),
            "first_frame": paths.rel(targets[1]),
            "last_frame": paths.rel(targets[2]),
            "preview": paths.rel(preview),
            "files": {
                paths.rel(t): expected[paths.rel(src)] for src, t in zip(sources, targets, strict=True)
            },
            "copied_from": record["clip"],
        }
        write_json_atomic(paths.clip_record(plan.index), moved)
        return MadeClip(plan=plan, record=moved, reused=True)

    # ----- 3. making -----

    def make(self, model: VideoModel, prepared: Prepared, *, limit_s: float, label: str) -> MadeClip:
        """Up to ``max_attempts`` tries; raises ClipTimeoutError past ``limit_s`` (all tries together) and
        ClipRejectedError when every try fails a blocking check."""
        plan = prepared.plan
        deadline = Deadline(max(limit_s, 0.001), label=label)
        attempts: list[dict[str, Any]] = []
        for attempt in range(1, self.spec.max_attempts + 1):
            seed = attempt_seed(plan.seed, attempt)
            started = time.monotonic()
            raw, steps = self.generate(model, prepared, seed=seed, attempt=attempt, deadline=deadline)
            seconds = time.monotonic() - started
            frames = self.finish(plan, raw)
            accepted = self.write(plan, frames, raw, prepared, seed=seed, seconds=seconds, steps=steps)
            attempts.append(accepted.pop("_attempt"))
            if accepted.get("rejected"):
                self.log.warning(
                    "%s: attempt %d of %d (seed %d) rejected: %s",
                    label,
                    attempt,
                    self.spec.max_attempts,
                    seed,
                    ", ".join(attempts[-1]["failed"]),
                )
                continue
            accepted["attempts"] = attempts
            write_json_atomic(self.state.paths.clip_record(plan.index), accepted)
            return MadeClip(plan=plan, record=accepted)
        failed = sorted({name for a in attempts for name in a["failed"]})
        raise ClipRejectedError(
            f"{label}: all {len(attempts)} attempts failed their blocking checks ({', '.join(failed)}); "
            "earlier clips are kept",
            clip=plan.key,
            attempts=attempts,
        )

    def generate(
        self, model: VideoModel, prepared: Prepared, *, seed: int, attempt: int, deadline: Deadline
    ) -> tuple[ClipFrames, list[float]]:
        """The model call under the clip's deadline; returns the frames and each step's seconds."""
        from PIL import Image

        plan = prepared.plan
        steps: list[float] = []

        def on_step(progress: StepProgress) -> None:
            steps.append(progress.seconds)
            if self.on_step is not None:
                self.on_step(plan, progress)

        deadline.check()
        request = ClipRequest(
            image=Image.fromarray(prepared.cond.image),
            prompt=prepared.prompt,
            num_frames=plan.generate_frames,
            width=self.spec.width,
            height=self.spec.height,
            fps=self.spec.fps,
            seed=seed,
            deadline=deadline,
            on_step=on_step,
            attempt=attempt,
        )
        with watchdog(deadline):
            result = model.generate(request)
        if result.frames.shape[0] != plan.generate_frames:
            raise MediaError(
                f"{deadline.label}: the adapter returned {result.frames.shape[0]} frames, "
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

    def preview(self, frames: np.ndarray, path):
        """A small animated WebP of the clip (every 3rd frame) for the UI."""
        from i2v_dagster.verify.pictures import animated_webp

        return animated_webp(list(frames[::PREVIEW_STEP]), path, frame_ms=1000 * PREVIEW_STEP / self.spec.fps)

    def join_with_previous(self, prepared: Prepared, first: np.ndarray, pair_diffs: list[float]):
        """The join of a continuing clip with the clip before it (its conditioning frame is that clip's
        last frame), measured as the seam check does; None for a clip that starts from a picture."""
        from i2v_dagster.verify.continuity import measure_join

        plan = prepared.plan
        if not plan.continues:
            return None
        previous = read_record(self.state.paths.clip_record(plan.index - 1)) or {}
        return measure_join(
            f"{plan.index - 1:03d}->{plan.key}",
            prepared.cond.image,
            first,
            previous_diffs=(previous.get("checks") or {}).get("pair_diffs") or [],
            next_diffs=pair_diffs,
        )

    def write(
        self,
        plan: ClipPlan,
        frames: np.ndarray,
        raw: ClipFrames,
        prepared: Prepared,
        *,
        seed: int,
        seconds: float,
        steps: list[float],
    ) -> dict[str, Any]:
        """Encode (in an FFmpeg process) while the checks measure the frames; a try that fails a blocking
        check is dropped (its encode stopped), an accepted one gets its PNGs and its record's fields."""
        from i2v_dagster.media.video import PendingEncode, probe
        from i2v_dagster.verify.clip import Shape, Thresholds, clip_outcomes
        from i2v_dagster.verify.delivery import check_shape
        from i2v_dagster.verify.frames import ClipMeasures

        spec, paths = self.spec, self.state.paths
        preset, crf = encoder_for(spec)
        written = time.monotonic()
        encode = PendingEncode(frames, paths.clip(plan.index), fps=spec.fps, preset=preset, crf=crf)
        try:
            measures = ClipMeasures.of(frames)
            dropped = 1 if plan.continues else 0
            checks = clip_outcomes(
                frames,
                planned=Shape(plan.frames, spec.fps, spec.width, spec.height),
                encoded=Shape(plan.frames, spec.fps, spec.width, spec.height),  # replaced once probed
                reference=self.state.first_keyframe,
                nan_frames=[i - dropped for i in raw.nan_frames if i >= dropped],
                thresholds=Thresholds(
                    min_motion=spec.checks.min_motion,
                    max_color_drift=spec.checks.max_color_drift,
                    max_frozen_frames=spec.checks.max_frozen_frames,
                ),
                measures=measures,
            )
            join = self.join_with_previous(prepared, frames[0], checks.pair_diffs)
            failed = [o.name for o in checks.outcomes if o.name in BLOCKING and not o.passed]
            if join is not None and join.kind(max_seam_ratio=spec.checks.max_seam_ratio) != "ok":
                failed.append("seam")
            attempt = {
                "seed": seed,
                "failed": failed,
                "values": {o.name: o.value for o in checks.outcomes},
                "seconds": round(seconds, 3),
            }
            if join is not None:
                attempt["values"]["seam_ratio"] = round(join.ratio(), 4)
            if failed:
                encode.abort()
                return {"rejected": True, "_attempt": attempt}
            save_png_atomic(frames[0], paths.clip_first(plan.index))
            save_png_atomic(frames[-1], paths.clip_last(plan.index))
            preview = self.preview(frames, paths.clip_preview(plan.index))
        except BaseException:
            encode.abort()
            raise
        encode.finish()
        video = probe(paths.clip(plan.index)).video
        if video is None:
            raise MediaError(f"{paths.clip(plan.index)}: no video stream after encoding")
        planned = Shape(plan.frames, spec.fps, spec.width, spec.height)
        found = Shape(video.frames, video.fps, video.width, video.height)
        checks = checks.replacing(check_shape(found, planned))
        clip_file = paths.clip(plan.index)
        return {
            "clip": plan.key,
            "scene": plan.scene,
            "frames": int(frames.shape[0]),
            "generated_frames": int(raw.generated_frames or raw.frames.shape[0]),
            "dropped_first_frame": plan.continues,
            "fps": spec.fps,
            "seed": seed,
            "plan_seed": plan.seed,
            "prompt": prepared.prompt,
            "model_id": raw.model_id,
            "adapter": spec.models.video.adapter,
            "conditioning": prepared.cond.source,
            "conditioning_sha256": prepared.cond.sha256,
            "content_key": prepared.key,
            "nan_frames": list(raw.nan_frames),
            "seconds_generate": round(seconds, 3),
            "seconds_write": round(time.monotonic() - written, 3),
            "seconds_per_step": round(float(np.mean(steps)), 4) if steps else None,
            "steps": len(steps),
            "color_corrected": spec.color_correction,
            "encoder": {"preset": preset, "crf": crf},
            "file": paths.rel(clip_file),
            "sha256": sha256_file(clip_file),
            "bytes": clip_file.stat().st_size,
            "first_frame": paths.rel(paths.clip_first(plan.index)),
            "last_frame": paths.rel(paths.clip_last(plan.index)),
            "preview": paths.rel(preview),
            "override": prepared.override,
            "files": file_hashes(
                paths.root, (clip_file, paths.clip_first(plan.index), paths.clip_last(plan.index))
            ),
            "join": None
            if join is None
            else {"seam_diff": round(join.seam_diff, 4), "ratio": round(join.ratio(), 4)},
            "checks": checks.to_record(),
            "_attempt": attempt,
        }
