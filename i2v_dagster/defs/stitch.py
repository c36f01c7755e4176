"""stitched_video: the planned clips concatenated (stream copy) with the narration muxed, replacing the
previous final only when the new one passes its blocking checks (sync, shape); pictures of the run
(contact sheet, motion/drift plot) attached to the materialization; prompt fidelity as a separate check.

(No `from __future__ import annotations` in asset modules: Dagster resolves resource parameters from real
annotations.)
"""

import time

import dagster as dg

from i2v_dagster.defs.checks import check_result, check_specs
from i2v_dagster.defs.clips import clips
from i2v_dagster.defs.common import load_video, path_md, timings_md
from i2v_dagster.defs.outputs import OutputsResource
from i2v_dagster.defs.partitions import VIDEOS
from i2v_dagster.defs.residency import ModelResidency
from i2v_dagster.defs.storage import latest_materialization
from i2v_dagster.defs.story import narration
from i2v_dagster.errors import MediaError
from i2v_dagster.fsutil import sha256_file
from i2v_dagster.models.registry import settings_for, stage_settings
from i2v_dagster.state import VideoState
from i2v_dagster.stitching import make_pictures, stitch_video
from i2v_dagster.verify import CheckOutcome
from i2v_dagster.verify.pictures import png_markdown, webp_markdown

NO_SCORER = "no scorer configured (models.scorer.adapter is 'none')"


def scorer_skip_reason(state: VideoState) -> str | None:
    """Why prompt fidelity cannot be scored (None when a scorer with weights is configured)."""
    choice = state.spec.scorer
    if choice is None:
        return NO_SCORER
    try:
        from i2v_dagster.models.clip_scorer import scorer_availability
    except ImportError as exc:  # the [models] extra is not installed
        return f"scorer {choice.adapter!r} unavailable: {exc}"
    return scorer_availability(settings_for(choice))


NARRATION_DIGESTS = ("narration_sha256", "timeline_sha256")


def recorded_narration(context, video: str) -> dict[str, str]:
    """The narration's and the timeline's sha256 as the latest `narration` materialization recorded them
    (one storage read; a digest not recorded is absent)."""
    record = latest_materialization(context.instance, narration.key, video)
    metadata = record.asset_materialization.metadata if record is not None else {}
    return {key: str(metadata[key].value) for key in NARRATION_DIGESTS if key in metadata}


@dg.asset(
    partitions_def=VIDEOS,
    deps=[clips, narration],
    group_name="video",
    check_specs=check_specs("stitched_video", ("sync", "shape"), VIDEOS),
    description="The clips stitched by stream copy, with the narration muxed as AAC; contact sheet and plot.",
)
def stitched_video(context: dg.AssetExecutionContext, outputs: OutputsResource) -> dg.MaterializeResult:
    state = load_video(context, outputs, context.partition_key, phase="stitched_video")
    spec, paths = state.spec, state.paths
    try:
        done = stitch_video(state, **recorded_narration(context, state.name))
    except MediaError as exc:  # an input or the new file failed a check: the previous final is kept
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    context.log.info(
        "stitched %d clips into %s (%s) in %.2f s",
        len(done.records),
        paths.rel(done.path),
        "stream copy" if done.stream_copy else "re-encoded",
        done.seconds,
    )
    started = time.monotonic()
    pictures = make_pictures(state, done.records)
    skip = scorer_skip_reason(state)
    metadata = {
        "file": path_md(paths, done.path),
        "path": dg.MetadataValue.path(str(done.path)),
        "sha256": sha256_file(done.path),
        "clips": len(done.records),
        "clip_content_keys": dg.MetadataValue.json([r["content_key"][:12] for r in done.records.values()]),
        "frames": done.frames,
        "fps": spec.fps,
        "size": f"{done.width}x{done.height}",
        "video_duration_s": round(done.video_duration_s, 4),
        "has_audio": done.audio_duration_s is not None,
        "contact_sheet": dg.MetadataValue.md(png_markdown(pictures["contact_sheet"], "contact sheet")),
        "motion_drift_plot": dg.MetadataValue.md(
            png_markdown(pictures["motion_drift_plot"], "motion and drift")
        ),
        "contact_sheet_file": path_md(paths, pictures["contact_sheet"]),
        **(
            {"preview": dg.MetadataValue.md(webp_markdown(pictures["preview"], f"{state.name} preview"))}
            if pictures["preview"] is not None
            else {}
        ),
        "motion_drift_plot_file": path_md(paths, pictures["motion_drift_plot"]),
        "skipped_checks": dg.MetadataValue.json({"prompt_fidelity": skip} if skip else {}),
        **timings_md(stitch=done.seconds, pictures=time.monotonic() - started),
    }
    if done.audio_duration_s is not None:
        metadata["audio_duration_s"] = round(done.audio_duration_s, 4)
        metadata["audio_video_diff_s"] = round(abs(done.audio_duration_s - done.video_duration_s), 4)
    return dg.MaterializeResult(
        metadata=metadata, check_results=[check_result("stitched_video", o) for o in done.outcomes]
    )


def prompt_fidelity_outcome(state: VideoState, residency: ModelResidency) -> CheckOutcome:
    """CLIP scores of keyframes and sampled clip frames against their scene's keyframe prompt."""
    from PIL import Image

    from i2v_dagster.errors import ScorerUnavailableError
    from i2v_dagster.media.video import read_frames
    from i2v_dagster.verify.fidelity import NAME, check_prompt_fidelity, sample_indices

    spec, paths = state.spec, state.paths
    threshold = spec.checks.min_clip_score
    choice = spec.scorer
    if choice is None:
        return CheckOutcome.skipped(NAME, NO_SCORER, threshold=threshold)
    script = state.script()
    prompts = [spec.keyframe_prompt(s, script.subject) for s in script.scenes]
    images, texts, labels = [], [], []
    for i, prompt in enumerate(prompts):
        images.append(Image.open(paths.keyframe(i)).convert("RGB"))
        texts.append(prompt)
        labels.append(f"keyframe {i:03d}")
    for plan in state.timeline().clips:
        frames = read_frames(paths.clip(plan.index))
        for j in sample_indices(len(frames), spec.checks.sampled_frames):
            images.append(Image.fromarray(frames[j]))
            texts.append(prompts[plan.scene])
            labels.append(f"clip {plan.key} frame {j}")
    try:
        with residency.use(choice.adapter, stage_settings(spec, "scorer")) as scorer:
            scores = scorer.score(images, texts)
    except ScorerUnavailableError as exc:
        return CheckOutcome.skipped(NAME, str(exc), threshold=threshold)
    return check_prompt_fidelity(
        scores.per_model, labels, min_clip_score=threshold, sampled=spec.checks.sampled_frames
    )


@dg.multi_asset_check(
    specs=check_specs(stitched_video, ("prompt_fidelity",), VIDEOS),
    can_subset=True,
    description="Prompt fidelity (CLIP) of keyframes and sampled clip frames, when a scorer is set.",
)
def stitched_checks(
    context: dg.AssetCheckExecutionContext, outputs: OutputsResource, residency: ModelResidency
):
    state = load_video(context, outputs, context.partition_key)
    fidelity = prompt_fidelity_outcome(state, residency)
    if fidelity.status == "SKIPPED":  # not evaluated, never faked: the UI shows it as skipped
        context.log.warning("check stitched_video:prompt_fidelity skipped: %s", fidelity.skipped_reason)
        return
    severity = dg.AssetCheckSeverity(state.spec.checks.clip_score_severity)
    yield check_result("stitched_video", fidelity, severity=severity)
