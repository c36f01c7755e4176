"""Scenes in parallel: `render_video_parallel` makes the `clips` asset with one GPU step per scene.

In ``keyframe`` chain mode every scene starts from its own keyframe, so its clips depend on nothing made by
another scene: the graph ``scene_clips`` plans the video's scenes (``plan_scenes``), makes each scene's
clips in its own step (``make_scene``, `gpu` pool, mapped over a dynamic output) on whichever executor the
job runs with, and then records the whole chain (``collect_clips``): the `clips` materialization with the
same metadata and data version as the sequential step, the `clip` partitions (logged by each scene's step as
its clips are made) and the files on disk are the ones `render_video` makes, so `stitched_video`, `bundle`,
the `clips` checks and single-clip re-makes work unchanged. In ``last_frame`` mode each clip starts from the
last frame of the one before it: the plan is one group, made in one step (the sequential chain).

The graph-backed `clips` lives only in this job's asset graph (the code location's `clips` stays the
sequential step that `render_video` and the UI's "Materialize" use): the job is resolved from its own
:class:`dagster.Definitions` and registered as a resolved job.

Executor (``I2V_PARALLEL_EXECUTOR`` when the code location loads; ``deploy/README.md`` says which goes with
which deployment):
- ``multiprocess`` (default): one process per step on the run's host; the `gpu` pool limits how many scene
  steps run at once. With ``I2V_GPU_DEVICES=0,1`` each GPU step takes a free device of that list (a lock
  per device, held while the step runs) and sees only that one (``CUDA_VISIBLE_DEVICES``).
  Under dagster-celery's run launcher the run is a Celery task: its worker must use ``--pool solo`` (a
  prefork pool process may not start processes) and see the host's GPUs (deploy/README.md, "one video on
  the GPUs of one host").
- ``k8s``: dagster-k8s's executor; each step is a pod, GPU requests per op in the run config
  (``deploy/k8s/parallel-run-config.yaml``): one video's scenes on GPUs of several nodes.

(dagster-celery's executor is not offered: under its own run launcher the run is a Celery task, and Celery
refuses to wait for the step tasks from inside a task.)

(No `from __future__ import annotations` in asset/op modules: Dagster resolves resource parameters from
real annotations.)
"""

import contextlib
import fcntl
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from i2v_dagster.artefacts import read_record
from i2v_dagster.defs.clips import (
    Budget,
    chain_metadata,
    chain_version,
    make_clips,
    remove_stale_clips,
    step_logger,
)
from i2v_dagster.defs.common import load_video, log_stage_plan
from i2v_dagster.defs.outputs import OutputsResource
from i2v_dagster.defs.partitions import VIDEOS, register_clips
from i2v_dagster.defs.residency import ModelResidency
from i2v_dagster.errors import SpecError
from i2v_dagster.models.registry import stage_settings
from i2v_dagster.progress import Progress
from i2v_dagster.render import ClipMaker

JOB_NAME = "render_video_parallel"
EXECUTOR_ENV = "I2V_PARALLEL_EXECUTOR"
EXECUTORS = ("multiprocess", "k8s")
GPU_DEVICES_ENV = "I2V_GPU_DEVICES"
GPU_LOCK_DIR_ENV = "I2V_GPU_LOCK_DIR"
CHAIN_GROUP = "chain"
"""The one group of a ``last_frame`` video: every clip, in order, in one step."""


def scene_groups(chain_mode: str, plans) -> dict[str, list[int]]:
    """Mapping key -> clip indices made by one step: one group per scene in ``keyframe`` mode (a scene's
    first clip starts from its keyframe), one group with every clip otherwise (each clip continues the
    clip before it)."""
    if chain_mode != "keyframe":
        return {CHAIN_GROUP: [p.index for p in plans]}
    groups: dict[str, list[int]] = {}
    for plan in plans:
        groups.setdefault(f"scene_{plan.scene:03d}", []).append(plan.index)
    for key, indices in groups.items():
        first = plans[indices[0]]
        if not first.first_of_scene or first.continues:  # the plan must start each scene from a picture
            raise SpecError(f"{key}: clip {first.key} continues another clip; scenes are not independent")
    return groups


@dg.op(
    ins={"keyframes": dg.In(dg.Nothing), "narration": dg.In(dg.Nothing)},
    out=dg.DynamicOut(list),
    description="The video's clips grouped by scene (keyframe mode) or as one chain (last_frame mode).",
)
def plan_scenes(context: dg.OpExecutionContext, outputs: OutputsResource):
    state = load_video(context, outputs, context.partition_key)
    plans = state.timeline().clips
    register_clips(context.instance, state.name, len(plans))  # the stale ones go in collect_clips
    try:
        groups = scene_groups(state.spec.chain_mode, plans)
    except SpecError as exc:
        raise dg.Failure(description=f"video {state.name!r}: {exc}", allow_retries=False) from None
    if list(groups) == [CHAIN_GROUP]:
        context.log.info(
            "chain mode %s: each clip continues the one before it, so the %d clips are one sequential chain "
            "made in one step (keyframe mode makes each scene in its own step)",
            state.spec.chain_mode,
            len(plans),
        )
    else:
        context.log.info(
            "keyframe mode: %d scenes, %d clips, one step per scene: %s",
            len(groups),
            len(plans),
            ", ".join(f"{k} ({len(v)} clips)" for k, v in groups.items()),
        )
    for key, indices in groups.items():
        yield dg.DynamicOutput(indices, mapping_key=key)


def claim_gpu(stack: contextlib.ExitStack, log) -> str | None:
    """With ``I2V_GPU_DEVICES`` set (a host's devices, e.g. ``0,1``): take the first device no other step
    holds (an exclusive lock on ``<I2V_GPU_LOCK_DIR>/i2v-gpu-<device>.lock``, released when ``stack``
    closes or the process ends) and make it the only one this process sees. Must run before CUDA starts in
    this process (a step process of the multiprocess executor starts without it)."""
    devices = [d.strip() for d in os.environ.get(GPU_DEVICES_ENV, "").split(",") if d.strip()]
    if not devices:
        return None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise dg.Failure(
            description=f"{GPU_DEVICES_ENV}: CUDA already started in this process, so a device cannot be "
            "chosen for the step (run render_video_parallel on the multiprocess executor)",
            allow_retries=False,
        )
    lock_dir = Path(os.environ.get(GPU_LOCK_DIR_ENV) or tempfile.gettempdir())
    for device in devices:
        handle = (lock_dir / f"i2v-gpu-{device}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        stack.callback(handle.close)
        os.environ["CUDA_VISIBLE_DEVICES"] = device
        log.info("GPU %s of %s=%s for this step", device, GPU_DEVICES_ENV, ",".join(devices))
        return device
    raise dg.Failure(
        description=f"{GPU_DEVICES_ENV}={','.join(devices)}: every device is held by another step; the `gpu` "
        "pool's limit must not exceed the number of devices",
        allow_retries=False,
    )


@dg.op(pool="gpu", description="Make (or reuse) one scene's clips in order; the video model loads lazily.")
def make_scene(
    context: dg.OpExecutionContext, outputs: OutputsResource, residency: ModelResidency, group: list
) -> dict:
    state = load_video(context, outputs, context.partition_key)
    timeline = state.timeline().clips
    plans = [timeline[i] for i in group]
    # "clip i of N" names the clip in the whole video; the ETA is this step's (other steps' clips count done)
    progress = Progress(total_clips=len(timeline), done_clips=len(timeline) - len(plans))
    maker = ClipMaker(state, log=context.log, on_step=step_logger(context, progress, state.name))
    budget = Budget(state.spec.clip_time_limit_s)
    with contextlib.ExitStack() as stack:
        claim_gpu(stack, context.log)
        log_stage_plan(context, state.spec, "video")
        model = residency.lazy(stack, state.spec.models.video.adapter, stage_settings(state.spec, "video"))
        _, reused = make_clips(context, state, plans, maker, model, progress, budget, step="make_scene")
    return {"clips": [p.key for p in plans], "reused": reused, "made": budget.made, "spent_s": budget.spent_s}


@dg.op(description="Record the whole chain: the `clips` materialization (its checks are their own step).")
def collect_clips(context: dg.OpExecutionContext, outputs: OutputsResource, scenes: list) -> dg.Output[None]:
    state = load_video(context, outputs, context.partition_key)
    plans = state.timeline().clips
    records = [read_record(state.paths.clip_record(p.index)) for p in plans]
    missing = [p.key for p, r in zip(plans, records, strict=True) if r is None]
    if missing:
        raise dg.Failure(
            description=f"video {state.name!r}: clips {', '.join(missing)} have no record after their scene "
            "steps",
            allow_retries=False,
        )
    remove_stale_clips(context, state, len(plans), register_clips(context.instance, state.name, len(plans)))
    started = min((e.timestamp for e in _step_starts(context)), default=time.time())
    metadata = chain_metadata(
        state,
        records,
        sorted(k for s in scenes for k in s["reused"]),
        made=sum(s["made"] for s in scenes),
        spent_s=sum(s["spent_s"] for s in scenes),
        total_s=time.time() - started,
    )
    metadata["scene_steps"] = len(scenes)
    with warnings.catch_warnings():  # Output's data_version is a beta parameter in Dagster 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(None, metadata=metadata, data_version=chain_version(records))


def _step_starts(context: dg.OpExecutionContext) -> list:
    """This run's `plan_scenes` start: where making the clips began."""
    records = context.instance.get_records_for_run(
        context.run_id, of_type=dg.DagsterEventType.STEP_START
    ).records
    return [r.event_log_entry for r in records if (r.event_log_entry.step_key or "").endswith("plan_scenes")]


@dg.graph(
    ins={"keyframes": dg.GraphIn(), "narration": dg.GraphIn()},
    description="The video's clips, one step per scene in keyframe mode.",
)
def scene_clips(keyframes, narration):
    groups = plan_scenes(keyframes=keyframes, narration=narration)
    return collect_clips(groups.map(make_scene).collect())


clips_by_scene = dg.AssetsDefinition.from_graph(
    scene_clips,
    keys_by_input_name={"keyframes": dg.AssetKey("keyframes"), "narration": dg.AssetKey("narration")},
    keys_by_output_name={"result": dg.AssetKey("clips")},
    partitions_def=VIDEOS,
    group_name="video",
    descriptions_by_output_name={
        "result": "All clips of the video, each scene made in its own step (keyframe mode); a clip whose "
        "content key matches a stored clip with intact files is reused."
    },
)
"""The `clips` asset of `render_video_parallel` (see the module docstring)."""


def forkserver_executor() -> dg.ExecutorDefinition:
    """Dagster's multiprocess executor with its ``forkserver`` start method: each step's process is forked
    from a server that has imported the code location once (the default ``spawn`` imports it again for every
    step). ``max_concurrent`` (default: the CPU count) stays run config; the `gpu` pool limits the scenes."""

    def to_multiprocess(config: dict) -> dict:
        return {"max_concurrent": config["max_concurrent"], "start_method": {"forkserver": {}}}

    return dg.multiprocess_executor.configured(
        to_multiprocess,
        name="multiprocess",
        config_schema={
            "max_concurrent": dg.Field(
                int,
                default_value=0,
                description="Steps at once (0: the CPU count; the `gpu` pool still applies).",
            )
        },
    )


def parallel_executor(name: str | None = None) -> dg.ExecutorDefinition:
    """The executor named by ``I2V_PARALLEL_EXECUTOR`` (default ``multiprocess``)."""
    name = name or os.environ.get(EXECUTOR_ENV) or "multiprocess"
    if name == "multiprocess":
        return forkserver_executor()
    if name == "k8s":
        from i2v_dagster.extras import require_extra

        return require_extra("dagster_k8s", f"{EXECUTOR_ENV}=k8s", extra="fleet").k8s_job_executor
    raise SpecError(f"{EXECUTOR_ENV}: {name!r} is not one of {', '.join(EXECUTORS)}")


def render_video_parallel(resources: dict[str, Any], executor_name: str | None = None) -> dg.JobDefinition:
    """The resolved job: script -> narration -> keyframes -> clips (one step per scene) -> stitched_video ->
    bundle, with the `clips` and `stitched_video` checks, on the parallel executor."""
    from i2v_dagster.defs.bundle import bundle
    from i2v_dagster.defs.clips import clip, clips_checks
    from i2v_dagster.defs.jobs import DEFAULT_MAX_RUNTIME_S, launchpad_config
    from i2v_dagster.defs.stitch import stitched_checks, stitched_video
    from i2v_dagster.defs.story import keyframes, narration, script

    job = dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.assets(
            script, narration, keyframes, clips_by_scene, stitched_video, bundle
        ),
        partitions_def=VIDEOS,
        config=dg.PartitionedConfig(partitions_def=VIDEOS, run_config_for_partition_key_fn=launchpad_config),
        executor_def=parallel_executor(executor_name),
        tags={"dagster/max_runtime": str(DEFAULT_MAX_RUNTIME_S)},
        description="Render one video with each scene's clips in its own GPU step (keyframe mode; a "
        "last_frame video is one chain in one step): script -> bundle.",
    )
    graph = dg.Definitions(
        assets=[script, narration, keyframes, clips_by_scene, clip, stitched_video, bundle],
        asset_checks=[clips_checks, stitched_checks],
        jobs=[job],
        resources=resources,
    )
    return graph.resolve_job_def(JOB_NAME)
