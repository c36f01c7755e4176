"""Checks on probed numbers: audio/video sync and stream presence, and a clip's shape against its plan.

Inputs are plain numbers and bools (the caller probes the files), so these checks need no media library.
"""

from __future__ import annotations

from dataclasses import dataclass

from i2v_dagster.verify.outcome import CheckOutcome

FPS_TOLERANCE = 0.01
_EPS = 1e-6


def check_sync(
    *,
    video_duration_s: float,
    narration_duration_s: float | None,
    fps: float,
    has_video: bool,
    has_audio: bool,
    tolerance_s: float | None = None,
    name: str = "sync",
) -> CheckOutcome:
    """The stitched video against its narration.

    Passes when the file has a video stream, has an audio stream exactly when there is narration
    (``narration_duration_s`` is ``None`` for a silent video), and, with narration, the video and
    narration durations differ by at most ``tolerance_s`` (default one frame, ``1 / fps``).
    ``value`` is |video - narration| in seconds (``None`` for a silent video).
    """
    if fps <= 0:
        raise ValueError(f"`fps` must be positive but is {fps}.")
    tolerance = 1.0 / fps if tolerance_s is None else float(tolerance_s)
    expect_audio = narration_duration_s is not None
    problems: list[str] = []
    if not has_video:
        problems.append("no video stream")
    if expect_audio and not has_audio:
        problems.append("narration planned but no audio stream")
    if not expect_audio and has_audio:
        problems.append("an audio stream in a video planned silent")
    delta: float | None = None
    if expect_audio:
        delta = abs(float(video_duration_s) - float(narration_duration_s))
        if delta > tolerance + _EPS:
            longer = "video" if video_duration_s > narration_duration_s else "narration"
            problems.append(f"{longer} longer by {delta:.3f} s (limit {tolerance:.3f} s = one frame)")
    passed = not problems
    measured = (
        f"video {video_duration_s:.3f} s vs narration {narration_duration_s:.3f} s (|diff| {delta:.3f} s, "
        f"limit {tolerance:.3f} s)"
        if expect_audio
        else f"video {video_duration_s:.3f} s, silent by plan"
    )
    explanation = (
        f"{'Passed' if passed else 'Failed'}: {measured}; streams: video={'yes' if has_video else 'no'}, "
        f"audio={'yes' if has_audio else 'no'}." + (f" Problems: {'; '.join(problems)}." if problems else "")
    )
    details = {
        "video_duration_s": float(video_duration_s),
        "narration_duration_s": None if narration_duration_s is None else float(narration_duration_s),
        "difference_s": delta,
        "tolerance_s": tolerance,
        "fps": float(fps),
        "has_video": bool(has_video),
        "has_audio": bool(has_audio),
        "expect_audio": expect_audio,
        "problems": problems,
    }
    return CheckOutcome(
        name=name, passed=passed, value=delta, threshold=tolerance, explanation=explanation, details=details
    )


@dataclass(frozen=True)
class Shape:
    """Frame count, frame rate and size: as planned, or as found in an encoded file."""

    frames: int
    fps: float
    width: int
    height: int


def check_shape(actual: Shape, planned: Shape, *, name: str = "shape") -> CheckOutcome:
    """A clip's (or video's) frame count, fps, width and height against the plan; value = mismatches."""
    num_frames, fps, width, height = actual.frames, actual.fps, actual.width, actual.height
    planned_frames, planned_fps = planned.frames, planned.fps
    planned_width, planned_height = planned.width, planned.height
    fields = {
        "frames": (int(num_frames), int(planned_frames)),
        "fps": (float(fps), float(planned_fps)),
        "width": (int(width), int(planned_width)),
        "height": (int(height), int(planned_height)),
    }
    mismatched = [
        key
        for key, (actual, planned) in fields.items()
        if (abs(actual - planned) > FPS_TOLERANCE if key == "fps" else actual != planned)
    ]
    passed = not mismatched
    summary = (
        f"{num_frames} frames at {fps:g} fps, {width}x{height} vs planned {planned_frames} frames at "
        f"{planned_fps:g} fps, {planned_width}x{planned_height}"
    )
    explanation = f"{'Passed' if passed else 'Failed'}: {summary}." + (
        f" Mismatched: {', '.join(mismatched)}." if mismatched else ""
    )
    details = {
        "actual": {key: actual for key, (actual, _) in fields.items()},
        "planned": {key: planned for key, (_, planned) in fields.items()},
        "mismatched": mismatched,
    }
    return CheckOutcome(
        name=name,
        passed=passed,
        value=float(len(mismatched)),
        threshold=0.0,
        explanation=explanation,
        details=details,
    )
