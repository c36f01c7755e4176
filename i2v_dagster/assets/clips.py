"""The chain of clips. `clips` makes clips 0..N-1 in order inside one step (Dagster cannot chain
partitions), logging a materialization of `clip` (video x clip id) after each; `clip` re-makes one clip
alone, conditioned on the stored last frame of the clip before it.
"""

import hashlib
import json
import time
from dataclasses import dataclass

import dagster as dg
import numpy as np

from i2v_dagster.assets.common import VideoState, load_frame, load_video, path_md, video_partition
from i2v_dagster.assets.story import keyframes, narration
from i2v_dagster.assets.verification import (
    CLIP_CHECKS,
    CLIPS_CHECKS,
    _outcome,
    chain_outcomes,
    check_result,
    check_specs,
    clip_check_summary,
    clip_outcomes,
)
from i2v_dagster.errors import ClipTimeoutError, MediaError
from i2v_dagster.fsutil import save_png_atomic, sha256_file, write_json_atomic
from i2v_dagster.guardrails import Deadline, watchdog
from i2v_dagster.media.video import encode_frames, probe
from i2v_dagster.models.base import ClipRequest, StepProgress
from i2v_dagster.partitions import CLIP_IDS, CLIP_PARTITIONS, VIDEOS, by_video, clip_key
from i2v_dagster.planning import ClipPlan
from i2v_dagster.resources.outputs import OutputsResource
from i2v_dagster.resources.residency import ModelResidency


@dataclass(frozen=True)
class Conditioning:
    image: object  # PIL.Image.Image
    source: str
    sha256: str


def conditioning_for(state: VideoState, plan: ClipPlan) -> Conditioning:
    """Clip 0: the initial image or keyframe 0. Later clips: the previous clip's last frame
    (``last_frame`` mode), or the scene's keyframe at a scene's first clip (``keyframe`` mode)."""
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
    source = paths.rel(path) if path.resolve().is_relative_to(paths.root) else path.name
    return Conditioning(
        image=image, source=source, sha256=hashlib.sha256(np.asarray(image).tobytes()).hexdigest()
    )


def content_key(state: VideoState, plan: ClipPlan, cond: Conditioning, prompt: str) -> str:
    """What determines a clip: conditioning pixels, prompt, seed, adapter and settings, size and length."""
    spec = state.spec
    blob = json.dumps(
        {
            "conditioning": cond.sha256,
            "prompt": prompt,
            "seed": plan.seed,
            "frames": plan.frames,
            "video": spec.models.video.model_dump(),
            "size": [spec.width, spec.height],
            "fps": spec.fps,
            "color_correction": spec.color_correction,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def run_budget_left(context: dg.AssetExecutionContext, planned: int, limit_s: float) -> float:
    record = context.instance.get_run_record_by_id(context.run_id)
    start = record.start_time if record is not None and record.start_time else None
    budget = planned * limit_s
    return budget - (time.time() - start) if start else budget


def render_clip(
    context: dg.AssetExecutionContext,
    state: VideoState,
    plan: ClipPlan,
    residency: ModelResidency,
    *,
    budget_left_s: float,
) -> dict:
    """Make one clip, write its files atomically, return its metadata. Raises dg.Failure on a time breach."""
    spec, paths = state.spec, state.paths
    scene = state.script().scenes[plan.scene]
    prompt = spec.motion_prompt(scene)
    cond = conditioning_for(state, plan)
    limit = min(spec.clip_time_limit_s, budget_left_s)
    label = f"clip {plan.key} of video {spec.name!r}"
    if budget_left_s < spec.clip_time_limit_s:  # the run's budget, not the clip's own limit, binds
        label += f" (limited by the run budget: {budget_left_s:.1f} s left)"
    choice = spec.models.video
    steps: list[float] = []

    def on_step(progress: StepProgress) -> None:
        steps.append(progress.seconds)
        context.log.info(
            "%s: step %d of %d, %.2f s/step",
            f"clip {plan.key}",
            progress.step,
            progress.total,
            progress.seconds,
        )

    started = time.monotonic()
    try:
        with residency.use(choice.adapter, choice.settings()) as model:
            deadline = Deadline(max(limit, 0.001), label=label)
            deadline.check()
            with watchdog(deadline):
                result = model.generate(
                    ClipRequest(
                        image=cond.image,
                        prompt=prompt,
                        num_frames=plan.frames,
                        width=spec.width,
                        height=spec.height,
                        fps=spec.fps,
                        seed=plan.seed,
                        deadline=deadline,
                        on_step=on_step,
                    )
                )
    except ClipTimeoutError as exc:
        raise dg.Failure(
            description=f"{label} ran over its time limit "
            f"({exc.limit_s:.1f} s, {exc.elapsed_s:.1f} s elapsed); "
            "clips made before it are kept",
            metadata={
                "clip": plan.key,
                "video": spec.name,
                "limit_s": round(exc.limit_s, 3),
                "elapsed_s": round(exc.elapsed_s, 3),
            },
            allow_retries=False,
        ) from exc
    gen_seconds = time.monotonic() - started
    frames = result.frames
    if frames.shape[0] != plan.frames:
        raise MediaError(f"{label}: adapter returned {frames.shape[0]} frames, planned {plan.frames}")
    if spec.color_correction:
        from i2v_dagster.verify.color import match_color

        frames = match_color(frames, state.color_reference)
    encode_frames(frames, paths.clip(plan.index), fps=spec.fps)
    save_png_atomic(frames[0], paths.clip_first(plan.index))
    save_png_atomic(frames[-1], paths.clip_last(plan.index))
    outcomes = clip_outcomes(
        spec,
        plan,
        frames,
        nan_frames=result.nan_frames,
        reference=state.first_keyframe,
        encoded=probe(paths.clip(plan.index)),
    )
    record = {
        "clip": plan.key,
        "scene": plan.scene,
        "frames": int(frames.shape[0]),
        "generated_frames": int(result.generated_frames or frames.shape[0]),
        "fps": spec.fps,
        "seed": plan.seed,
        "prompt": prompt,
        "model_id": result.model_id,
        "adapter": choice.adapter,
        "conditioning": cond.source,
        "conditioning_sha256": cond.sha256,
        "content_key": content_key(state, plan, cond, prompt),
        "nan_frames": list(result.nan_frames),
        "seconds_generate": round(gen_seconds, 3),
        "seconds_per_step": round(float(np.mean(steps)), 4) if steps else None,
        "steps": len(steps),
        "color_corrected": spec.color_correction,
        "file": paths.rel(paths.clip(plan.index)),
        "sha256": sha256_file(paths.clip(plan.index)),
        "last_frame": paths.rel(paths.clip_last(plan.index)),
        "checks": clip_check_summary(outcomes, frames),
    }
    write_json_atomic(paths.clip_record(plan.index), record)
    context.log.info("%s: %d frames in %.2f s", label, record["frames"], gen_seconds)
    return record


def clip_metadata(state: VideoState, record: dict) -> dict[str, dg.MetadataValue]:
    paths = state.paths
    md: dict[str, dg.MetadataValue] = {
        "file": path_md(paths, paths.root / record["file"]),
        "last_frame": path_md(paths, paths.root / record["last_frame"]),
        "conditioning": dg.MetadataValue.text(record["conditioning"]),
    }
    for key in ("clip", "prompt", "model_id", "adapter", "content_key", "sha256", "conditioning_sha256"):
        md[key] = dg.MetadataValue.text(str(record[key]))
    for key in ("scene", "frames", "generated_frames", "fps", "seed", "steps"):
        md[key] = dg.MetadataValue.int(int(record[key]))
    md["seconds_generate"] = dg.MetadataValue.float(record["seconds_generate"])
    if record["seconds_per_step"] is not None:
        md["seconds_per_step"] = dg.MetadataValue.float(record["seconds_per_step"])
    md["nan_frames"] = dg.MetadataValue.json(record["nan_frames"])
    return md


def ensure_clip_partitions(instance: dg.DagsterInstance, n: int) -> None:
    keys = [f"{i:03d}" for i in range(n)]
    missing = [k for k in keys if not instance.has_dynamic_partition(CLIP_IDS.name, k)]
    if missing:
        instance.add_dynamic_partitions(CLIP_IDS.name, missing)


@dg.asset(
    partitions_def=VIDEOS,
    deps=[keyframes, narration],
    group_name="video",
    pool="gpu",
    description="All clips of the video, in order, each conditioned on the last frame of the clip before it.",
)
def clips(
    context: dg.AssetExecutionContext, outputs: OutputsResource, residency: ModelResidency
) -> dg.MaterializeResult:
    state = load_video(context, outputs, context.partition_key)
    timeline = state.timeline()
    ensure_clip_partitions(context.instance, len(timeline.clips))
    started = time.monotonic()
    records = []
    for plan in timeline.clips:
        budget = run_budget_left(context, len(timeline.clips), state.spec.clip_time_limit_s)
        record = render_clip(context, state, plan, residency, budget_left_s=budget)
        records.append(record)
        partition = clip_key(state.name, plan.index)
        context.log_event(
            dg.AssetMaterialization(
                asset_key="clip",
                partition=partition,
                metadata=clip_metadata(state, record),
                description=f"clip {plan.key} of {state.name}, made by the clips step",
            )
        )
        for outcome in record["checks"]["outcomes"]:
            context.log_event(check_result("clip", _outcome(outcome), partition=partition, evaluation=True))
    total = time.monotonic() - started
    return dg.MaterializeResult(
        metadata={
            "clips": dg.MetadataValue.json([r["file"] for r in records]),
            "frames": dg.MetadataValue.json([r["frames"] for r in records]),
            "seeds": dg.MetadataValue.json([r["seed"] for r in records]),
            "content_keys": dg.MetadataValue.json([r["content_key"] for r in records]),
            "chain_mode": state.spec.chain_mode,
            "adapter": state.spec.models.video.adapter,
            "seconds_total": round(total, 3),
            "seconds_per_clip": round(total / max(len(records), 1), 3),
        }
    )


@dg.asset(
    partitions_def=CLIP_PARTITIONS,
    deps=[dg.AssetDep(keyframes, partition_mapping=by_video())],
    group_name="video",
    pool="gpu",
    check_specs=check_specs("clip", CLIP_CHECKS, CLIP_PARTITIONS),
    description="One clip (video x clip id). Materialize one partition alone to re-make that clip, "
    "conditioned on the stored last frame of the clip before it.",
)
def clip(
    context: dg.AssetExecutionContext, outputs: OutputsResource, residency: ModelResidency
) -> dg.MaterializeResult:
    video = video_partition(context)
    index_key = context.partition_key.keys_by_dimension["clip"]
    state = load_video(context, outputs, video)
    plans = state.timeline().clips
    index = int(index_key)
    if index >= len(plans):
        raise MediaError(f"video {video!r} has {len(plans)} planned clips; there is no clip {index_key}")
    record = render_clip(
        context,
        state,
        plans[index],
        residency,
        budget_left_s=state.spec.clip_time_limit_s,  # a one-clip run: its budget is the clip's limit
    )
    return dg.MaterializeResult(
        metadata=clip_metadata(state, record),
        check_results=[check_result("clip", _outcome(o)) for o in record["checks"]["outcomes"]],
    )


@dg.multi_asset_check(
    specs=check_specs(clips, CLIPS_CHECKS, VIDEOS),
    can_subset=True,
    description="The whole chain of clips: the worst clip decides; seams between clips.",
)
def clips_checks(context: dg.AssetCheckExecutionContext, outputs: OutputsResource):
    state = load_video(context, outputs, context.partition_key)
    for outcome in chain_outcomes(state.spec, state.paths, state.timeline().clips):
        if outcome.status == "SKIPPED":  # not evaluated: the UI shows the check as skipped
            context.log.info("check clips:%s skipped: %s", outcome.name, outcome.skipped_reason)
            continue
        yield check_result("clips", outcome)
