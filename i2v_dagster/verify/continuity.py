"""Across clips: seam continuity at each join, and colour drift from the first keyframe.

Seam ratio, per join i -> i+1: the mean absolute (half-resolution luma) difference between the last frame of
clip i and the first frame of clip i+1 (:func:`~i2v_dagster.verify.frames.frame_diff`), divided by the
typical in-clip step: the median of the consecutive-frame differences of both clips. The divisor has a floor
of ``min_typical`` levels, so still clips do not divide by zero. A join fails two ways:

- a **jump**: the ratio is above ``max_seam_ratio`` (the next clip does not start where the last one ended);
- a **hold**: the clips move (typical step at least ``min_typical``) but the join does not (ratio below
  ``min_seam_ratio``): one frame repeated across the join, seen as a stutter.

Meant for joins where a clip continues the one before it; in ``keyframe`` mode a new scene is a cut.

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

from i2v_dagster.verify.frames import ClipMeasures, as_frames, frame_diff
from i2v_dagster.verify.lab import srgb_to_lab
from i2v_dagster.verify.outcome import CheckOutcome, rounded

MIN_TYPICAL_DIFF = 0.5
MAX_SEAM_RATIO = 3.0
MIN_SEAM_RATIO = 0.1
STATS_MAX_FRAMES = 8
STATS_MAX_SIDE = 256
CHANNELS = ("L", "a", "b")


@dataclass(frozen=True)
class Join:
    """One join between two clips, measured: what the seam check needs (no frames)."""

    label: str
    """e.g. ``"002->003"``."""
    seam_diff: float
    """Difference (levels) of the previous clip's last frame and the next clip's first frame."""
    typical_diff: float
    """Median consecutive-frame difference of both clips (levels)."""

    def ratio(self, min_typical: float = MIN_TYPICAL_DIFF) -> float:
        return self.seam_diff / max(self.typical_diff, min_typical)

    def kind(
        self,
        *,
        max_seam_ratio: float = MAX_SEAM_RATIO,
        min_seam_ratio: float = MIN_SEAM_RATIO,
        min_typical: float = MIN_TYPICAL_DIFF,
    ) -> str:
        """``ok``, ``jump`` or ``hold``."""
        ratio = self.ratio(min_typical)
        if ratio > max_seam_ratio:
            return "jump"
        if self.typical_diff >= min_typical and ratio < min_seam_ratio:
            return "hold"
        return "ok"


def measure_join(
    label: str,
    previous_last: np.ndarray,
    next_first: np.ndarray,
    *,
    previous_diffs: Sequence[float],
    next_diffs: Sequence[float],
) -> Join:
    """A :class:`Join` from the two frames that meet and both clips' consecutive-frame differences."""
    if np.shape(previous_last) != np.shape(next_first):
        raise ValueError(
            f"clips joined at a seam must share a frame size but are {np.shape(previous_last)[:2]} "
            f"and {np.shape(next_first)[:2]}."
        )
    both = np.concatenate([np.asarray(previous_diffs, float), np.asarray(next_diffs, float)])
    typical = float(np.median(both)) if both.size else 0.0
    return Join(label=label, seam_diff=frame_diff(previous_last, next_first), typical_diff=typical)


def clip_joins(clips: Sequence[np.ndarray], labels: Sequence[str] | None = None) -> list[Join]:
    """The joins of whole clips in order (``labels``: one per clip, default ``0``, ``1``, ...)."""
    labels = list(labels) if labels is not None else [str(i) for i in range(len(clips))]
    diffs = [ClipMeasures.of(clip).pair_diffs for clip in clips]
    return [
        measure_join(
            f"{labels[i]}->{labels[i + 1]}",
            as_frames(clips[i])[-1],
            as_frames(clips[i + 1])[0],
            previous_diffs=diffs[i],
            next_diffs=diffs[i + 1],
        )
        for i in range(len(clips) - 1)
    ]


def check_seams(
    joins: Sequence[Join],
    *,
    max_seam_ratio: float = MAX_SEAM_RATIO,
    min_seam_ratio: float = MIN_SEAM_RATIO,
    min_typical: float = MIN_TYPICAL_DIFF,
    name: str = "seam_continuity",
) -> CheckOutcome:
    """Every join: fails on any jump or hold, naming the join and which; value = the worst (largest) ratio."""
    if not joins:
        return CheckOutcome.skipped(name, "no join continues a previous clip", threshold=max_seam_ratio)
    rules = {"max_seam_ratio": max_seam_ratio, "min_seam_ratio": min_seam_ratio, "min_typical": min_typical}
    rows = [
        {
            "join": j.label,
            "seam_diff": round(j.seam_diff, 4),
            "typical_diff": round(j.typical_diff, 4),
            "ratio": round(j.ratio(min_typical), 4),
            "kind": j.kind(**rules),
        }
        for j in joins
    ]
    worst = max(rows, key=lambda r: r["ratio"])
    jumps = [r["join"] for r in rows if r["kind"] == "jump"]
    holds = [r["join"] for r in rows if r["kind"] == "hold"]
    passed = not jumps and not holds
    problems = [f"jump at {', '.join(jumps)}"] * bool(jumps) + [
        f"hold (repeated frame) at {', '.join(holds)}"
    ] * bool(holds)
    explanation = (
        f"{'Passed' if passed else 'Failed'}: {len(rows)} joins; worst ratio {worst['ratio']:.2f} at "
        f"{worst['join']} (jump above {max_seam_ratio:g}; hold below {min_seam_ratio:g} while the clips "
        "move). "
        "Ratio = |last frame - next first frame| / median in-clip frame step of both clips."
        + (f" Failing: {'; '.join(problems)}." if problems else "")
    )
    details = {"joins": rows, "failing_joins": jumps + holds, "jumps": jumps, "holds": holds, **rules}
    return CheckOutcome(
        name=name,
        passed=passed,
        value=worst["ratio"],
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
