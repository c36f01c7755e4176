"""The chain of clips. `clips` makes clips 0..N-1 in order inside one step (Dagster cannot chain
partitions), logging a materialization of `clip` (video x clip id) after each; `clip` re-makes one clip
alone, conditioned on the stored last frame of the clip before it. The work itself is
:class:`i2v_dagster.render.ClipMaker`'s.

(No `from __future__ import annotations` in asset modules: Dagster resolves resource parameters from real
annotations.)
"""

import contextlib
import time

import dagster as dg
from pydantic import Field

from i2v_dagster.artefacts import content_key
from i2v_dagster.defs.checks import (
    CLIP_CHECKS,
    CLIPS_CHECKS,
    check_evaluation,
    check_result,
    check_specs,
)
from i2v_dagster.defs.common import load_video, log_stage_plan, path_md
from i2v_dagster.defs.outputs import OutputsResource
from i2v_dagster.defs.partitions import (
    VIDEO_CLIPS,
    VIDEOS,
    clip_key,
    register_clips,
    split_clip_key,
    unregister_clips,
)
from i2v_dagster.defs.residency import ModelResidency
from i2v_dagster.defs.story import keyframes, narration
from i2v_dagster.errors import ClipRejectedError, ClipTimeoutError
from i2v_dagster.guardrails import shielded
from i2v_dagster.models.registry import stage_settings
from i2v_dagster.planning import ClipPlan
from i2v_dagster.progress import Progress, ProgressEvent, notify
from i2v_dagster.render import ClipMaker, MadeClip, Prepared
from i2v_dagster.spec import MAX_PROMPT, MAX_SEED
from i2v_dagster.state import VideoState
from i2v_dagster.verify.chain import outcome_from_record
from i2v_dagster.video_checks import chain_checks

DATA_VERSION_TAG = "dagster/data_version"
"""The tag Dagster reads a logged materialization's data version from."""


def clip_label(plan: ClipPlan, state: VideoState) -> str:
    return f"clip {plan.key} of video {state.name!r}"


class Budget:
    """The run's time budget counts only clips actually generated: each one made adds its own limit."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.spent_s = 0.0
        self.made = 0

    def left_for_next(self) -> float:
        return (self.made + 1) * self.limit_s - self.spent_s

    def add(self, seconds: float) -> None:
        self.made += 1
        self.spent_s += seconds


def make_one(
    maker: ClipMaker,
    model,
    prepared: Prepared,
    *,
    budget_left_s: float,
) -> MadeClip:
    """One clip under min(its limit, the run's budget left); a breach or a clip rejected on every attempt
    fails the step naming the clip (clips made before it stay)."""
    spec, plan = maker.spec, prepared.plan
    limit = min(spec.clip_time_limit_s, budget_left_s)
    label = clip_label(plan, maker.state)
    if budget_left_s < spec.clip_time_limit_s:  # the run's budget, not the clip's own limit, binds
        label += f" (limited by the run budget: {budget_left_s:.1f} s left)"
    try:
        return maker.make(model, prepared, limit_s=limit, label=label)
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
    except ClipRejectedError as exc:
        raise dg.Failure(
            description=str(exc),
            metadata={"clip": plan.key, "video": spec.name, "attempts": dg.MetadataValue.json(exc.attempts)},
            allow_retries=False,
        ) from None


def clip_metadata(state: VideoState, record: dict, *, reused: bool = False) -> dict[str, dg.MetadataValue]:
    from i2v_dagster.verify.pictures import webp_markdown

    paths = state.paths
    md: dict[str, dg.MetadataValue] = {
        "file": path_md(paths, paths.root / record["file"]),
        "path": dg.MetadataValue.path(str(paths.root / record["file"])),
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
    md["attempts"] = dg.MetadataValue.json(record.get("attempts") or [])
    md["reused"] = dg.MetadataValue.bool(reused)
    if record.get("override"):
        md["override"] = dg.MetadataValue.json(record["override"])
    preview = paths.root / record.get("preview", "-")
    if preview.is_file():
        md["preview"] = dg.MetadataValue.md(webp_markdown(preview, f"clip {record['clip']}"))
    return md


def step_logger(context: dg.AssetExecutionContext, progress: Progress, video: str):
    """The model's per-step callback: progress lines in the run log (never cut by the clip's alarm), and
    progress events for listeners in this process."""

    def on_step(plan: ClipPlan, step) -> None:
        progress.step(step.seconds)
        eta = progress.eta(step.step, step.total)
        notify(
            ProgressEvent(
                video=video,
                phase="clips",
                done=progress.done_clips + step.step / max(step.total, 1),
                total=progress.total_clips,
                text=f"clip {plan.index + 1} of {progress.total_clips}, step {step.step} of {step.total}",
                eta_s=eta,
            )
        )
        if progress.should_report(step.step, step.total):
            with shielded():
                context.log.info(progress.step_line(plan.index, step.step, step.total, step.seconds))

    return on_step


def clip_events(state: VideoState, made: MadeClip, *, step: str = "clips") -> list:
    """The `clip` partition's materialization (its content key as data version) and its check results."""
    partition = clip_key(state.name, made.plan.index)
    events: list = [
        dg.AssetMaterialization(
            asset_key="clip",
            partition=partition,
            metadata=clip_metadata(state, made.record, reused=made.reused),
            description=f"clip {made.plan.key} of {state.name}, made by the {step} step"
            + (" (reused)" if made.reused else ""),
            tags={DATA_VERSION_TAG: made.record["content_key"]},
        )
    ]
    events += [
        check_evaluation("clip", outcome_from_record(o), partition=str(partition)) for o in made.outcomes
    ]
    return events


def remove_stale_clips(context, state: VideoState, planned: int, stale_keys: list[str]) -> None:
    """Clips beyond the plan (an edit made the video shorter): their files go, their partitions are
    reported as no longer in the plan, then removed from the picker."""
    from i2v_dagster.defs.story import remove_beyond

    remove_beyond(state.paths, planned, ("clips/clip_*",), context.log)
    for key in stale_keys:
        context.log_event(
            dg.AssetObservation(
                asset_key="clip",
                partition=key,
                metadata={
                    "status": dg.MetadataValue.text("stale: no longer in the video's plan; files removed")
                },
            )
        )
    unregister_clips(context.instance, stale_keys)


def make_clips(
    context,
    state: VideoState,
    plans: list[ClipPlan],
    maker: ClipMaker,
    model,
    progress: Progress,
    budget: Budget,
    *,
    step: str = "clips",
) -> tuple[list[dict], list[str]]:
    """Make (or reuse) ``plans`` in order with ``model`` (a lazy handle: loaded at the first clip made),
    logging each clip's `clip` materialization and checks and a progress line; returns the clips' records
    and the ids of those reused."""
    records: list[dict] = []
    reused: list[str] = []
    for plan in plans:
        prepared = maker.prepare(plan)
        made = maker.reuse(prepared)
        if made is not None:
            progress.skip_clip()
            reused.append(plan.key)
            context.log.info("reused clip %s (key %s)", plan.key, prepared.key[:12])
        else:
            progress.start_clip()
            clip_started = time.monotonic()
            made = make_one(maker, model.get(), prepared, budget_left_s=budget.left_for_next())
            budget.add(time.monotonic() - clip_started)
            progress.end_clip()
            context.log.info(
                progress.clip_line(
                    plan.index,
                    f"done: {made.record['frames']} frames, {made.record['steps']} steps, "
                    f"attempt {len(made.record['attempts'])}, generated in "
                    f"{made.record['seconds_generate']:.2f} s, encoded and checked in "
                    f"{made.record['seconds_write']:.2f} s",
                )
            )
        records.append(made.record)
        for event in clip_events(state, made, step=step):
            context.log_event(event)
        notify(
            ProgressEvent(
                video=state.name,
                phase="clips",
                done=progress.done_clips,
                total=progress.total_clips,
                text=f"clip {plan.index + 1} of {progress.total_clips} {'reused' if made.reused else 'done'}",
                eta_s=progress.eta(),
            )
        )
    return records, reused


@dg.asset(
    partitions_def=VIDEOS,
    deps=[keyframes, narration],
    group_name="video",
    pool="gpu",
    description="All clips of the video, in order, each conditioned on the last frame of the clip before it. "
    "A clip whose content key (conditioning pixels, prompt, seed, model, settings) matches a stored clip "
    "with intact files is reused, not made again.",
)
def clips(
    context: dg.AssetExecutionContext, outputs: OutputsResource, residency: ModelResidency
) -> dg.MaterializeResult:
    state = load_video(context, outputs, context.partition_key)
    plans = state.timeline().clips
    stale_keys = register_clips(context.instance, state.name, len(plans))
    progress = Progress(total_clips=len(plans))
    maker = ClipMaker(state, log=context.log, on_step=step_logger(context, progress, state.name))
    choice = state.spec.models.video
    budget = Budget(state.spec.clip_time_limit_s)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        log_stage_plan(context, state.spec, "video")
        model = residency.lazy(stack, choice.adapter, stage_settings(state.spec, "video"))
        records, reused = make_clips(context, state, plans, maker, model, progress, budget)
    remove_stale_clips(context, state, len(plans), stale_keys)
    metadata = chain_metadata(
        state, records, reused, made=budget.made, spent_s=budget.spent_s, total_s=time.monotonic() - started
    )
    return dg.MaterializeResult(metadata=metadata, data_version=chain_version(records))


def chain_metadata(
    state: VideoState, records: list[dict], reused: list[str], *, made: int, spent_s: float, total_s: float
) -> dict:
    """The `clips` materialization's metadata (the sequential step's and the parallel job's)."""
    return {
        "clips": dg.MetadataValue.json([r["file"] for r in records]),
        "frames": dg.MetadataValue.json([r["frames"] for r in records]),
        "seeds": dg.MetadataValue.json([r["seed"] for r in records]),
        "content_keys": dg.MetadataValue.json([r["content_key"] for r in records]),
        "reused_clips": dg.MetadataValue.json(reused),
        "made_clips": made,
        "chain_mode": state.spec.chain_mode,
        "adapter": state.spec.models.video.adapter,
        "seconds_total": round(total_s, 3),
        "seconds_per_made_clip": round(spent_s / max(made, 1), 3),
    }


def chain_version(records: list[dict]) -> dg.DataVersion:
    """The `clips` data version: the content keys of its clips, in order."""
    return dg.DataVersion(content_key({"clips": [r["content_key"] for r in records]}))


class ClipConfig(dg.Config):
    """Debugging one clip: another seed or motion prompt for it, kept (and used by later runs and stitches
    of the video) until cleared."""

    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="Make this clip with this seed instead of the plan's."
    )
    motion_prompt: str | None = Field(
        None, max_length=MAX_PROMPT, description="Make this clip with this motion prompt, not its scene's."
    )
    clear: bool = Field(False, description="Drop a stored seed/prompt: the clip goes back to the spec's.")


def apply_override(state: VideoState, index: int, config: ClipConfig) -> dict | None:
    """Store (or clear) the clip's override; returns what is stored now."""
    from i2v_dagster.artefacts import read_record
    from i2v_dagster.fsutil import write_json_atomic

    path = state.paths.clip_override(index)
    if config.clear:
        path.unlink(missing_ok=True)
        return None
    stored = read_record(path) or {}
    given = (("seed", config.seed), ("motion_prompt", config.motion_prompt))
    asked = {k: v for k, v in given if v is not None}
    if asked and {**stored, **asked} != stored:
        stored = {**stored, **asked}
        write_json_atomic(path, stored)
    return stored or None


@dg.asset(
    partitions_def=VIDEO_CLIPS,
    group_name="video",
    pool="gpu",
    check_specs=check_specs("clip", CLIP_CHECKS, VIDEO_CLIPS),
    description="One clip of a video (`001|demo`: clip 001 of video demo), made by the `clips` step. "
    "Materialize one partition alone to re-make that clip, conditioned on the stored last frame of the clip "
    "before it, with another seed or motion prompt if you like (config); a clip whose inputs are "
    "unchanged is reported unchanged and kept.",
)
def clip(
    context: dg.AssetExecutionContext,
    config: ClipConfig,
    outputs: OutputsResource,
    residency: ModelResidency,
) -> dg.MaterializeResult:
    video, index = split_clip_key(context.partition_key)
    state = load_video(context, outputs, video)
    plans = state.timeline().clips
    if index >= len(plans):
        raise dg.Failure(
            description=f"video {video!r} has {len(plans)} planned clips (000..{len(plans) - 1:03d}); "
            f"there is no clip {index:03d}",
            allow_retries=False,
        )
    override = apply_override(state, index, config)
    progress = Progress(total_clips=len(plans), done_clips=len(plans) - 1)  # "clip 2 of 9": this one is left
    maker = ClipMaker(state, log=context.log, on_step=step_logger(context, progress, video))
    prepared = maker.prepare(plans[index])
    made = maker.reuse(prepared)
    if made is not None:
        context.log.info("clip %03d unchanged (key %s): kept as it is", index, prepared.key[:12])
    else:
        if override:
            context.log.info("clip %03d: made with %s (kept until cleared)", index, override)
        choice = state.spec.models.video
        log_stage_plan(context, state.spec, "video")
        with residency.use(choice.adapter, stage_settings(state.spec, "video")) as model:
            # a one-clip run: its budget is the clip's own limit
            made = make_one(maker, model, prepared, budget_left_s=state.spec.clip_time_limit_s)
    metadata = clip_metadata(state, made.record, reused=made.reused)
    metadata["status"] = dg.MetadataValue.text("unchanged" if made.reused else "made")
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[check_result("clip", outcome_from_record(o)) for o in made.outcomes],
        data_version=dg.DataVersion(made.record["content_key"]),
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
