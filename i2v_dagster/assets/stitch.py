"""stitched_video: the planned clips concatenated (stream copy) with the narration muxed; pictures of
the run (contact sheet, motion/drift plot) attached to the materialization; sync and prompt-fidelity
checks."""

import json
import time

import dagster as dg
import numpy as np

from i2v_dagster.assets.clips import clip, clips
from i2v_dagster.assets.common import VideoState, load_rgb, load_video, path_md, timings_md
from i2v_dagster.assets.story import narration
from i2v_dagster.assets.verification import (
    STITCHED_CHECKS,
    check_result,
    check_specs,
    prompt_fidelity_outcome,
    sync_outcome,
)
from i2v_dagster.errors import MediaError
from i2v_dagster.fsutil import sha256_file
from i2v_dagster.media.video import probe, read_frames, stitch
from i2v_dagster.partitions import VIDEOS, by_video
from i2v_dagster.planning import Timeline
from i2v_dagster.resources.outputs import OutputsResource
from i2v_dagster.resources.residency import ModelResidency
from i2v_dagster.verify.motion import motion_fractions
from i2v_dagster.verify.pictures import contact_sheet, motion_drift_plot, png_markdown


def scorer_skip_reason(state: VideoState) -> str | None:
    """Why prompt fidelity cannot be scored (None when a scorer with weights is configured)."""
    choice = state.spec.scorer
    if choice is None:
        return "no scorer configured (models.scorer.adapter is 'none')"
    try:
        from i2v_dagster.models.clip_scorer import scorer_availability
    except ImportError as exc:  # the [models] extra is not installed
        return f"scorer {choice.adapter!r} unavailable: {exc}"
    return scorer_availability(choice.settings())


def make_pictures(state: VideoState, timeline: Timeline, records: list[dict]) -> dict[str, dg.MetadataValue]:
    """Contact sheet (keyframes, first/last frame of each clip, seams) and the motion/drift plot."""
    spec, paths = state.spec, state.paths
    plans = timeline.clips
    firsts = [load_rgb(paths.clip_first(p.index)) for p in plans]
    lasts = [load_rgb(paths.clip_last(p.index)) for p in plans]
    rows = [
        ("keyframes", [load_rgb(paths.keyframe(s.index)) for s in timeline.scenes]),
        ("clip first frames", firsts),
        ("clip last frames", lasts),
    ]
    seams = [np.concatenate([lasts[i], firsts[i + 1]], axis=1) for i in range(len(plans) - 1)]
    if seams:
        rows.append(("seams (last | next first)", seams))
    sheet = contact_sheet(rows, paths.verify_dir / "contact_sheet.png")
    frames = read_frames(paths.final)
    motion = [float(x) for x in motion_fractions(frames)]
    drift = []
    for record in records:
        found = [o for o in record.get("checks", {}).get("outcomes", []) if o["name"] == "color_drift"]
        drift.append(float(found[0]["value"]) if found and found[0]["value"] is not None else float("nan"))
    # the seam pair of clip i (its first frame against the previous last) has index start_frame - 1
    plot = motion_drift_plot(
        motion,
        [p.start_frame - 1 for p in plans[1:]],
        drift,
        spec.checks.min_motion,
        spec.checks.max_color_drift,
        paths.verify_dir / "motion_drift.png",
    )
    return {
        "contact_sheet": dg.MetadataValue.md(png_markdown(sheet, "contact sheet")),
        "motion_drift_plot": dg.MetadataValue.md(png_markdown(plot, "motion and colour drift")),
        "contact_sheet_file": path_md(paths, sheet),
        "motion_drift_plot_file": path_md(paths, plot),
    }


@dg.asset(
    partitions_def=VIDEOS,
    deps=[clips, narration, dg.AssetDep(clip, partition_mapping=by_video())],
    group_name="video",
    description="The clips stitched by stream copy, with the narration muxed as AAC; contact sheet and plot.",
)
def stitched_video(context: dg.AssetExecutionContext, outputs: OutputsResource) -> dg.MaterializeResult:
    state = load_video(context, outputs, context.partition_key)
    spec, paths = state.spec, state.paths
    timeline = state.timeline()
    files = [paths.clip(c.index) for c in timeline.clips]
    missing = [paths.rel(f) if f.parent.exists() else str(f) for f in files if not f.is_file()]
    if missing:
        raise MediaError(f"video {spec.name!r}: planned clips missing: {', '.join(missing)}")
    records = []  # a clip re-made alone after the `clips` step is picked up here
    for c in timeline.clips:
        record_path = paths.clip_record(c.index)
        records.append(json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {})
    keys = [record.get("content_key", "")[:12] for record in records]
    audio = paths.narration if paths.narration.is_file() else None
    started = time.monotonic()
    stitch(files, paths.final, fps=spec.fps, audio=audio)
    stitch_s = time.monotonic() - started
    info = probe(paths.final)
    video = info.video
    if video is None:
        raise MediaError(f"{paths.final}: no video stream after stitching")
    metadata = {
        "file": path_md(paths, paths.final),
        "sha256": sha256_file(paths.final),
        "clips": len(files),
        "clip_content_keys": dg.MetadataValue.json(keys),
        "frames": video.frames,
        "planned_frames": timeline.total_frames,
        "fps": spec.fps,
        "size": f"{video.width}x{video.height}",
        "video_duration_s": round(video.duration_s, 4),
        "has_audio": info.audio is not None,
    }
    if info.audio is not None:
        metadata["audio_duration_s"] = round(info.audio.duration_s, 4)
        metadata["audio_video_diff_s"] = round(abs(info.audio.duration_s - video.duration_s), 4)
    started = time.monotonic()
    metadata.update(make_pictures(state, timeline, records))
    skip = scorer_skip_reason(state)
    metadata["skipped_checks"] = dg.MetadataValue.json({"prompt_fidelity": skip} if skip else {})
    metadata.update(timings_md(stitch=stitch_s, pictures=time.monotonic() - started))
    return dg.MaterializeResult(metadata=metadata)


@dg.multi_asset_check(
    specs=check_specs(stitched_video, STITCHED_CHECKS, VIDEOS),
    can_subset=True,
    description="Audio/video sync of the stitched video, and prompt fidelity (CLIP) when a scorer is set.",
)
def stitched_checks(
    context: dg.AssetCheckExecutionContext, outputs: OutputsResource, residency: ModelResidency
):
    state = load_video(context, outputs, context.partition_key)
    yield check_result("stitched_video", sync_outcome(state.spec, state.paths))
    fidelity = prompt_fidelity_outcome(state, residency)
    if fidelity.status == "SKIPPED":  # not evaluated, never faked: the UI shows it as skipped
        context.log.warning("check stitched_video:prompt_fidelity skipped: %s", fidelity.skipped_reason)
        return
    severity = dg.AssetCheckSeverity(state.spec.checks.clip_score_severity)
    yield check_result("stitched_video", fidelity, severity=severity)
