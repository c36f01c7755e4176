"""Broken frames in one clip: black, white, constant, NaN-born frames, and frozen runs.

Measured on :class:`~i2v_dagster.verify.frames.ClipMeasures` (half-resolution luma, computed once per clip).
Per frame, in this order (the first that applies names the frame):
- ``nan``: the adapter reported NaN/inf in the raw output (``nan_frames``; such pixels arrive as 0);
- ``black``: at most ``extreme_fraction`` of pixels have luma above ``black_level``;
- ``white``: at most ``extreme_fraction`` of pixels have luma below ``white_level``;
- ``constant``: one flat colour, any colour (largest per-channel spatial std at most ``constant_std``).

A frozen run is a run of consecutive near-identical frames: each pair differs by at most
``frozen_mean_diff`` luma levels on average, and at most ``frozen_pixel_fraction`` of pixels change by more
than ``frozen_pixel_level`` (so a blink in a still scene is motion, not a freeze). Runs are counted in
frames; a run longer than ``max_frozen_frames`` fails.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from i2v_dagster.verify.frames import ClipMeasures, as_frames
from i2v_dagster.verify.outcome import CheckOutcome, rounded

BLACK_LEVEL = 16.0
WHITE_LEVEL = 239.0
EXTREME_FRACTION = 0.01
CONSTANT_STD = 2.0
FROZEN_MEAN_DIFF = 0.5
FROZEN_PIXEL_LEVEL = 8.0
FROZEN_PIXEL_FRACTION = 0.001


def _measures(frames: np.ndarray | ClipMeasures) -> ClipMeasures:
    return frames if isinstance(frames, ClipMeasures) else ClipMeasures.of(as_frames(frames))


def classify_frames(
    frames: np.ndarray | ClipMeasures,
    *,
    nan_frames: Iterable[int] = (),
    black_level: float = BLACK_LEVEL,
    white_level: float = WHITE_LEVEL,
    extreme_fraction: float = EXTREME_FRACTION,
    constant_std: float = CONSTANT_STD,
) -> tuple[list[str], dict[str, list[float]]]:
    """Each frame's kind (``ok``, ``nan``, ``black``, ``white``, ``constant``) and per-frame luma stats."""
    m = _measures(frames)
    count = m.count
    nan_set = set()
    for index in nan_frames:
        if not 0 <= int(index) < count:
            raise ValueError(f"`nan_frames` holds {index}, outside 0..{count - 1}.")
        nan_set.add(int(index))
    pixels = m.luma[0].size
    above_black = np.count_nonzero(m.luma > black_level, axis=(1, 2))
    below_white = np.count_nonzero(m.luma < white_level, axis=(1, 2))
    kinds: list[str] = []
    for t in range(count):
        if t in nan_set:
            kinds.append("nan")
        elif above_black[t] <= extreme_fraction * pixels:
            kinds.append("black")
        elif below_white[t] <= extreme_fraction * pixels:
            kinds.append("white")
        elif m.channel_std[t] <= constant_std:
            kinds.append("constant")
        else:
            kinds.append("ok")
    means = [float(v) for v in m.luma.mean(axis=(1, 2), dtype=np.float64)]
    return kinds, {"mean_luma": means, "max_channel_std": [float(v) for v in m.channel_std]}


def frozen_pairs(
    frames: np.ndarray | ClipMeasures,
    *,
    mean_diff: float = FROZEN_MEAN_DIFF,
    pixel_level: float = FROZEN_PIXEL_LEVEL,
    pixel_fraction: float = FROZEN_PIXEL_FRACTION,
) -> tuple[list[bool], list[float]]:
    """For each consecutive pair: whether it is near-identical, and its mean absolute luma difference."""
    m = _measures(frames)
    if m.count < 2:
        return [], []
    diffs = m.pair_diffs
    changed = np.count_nonzero(m.pair_deltas > pixel_level, axis=(1, 2)) / m.luma[0].size
    same = [bool(d <= mean_diff and c <= pixel_fraction) for d, c in zip(diffs, changed, strict=True)]
    return same, [float(d) for d in diffs]


def frozen_runs(same: list[bool]) -> list[tuple[int, int]]:
    """(first frame, length in frames) of each run of near-identical frames, from pair flags."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, flag in enumerate([*same, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - start + 1))
            start = None
    return runs


def check_broken_frames(
    frames: np.ndarray | ClipMeasures,
    *,
    nan_frames: Iterable[int] = (),
    max_frozen_frames: int = 6,
    name: str = "broken_frames",
) -> CheckOutcome:
    """One clip: fails on any NaN/black/white/constant frame or a frozen run over ``max_frozen_frames``.

    ``value`` is the number of flagged frames (broken frames plus the frames of over-long frozen runs);
    ``threshold`` is 0. The longest frozen run and its limit are in the explanation and ``details``.
    """
    if max_frozen_frames < 1:
        raise ValueError(f"`max_frozen_frames` must be at least 1 but is {max_frozen_frames}.")
    m = _measures(frames)
    count = m.count
    kinds, stats = classify_frames(m, nan_frames=nan_frames)
    same, diffs = frozen_pairs(m)
    runs = frozen_runs(same)
    longest = max((length for _, length in runs), default=1)
    long_runs = [(start, length) for start, length in runs if length > max_frozen_frames]

    by_kind = {
        kind: [i for i, k in enumerate(kinds) if k == kind] for kind in ("nan", "black", "white", "constant")
    }
    flagged = {i for i, k in enumerate(kinds) if k != "ok"}
    for start, length in long_runs:
        flagged.update(range(start, start + length))
    passed = not flagged

    broken_text = ", ".join(f"{kind} {idx}" for kind, idx in by_kind.items() if idx) or "none"
    explanation = (
        f"{'Passed' if passed else 'Failed'}: {count - len(flagged)} of {count} frames usable. "
        f"Broken frames (black/white/constant/NaN-born): {broken_text}. "
        f"Longest run of near-identical frames: {longest} (limit {max_frozen_frames})."
    )
    details = {
        "frames": count,
        "flagged_frames": sorted(flagged),
        **{f"{kind}_frames": idx for kind, idx in by_kind.items()},
        "longest_frozen_run": longest,
        "max_frozen_frames": max_frozen_frames,
        "frozen_runs": [[start, length] for start, length in runs],
        "mean_luma": rounded(stats["mean_luma"], 2),
        "max_channel_std": rounded(stats["max_channel_std"], 2),
        "pair_mean_abs_luma_diff": rounded(diffs, 3),
    }
    return CheckOutcome(
        name=name,
        passed=passed,
        value=float(len(flagged)),
        threshold=0.0,
        explanation=explanation,
        details=details,
    )
