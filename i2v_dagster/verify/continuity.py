"""Across clips: seam continuity at each join, and colour drift from the first keyframe.

Seam ratio, per join i -> i+1: the mean absolute RGB difference (levels 0..255) between the last frame of
clip i and the first frame of clip i+1, divided by the typical in-clip step: the median of the
consecutive-frame mean absolute differences of both clips. The divisor has a floor of ``min_typical``
levels, so still clips do not divide by zero (a seam of 0 then gives ratio 0; any visible seam between two
still clips gives a large ratio). Meant for ``last_frame`` chaining: in ``keyframe`` mode each join is a cut.

Colour drift of a clip: the Lab mean and standard deviation (per channel L, a, b) of the clip's frames
(up to ``max_frames`` evenly spaced frames, pixels strided to a longest side of at most ``max_side``),
compared with the same statistics of the reference (the first keyframe). Drift = |mean shift| + |std shift|
(Euclidean norms over L, a, b). The whole clip is measured, not only its last frame, because that is what
is watched and one odd frame does not dominate it; the last frame's drift (what conditions the next clip)
is reported in ``details`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from i2v_dagster.verify._util import as_frames
from i2v_dagster.verify.lab import srgb_to_lab
from i2v_dagster.verify.outcome import CheckOutcome, rounded

MIN_TYPICAL_DIFF = 0.5
STATS_MAX_FRAMES = 8
STATS_MAX_SIDE = 256
CHANNELS = ("L", "a", "b")


def pair_mean_abs_diffs(frames: np.ndarray) -> np.ndarray:
    """Mean absolute RGB difference (levels) of each consecutive pair of frames."""
    frames = as_frames(frames)
    return np.array(
        [float(np.abs(frames[t].astype(np.int16) - frames[t - 1]).mean()) for t in range(1, frames.shape[0])],
        dtype=np.float64,
    )


def seam_ratio(
    previous_clip: np.ndarray,
    next_clip: np.ndarray,
    *,
    min_typical: float = MIN_TYPICAL_DIFF,
    previous_diffs: np.ndarray | None = None,
    next_diffs: np.ndarray | None = None,
) -> dict[str, float]:
    """``{"seam_diff", "typical_diff", "ratio"}`` for the join ``previous_clip`` -> ``next_clip``."""
    previous_clip = as_frames(previous_clip, arg="previous_clip")
    next_clip = as_frames(next_clip, arg="next_clip")
    if previous_clip.shape[1:] != next_clip.shape[1:]:
        raise ValueError(
            f"clips joined at a seam must share a frame size but are {previous_clip.shape[1:3]} "
            f"and {next_clip.shape[1:3]}."
        )
    if previous_diffs is None:
        previous_diffs = pair_mean_abs_diffs(previous_clip)
    if next_diffs is None:
        next_diffs = pair_mean_abs_diffs(next_clip)
    seam = float(np.abs(next_clip[0].astype(np.int16) - previous_clip[-1]).mean())
    both = np.concatenate([previous_diffs, next_diffs])
    typical = float(np.median(both)) if both.size else 0.0
    ratio = seam / max(typical, min_typical)
    return {"seam_diff": seam, "typical_diff": typical, "ratio": ratio}


def check_seam(
    previous_clip: np.ndarray,
    next_clip: np.ndarray,
    *,
    max_seam_ratio: float = 3.0,
    min_typical: float = MIN_TYPICAL_DIFF,
    name: str = "seam_continuity",
) -> CheckOutcome:
    """One join (for the check of a single clip against the clip before it)."""
    return check_seams(
        [previous_clip, next_clip], max_seam_ratio=max_seam_ratio, min_typical=min_typical, name=name
    )


def check_seams(
    clips: Sequence[np.ndarray],
    *,
    max_seam_ratio: float = 3.0,
    min_typical: float = MIN_TYPICAL_DIFF,
    name: str = "seam_continuity",
) -> CheckOutcome:
    """The whole video: fails when any join's seam ratio is above ``max_seam_ratio``; value = worst ratio."""
    if len(clips) < 2:
        return CheckOutcome.skipped(
            name, f"{len(clips)} clip(s): no join to measure", threshold=max_seam_ratio
        )
    diffs = [pair_mean_abs_diffs(clip) for clip in clips]
    measures = [
        seam_ratio(
            clips[i], clips[i + 1], min_typical=min_typical, previous_diffs=diffs[i], next_diffs=diffs[i + 1]
        )
        for i in range(len(clips) - 1)
    ]
    labels = [f"{i}->{i + 1}" for i in range(len(measures))]
    ratios = [m["ratio"] for m in measures]
    worst = int(np.argmax(ratios))
    value = ratios[worst]
    failing = [label for label, ratio in zip(labels, ratios, strict=True) if ratio > max_seam_ratio]
    joins = [
        {"join": label, **{k: round(v, 4) for k, v in m.items()}}
        for label, m in zip(labels, measures, strict=True)
    ]
    passed = not failing
    explanation = (
        f"{'Passed' if passed else 'Failed'}: worst seam {labels[worst]} has ratio {value:.2f} "
        f"({'<=' if passed else '>'} {max_seam_ratio:g}); ratio = mean |last frame - next first frame| / "
        f"median in-clip frame step of both clips (floor {min_typical:g} levels)."
        + (f" Failing joins: {', '.join(failing)}." if failing else "")
    )
    details = {"joins": joins, "failing_joins": failing, "min_typical": min_typical}
    return CheckOutcome(
        name=name,
        passed=passed,
        value=value,
        threshold=max_seam_ratio,
        explanation=explanation,
        details=details,
    )


@dataclass(frozen=True)
class ColorStats:
    """Per-channel (L, a, b) mean and standard deviation."""

    mean: np.ndarray
    std: np.ndarray


def sample_pixels(
    frames: np.ndarray, *, max_frames: int = STATS_MAX_FRAMES, max_side: int = STATS_MAX_SIDE
) -> np.ndarray:
    """Evenly spaced frames, pixels strided so the longest side is at most ``max_side``: (T', H', W', 3)."""
    frames = as_frames(frames)
    count = frames.shape[0]
    picks = np.unique(np.linspace(0, count - 1, num=min(count, max_frames)).round().astype(int))
    step = max(1, int(np.ceil(max(frames.shape[1:3]) / max_side)))
    return frames[picks, ::step, ::step]


def color_stats(frames: np.ndarray, **sampling: int) -> ColorStats:
    """Lab statistics of a frame (H, W, 3) or a clip (T, H, W, 3), sampled with ``sample_pixels``."""
    lab = srgb_to_lab(sample_pixels(frames, **sampling)).reshape(-1, 3).astype(np.float64)
    return ColorStats(mean=lab.mean(axis=0), std=lab.std(axis=0))


def stats_drift(stats: ColorStats, reference: ColorStats) -> float:
    """|mean shift| + |std shift| (Euclidean norms over L, a, b)."""
    return float(np.linalg.norm(stats.mean - reference.mean) + np.linalg.norm(stats.std - reference.std))


@dataclass(frozen=True)
class DriftMeasure:
    """A clip's colour statistics against the reference's."""

    drift: float
    last_frame_drift: float
    stats: ColorStats
    reference: ColorStats

    def details(self) -> dict[str, object]:
        """Per-channel deltas and means, rounded, for ``CheckOutcome.details``."""

        def per_channel(values: np.ndarray) -> dict[str, float | None]:
            return dict(zip(CHANNELS, rounded(values, 3), strict=True))

        return {
            "drift": round(self.drift, 4),
            "mean_delta": per_channel(self.stats.mean - self.reference.mean),
            "std_delta": per_channel(self.stats.std - self.reference.std),
            "clip_mean": per_channel(self.stats.mean),
            "reference_mean": per_channel(self.reference.mean),
            "last_frame_drift": round(self.last_frame_drift, 4),
        }


def color_drift(frames: np.ndarray, reference: np.ndarray | ColorStats) -> DriftMeasure:
    """Drift of a clip from ``reference`` (a frame, or its ``ColorStats``)."""
    ref = reference if isinstance(reference, ColorStats) else color_stats(reference)
    frames = as_frames(frames)
    stats = color_stats(frames)
    return DriftMeasure(
        drift=stats_drift(stats, ref),
        last_frame_drift=stats_drift(color_stats(frames[-1]), ref),
        stats=stats,
        reference=ref,
    )


def check_color_drift(
    frames: np.ndarray,
    reference: np.ndarray | ColorStats,
    *,
    max_color_drift: float = 12.0,
    name: str = "color_drift",
) -> CheckOutcome:
    """One clip against the first keyframe: fails when drift is above ``max_color_drift``."""
    measure = color_drift(frames, reference)
    drift = measure.drift
    passed = drift <= max_color_drift
    shift = measure.stats.mean - measure.reference.mean
    explanation = (
        f"{'Passed' if passed else 'Failed'}: Lab colour drift {drift:.2f} "
        f"({'<=' if passed else '>'} {max_color_drift:g}) from the first keyframe; drift = |mean shift| + "
        f"|std shift| over L, a, b of the clip's frames. Mean shift L/a/b = "
        + "/".join(f"{v:+.1f}" for v in shift)
        + "."
    )
    return CheckOutcome(
        name=name,
        passed=passed,
        value=drift,
        threshold=max_color_drift,
        explanation=explanation,
        details=measure.details(),
    )


def check_color_drift_video(
    clips: Sequence[np.ndarray],
    reference: np.ndarray,
    *,
    max_color_drift: float = 12.0,
    name: str = "color_drift",
) -> CheckOutcome:
    """Every clip against the first keyframe; value = the worst drift; ``details["per_clip"]`` has all."""
    if not clips:
        return CheckOutcome.skipped(name, "no clips", threshold=max_color_drift)
    ref = color_stats(reference)
    measures = [color_drift(clip, ref) for clip in clips]
    drifts = [m.drift for m in measures]
    worst = int(np.argmax(drifts))
    failing = [i for i, d in enumerate(drifts) if d > max_color_drift]
    passed = not failing
    explanation = (
        f"{'Passed' if passed else 'Failed'}: worst Lab colour drift {drifts[worst]:.2f} in clip {worst} "
        f"({'<=' if passed else '>'} {max_color_drift:g}); per clip: "
        + ", ".join(f"{d:.1f}" for d in drifts)
        + "."
    )
    details = {
        "per_clip": rounded(drifts),
        "failing_clips": failing,
        "clips": [{"clip": i, **m.details()} for i, m in enumerate(measures)],
    }
    return CheckOutcome(
        name=name,
        passed=passed,
        value=drifts[worst],
        threshold=max_color_drift,
        explanation=explanation,
        details=details,
    )
