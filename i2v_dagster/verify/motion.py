"""Motion of one clip: a robust score, and the naive figure it replaces.

- ``motion score`` (what the check uses): each frame's luma is box-downscaled by ``block`` (a blur that
  suppresses grain; taken from the clip's shared half-resolution luma, so ``block`` is even); for each
  consecutive pair, the fraction of pixels whose luma changes by more than ``tolerance`` (a fraction of the
  0..255 range, 0.03 by default); the score is the MEDIAN of these fractions over all pairs. Scale 0..1.
  One big jump in an otherwise still clip moves one pair of many, so the median stays at 0: a single
  glitch cannot satisfy it. (``stride`` > 1 compares frames that many apart instead; consecutive pairs are
  the default.)
- ``avg_motion`` (reported only, for comparison with earlier projects): the mean over pairs of the mean
  absolute (half-resolution) luma difference / 255. A single jump raises it above zero, which is why it is
  not the check.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from i2v_dagster.verify.frames import BOX, ClipMeasures, block_mean
from i2v_dagster.verify.outcome import CheckOutcome, rounded

MOTION_TOLERANCE = 0.03
MOTION_BLOCK = 4


def motion_fractions(
    frames: np.ndarray | ClipMeasures,
    *,
    tolerance: float = MOTION_TOLERANCE,
    block: int = MOTION_BLOCK,
    stride: int = 1,
) -> np.ndarray:
    """Per pair of frames ``stride`` apart (consecutive by default): the fraction of downscaled pixels
    whose luma changes by more than ``tolerance`` of the range."""
    m = frames if isinstance(frames, ClipMeasures) else ClipMeasures.of(frames)
    if stride < 1:
        raise ValueError(f"`stride` must be at least 1 but is {stride}.")
    if block % BOX:
        raise ValueError(f"`block` must be a multiple of {BOX} but is {block}.")
    if m.count <= stride:
        return np.empty(0, dtype=np.float64)
    small = block_mean(m.luma, block // BOX)
    changed = np.abs(small[stride:] - small[:-stride]) > tolerance * 255.0
    return changed.mean(axis=(1, 2), dtype=np.float64)


def naive_avg_motion(frames: np.ndarray | ClipMeasures) -> float:
    """Mean over pairs of mean |luma difference| / 255 (the gameable figure; 0.0 for one frame)."""
    m = frames if isinstance(frames, ClipMeasures) else ClipMeasures.of(frames)
    return float(m.pair_diffs.mean() / 255.0) if m.count > 1 else 0.0


def check_motion(
    frames: np.ndarray | ClipMeasures,
    *,
    min_motion: float = 0.05,
    tolerance: float = MOTION_TOLERANCE,
    block: int = MOTION_BLOCK,
    stride: int = 1,
    name: str = "motion",
) -> CheckOutcome:
    """One clip: fails when the median changed-pixel fraction is below ``min_motion``.

    ``stride`` > 1 compares frames that many apart instead of neighbours (for a high frame rate, where
    slow but real motion moves little between neighbours); one jump still moves only ``stride`` pairs.
    """
    m = frames if isinstance(frames, ClipMeasures) else ClipMeasures.of(frames)
    fractions = motion_fractions(m, tolerance=tolerance, block=block, stride=stride)
    avg = naive_avg_motion(m)
    if fractions.size == 0:
        return CheckOutcome(
            name=name,
            passed=False,
            value=0.0,
            threshold=min_motion,
            explanation=f"Failed: {m.count} frame(s) hold no frame pair {stride} apart to compare.",
            details={"pairs": 0, "avg_motion": avg},
        )
    score = float(np.median(fractions))
    moving = int(np.count_nonzero(fractions >= min_motion))
    passed = score >= min_motion
    explanation = (
        f"{'Passed' if passed else 'Failed'}: motion score {score:.3f} "
        f"{'>=' if passed else '<'} {min_motion:g}. Score = median over {fractions.size} frame pairs "
        f"({'consecutive' if stride == 1 else f'{stride} frames apart'}) of the "
        f"fraction of pixels whose luma changes by more than {tolerance:.0%} of range after a {block}x "
        f"box downscale; {moving} of {fractions.size} pairs reach {min_motion:g}. "
        f"For comparison, naive avg_motion (mean |frame difference| / 255) = {avg:.4f}."
    )
    details = {
        "pairs": int(fractions.size),
        "pair_fractions": rounded(fractions),
        "median_fraction": round(score, 6),
        "mean_fraction": round(float(fractions.mean()), 6),
        "max_fraction": round(float(fractions.max()), 6),
        "moving_pairs": moving,
        "avg_motion": round(avg, 6),
        "tolerance": tolerance,
        "block": block,
        "stride": stride,
    }
    return CheckOutcome(
        name=name, passed=passed, value=score, threshold=min_motion, explanation=explanation, details=details
    )


def video_motion_series(per_clip: Sequence[Sequence[float]]) -> tuple[list[float], list[int]]:
    """Concatenate per-clip pair fractions for a plot; returns (values, index where each clip > 0 starts)."""
    values: list[float] = []
    boundaries: list[int] = []
    for i, clip in enumerate(per_clip):
        if i > 0:
            boundaries.append(len(values))
        values.extend(float(v) for v in clip)
    return values, boundaries
