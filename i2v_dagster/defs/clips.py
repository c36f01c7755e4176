"""The chain of clips. `clips` makes clips 0..N-1 in order inside one step (Dagster cannot chain
partitions), logging a materialization of `clip` (video x clip id) after each; `clip` re-makes one clip
alone, conditioned on the stored last frame of the clip before it. The work itself is
:class:`i2v_dagster.render.ClipMaker`'s.

(No `from __future__ import annotations` in asset modules: Dagster resolves resource parameters from real
annotations.)
"""

import time

import dagster as dg

from i2v_dagster.defs.checks import (
    CLIP_CHECKS,
    CLIPS_CHECKS,
    check_evaluation,
    check_result,
    check_specs,
)
from i2v_dagster.defs.common import load_video, path_md, video_partition
from i2v_dagster.defs.outputs import OutputsResource
from i2v_dagster.defs.partitions import CLIP_PARTITIONS, VIDEOS, by_video, clip_key, ensure_clip_ids
from i2v_dagster.defs.residency import ModelResidency
from i2v_dagster.defs.story import keyframes, narration
from i2v_dagster.errors import ClipTimeoutError, MediaError
from i2v_dagster.guardrails import shielded
from i2v_dagster.models.registry import settings_for
from i2v_dagster.planning import ClipPlan
from i2v_dagster.progress import Progress
from i2v_dagster.render import ClipMaker, MadeClip
from i2v_dagster.state import VideoState
from i2v_dagster.verify.chain import outcome_from_record
from i2v_dagster.video_checks import chain_checks


def run_budget_left(context: dg.AssetExecutionContext, planned: int, limit_s: float) -> float:
    record = context.instance.get_run_record_by_id(context.run_id)
    start = record.start_time if record is not None and record.start_time else None
    budget = planned * limit_s
    return budget - (time.time() - start) if start else budget


def clip_label(plan: ClipPlan, state: VideoState) -> str:
    return f"clip {plan.key} of video {state.name!r}"


def make_one(
    context: dg.AssetExecutionContext,
    maker: ClipMaker,
    model,
    plan: ClipPlan,
    *,
    budget_left_s: float,
) -> MadeClip:
    """One clip under min(its limit, the run's budget left); a breach fails the step naming the clip."""
    spec = maker.spec
    limit = min(spec.clip_time_limit_s, budget_left_s)
    label = clip_label(plan, maker.state)
    if budget_left_s < spec.clip_time_limit_s:  # the run's budget, not the clip's own limit, binds
        label += f" (limited by the run budget: {budget_left_s:.1f} s left)"
    try:
        return maker.make(model, plan, limit_s=limit, label=label)
    except ClipTimeoutError as exc:
        raise dg.Failure(
            description=f"{label} ran over its time limit "
            f"({exc.limit_s:.1f} s, {exc.elapsed_s:.1f} s elapsed); clips made before it are kept",
            metadata={
                "clip": plan.key,
                "video": spec.name,
                "limit_s": round(exc.limit_s, 3),
                "elapsed_s": round(exc.elapsed_s, 3),
            },
            allow_retries=False,
        ) from None


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


def step_logger(context: dg.AssetExecutionContext, progress: Progress):
    """The model's per-step callback: progress lines in the run log, never cut by the clip's alarm."""

    def on_step(plan: ClipPlan, step) -> None:
        progress.step(step.seconds)
        if progress.should_report(step.step, step.total):
            with shielded():
                context.log.info(progress.step_line(plan.key, step.step, step.total, step.seconds))

    return on_step


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
    plans = timeline.clips
    ensure_clip_ids(context.instance, len(plans))
    progress = Progress(total_clips=len(plans))
    maker = ClipMaker(state, log=context.log, on_step=step_logger(context, progress))
    choice = state.spec.models.video
    started = time.monotonic()
    records = []
    with residency.use(choice.adapter, settings_for(choice)) as model:
        for plan in plans:
            budget = run_budget_left(context, len(plans), state.spec.clip_time_limit_s)
            progress.start_clip()
            made = make_one(context, maker, model, plan, budget_left_s=budget)
            progress.end_clip()
            records.append(made.record)
            partition = clip_key(state.name, plan.index)
            context.log_event(
                dg.AssetMaterialization(
                    asset_key="clip",
                    partition=partition,
                    metadata=clip_metadata(state, made.record),
                    description=f"clip {plan.key} of {state.name}, made by the clips step",
                )
            )
            for outcome in made.outcomes:
                context.log_event(
                    check_evaluation("clip", outcome_from_record(outcome), partition=str(partition))
                )
            context.log.info(
                progress.clip_line(
                    plan.key,
                    f"done: {made.record['frames']} frames, {made.record['steps']} steps, generated in "
                    f"{made.record['seconds_generate']:.2f} s, encoded and checked in "
                    f"{made.record['seconds_write']:.2f} s",
                )
            )
    total = time.monotonic() - started
    return dg.MaterializeResult(
        metadata={
            "clips": dg.MetadataValue.json([r["file"] for r in records]),
            "frames": dg.MetadataValue.json([r["frames"] for r in records]),
            "seeds": dg.MetadataValue.json([r["seed"] for r in records]),
            "content_keys": dg.MetadataValue.json([r["content_key"] for r in records]),
            "chain_mode": state.spec.chain_mode,
            "adapter": choice.adapter,
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
    progress = Progress(total_clips=1)
    maker = ClipMaker(state, log=context.log, on_step=step_logger(context, progress))
    choice = state.spec.models.video
    with residency.use(choice.adapter, settings_for(choice)) as model:
        # a one-clip run: its budget is the clip's own limit
        made = make_one(context, maker, model, plans[index], budget_left_s=state.spec.clip_time_limit_s)
    return dg.MaterializeResult(
        metadata=clip_metadata(state, made.record),
        check_results=[check_result("clip", outcome_from_record(o)) for o in made.outcomes],
    )


@dg.multi_asset_check(
    specs=check_specs(clips, CLIPS_CHECKS, VIDEOS),
    can_subset=True,
    description="The whole chain of clips: the worst clip decides; seams between clips.",
)
def clips_checks(context: dg.AssetCheckExecutionContext, outputs: OutputsResource):
    state = load_video(context, outputs, context.partition_key)
    for outcome in chain_checks(state):
        if outcome.status == "SKIPPED":  # not evaluated: the UI shows the check as skipped
            context.log.info("check clips:%s skipped: %s", outcome.name, outcome.skipped_reason)
            continue
        yield check_result("clips", outcome)
