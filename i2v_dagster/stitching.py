"""The final video: the planned clips checked against their records, stitched to a scratch file, checked
again as a whole (sync, shape), and only then renamed over the previous final. Plain Python; the Dagster
layer records the outcome.

A finished video is never replaced by a broken one: a clip that is missing, changed since its record was
written (size or sha256), or of the wrong frame count; narration missing or changed while the spec narrates;
or a stitch whose blocking checks fail: each stops the step naming the file and the check, and the previous
final stays as it was.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from i2v_dagster.errors import MediaError
from i2v_dagster.fsutil import scratch_path, sha256_file
from i2v_dagster.planning import Timeline
from i2v_dagster.render import encoder_for
from i2v_dagster.state import VideoState, load_rgb
from i2v_dagster.verify import CheckOutcome
from i2v_dagster.video_checks import clip_records, sync_outcome


@dataclass(frozen=True)
class Stitched:
    """A final video that passed its blocking checks and replaced the previous one."""

    path: Path
    frames: int
    width: int
    height: int
    video_duration_s: float
    audio_duration_s: float | None
    stream_copy: bool
    outcomes: list[CheckOutcome]
    records: dict[str, dict[str, Any]]
    seconds: float


def verified_clips(state: VideoState, timeline: Timeline) -> tuple[list[Path], dict[str, dict[str, Any]]]:
    """Each planned clip's file, checked against its record: present, the planned frame count, and the
    size and sha256 its record holds (a clip swapped for another file is refused)."""
    paths = state.paths
    missing = [p.key for p in timeline.clips if not paths.clip_record(p.index).is_file()]
    if missing:
        raise MediaError(
            f"video {state.name!r}: no record for planned clip(s) {', '.join(missing)} "
            f"({paths.rel(paths.clip_record(int(missing[0])))} and on): materialize `clips` first"
        )
    records = clip_records(state, timeline.clips)
    files = []
    for plan in timeline.clips:
        path, record = paths.clip(plan.index), records[plan.key]
        where = paths.rel(path) if path.parent.exists() else str(path)
        if not path.is_file():
            raise MediaError(f"{where}: planned clip {plan.key} is missing (check: clip files)")
        if record.get("frames") != plan.frames:
            raise MediaError(
                f"{where}: its record holds {record.get('frames')} frames but the plan has {plan.frames} "
                "(check: clip records); re-make the clip"
            )
        size = path.stat().st_size
        if size != record.get("bytes") or sha256_file(path) != record.get("sha256"):
            raise MediaError(
                f"{where}: the file is not the one its record describes (check: clip sha256; "
                f"{size} bytes, recorded {record.get('bytes')}); re-make the clip"
            )
        files.append(path)
    return files, records


def narration_for(state: VideoState, expected_sha256: str | None) -> Path | None:
    """The narration to mux: required when the spec narrates, and unchanged since `narration` wrote it."""
    paths = state.paths
    if state.spec.silent:
        return None
    if not paths.narration.is_file():
        raise MediaError(
            f"{paths.rel(paths.narration)}: missing, but the spec narrates (check: narration present); "
            "materialize `narration` again"
        )
    if expected_sha256 is not None and sha256_file(paths.narration) != expected_sha256:
        raise MediaError(
            f"{paths.rel(paths.narration)}: changed since `narration` wrote it (check: narration sha256); "
            "materialize `narration` again"
        )
    return paths.narration


def stitch_video(
    state: VideoState, *, narration_sha256: str | None = None, timeline_sha256: str | None = None
) -> Stitched:
    """Check the inputs, stitch to a scratch file, check it, rename it over the final."""
    from i2v_dagster.media.audio import wav_duration
    from i2v_dagster.media.video import concat, probe
    from i2v_dagster.verify.delivery import Shape, check_shape

    spec, paths = state.spec, state.paths
    if timeline_sha256 is not None and sha256_file(paths.timeline) != timeline_sha256:
        raise MediaError(
            f"{paths.rel(paths.timeline)}: changed since `narration` planned it (check: timeline sha256); "
            "materialize `narration` again"
        )
    timeline = state.timeline()
    started = time.monotonic()
    files, records = verified_clips(state, timeline)
    audio = narration_for(state, narration_sha256)
    with scratch_path(paths.final) as tmp:
        fast = encoder_for(spec)[0] in ("ultrafast", "superfast")
        copy = concat(files, tmp, fps=spec.fps, audio=audio, check_decodes=False, fast_audio=fast)
        info = probe(tmp)
        video = info.video
        if video is None:
            raise MediaError(f"{paths.rel(paths.final)}: no video stream after stitching (check: shape)")
        outcomes = [
            sync_outcome(
                spec,
                video.duration_s,
                has_video=True,
                has_audio=info.audio is not None,
                narration_s=wav_duration(audio) if audio is not None else None,
            ),
            check_shape(
                Shape(video.frames, video.fps, video.width, video.height),
                Shape(timeline.total_frames, spec.fps, spec.width, spec.height),
            ),
        ]
        failed = [o for o in outcomes if not o.passed]
        if failed:
            raise MediaError(
                f"{paths.rel(paths.final)}: the new stitch fails "
                + "; ".join(f"check {o.name}: {o.explanation}" for o in failed)
                + " The previous final is kept."
            )
        os.replace(tmp, paths.final)
    return Stitched(
        path=paths.final,
        frames=video.frames,
        width=video.width,
        height=video.height,
        video_duration_s=video.duration_s,
        audio_duration_s=info.audio.duration_s if info.audio is not None else None,
        stream_copy=copy,
        outcomes=outcomes,
        records=records,
        seconds=time.monotonic() - started,
    )


def make_pictures(state: VideoState, records: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Contact sheet (keyframes, first/last frame of each clip, seams) and the motion/drift plot, drawn from
    the stored lossless frames and the clips' recorded figures (the video is not decoded again)."""
    from i2v_dagster.verify.motion import video_motion_series
    from i2v_dagster.verify.pictures import contact_sheet, motion_drift_plot

    spec, paths = state.spec, state.paths
    timeline = state.timeline()
    plans = timeline.clips
    firsts = [load_rgb(paths.clip_first(p.index)) for p in plans]
    lasts = [load_rgb(paths.clip_last(p.index)) for p in plans]
    rows = [
        ("keyframes", [(f"scene {s.index}", load_rgb(paths.keyframe(s.index))) for s in timeline.scenes]),
        (
            "clip first frames",
            [(f"s{p.scene} c{p.key} first", f) for p, f in zip(plans, firsts, strict=True)],
        ),
        ("clip last frames", [(f"s{p.scene} c{p.key} last", f) for p, f in zip(plans, lasts, strict=True)]),
    ]
    seams = [
        (f"seam {plans[i].key}|{plans[i + 1].key}", np.concatenate([lasts[i], firsts[i + 1]], axis=1))
        for i in range(len(plans) - 1)
    ]
    if seams:
        rows.append(("seams (last | next first)", seams))
    sheet = contact_sheet(rows, paths.verify_dir / "contact_sheet.png")
    motion, boundaries = video_motion_series([records[p.key]["checks"]["motion"] for p in plans])
    drift = []
    for plan in plans:
        found = [o for o in records[plan.key]["checks"]["outcomes"] if o["name"] == "color_drift"]
        drift.append(float(found[0]["value"]) if found and found[0]["value"] is not None else float("nan"))
    plot = motion_drift_plot(
        motion,
        boundaries,
        drift,
        spec.checks.min_motion,
        spec.checks.max_color_drift,
        paths.verify_dir / "motion_drift.png",
    )
    return {"contact_sheet": sheet, "motion_drift_plot": plot, "preview": video_preview(state, records)}


PREVIEW_FRAMES = 72
"""Most frames in the video's animated preview (made from the clips' previews, not by decoding the video)."""


def video_preview(state: VideoState, records: dict[str, dict[str, Any]]) -> Path | None:
    """An animated WebP of the whole video, from the clips' own previews, thinned to ``PREVIEW_FRAMES``."""
    from i2v_dagster.render import PREVIEW_STEP
    from i2v_dagster.verify.pictures import animated_webp, webp_frames

    paths = state.paths
    frames = []
    for record in records.values():
        preview = paths.root / record.get("preview", "-")
        if not preview.is_file():
            return None
        frames += webp_frames(preview)
    if not frames:
        return None
    keep = max(1, -(-len(frames) // PREVIEW_FRAMES))
    return animated_webp(
        frames[::keep],
        paths.verify_dir / "preview.webp",
        frame_ms=1000 * PREVIEW_STEP * keep / state.spec.fps,
        width=frames[0].width,
    )
