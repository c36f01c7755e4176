"""Every check function in one place (each lives in a small module of its own).

Per clip: ``check_broken_frames``, ``check_motion``, ``check_color_drift``, ``check_shape``.
Per join: ``check_seam``. Per video: ``check_seams``, ``check_color_drift_video``, ``check_sync``.
Each returns a ``CheckOutcome``; the module docstrings define what is measured.
"""

from __future__ import annotations

from i2v_dagster.verify.broken import check_broken_frames, classify_frames, frozen_pairs, frozen_runs
from i2v_dagster.verify.continuity import (
    ColorStats,
    DriftMeasure,
    check_color_drift,
    check_color_drift_video,
    check_seam,
    check_seams,
    color_drift,
    color_stats,
    pair_mean_abs_diffs,
    seam_ratio,
)
from i2v_dagster.verify.delivery import check_shape, check_sync
from i2v_dagster.verify.motion import check_motion, motion_fractions, naive_avg_motion, video_motion_series
from i2v_dagster.verify.outcome import CheckOutcome

__all__ = [
    "CheckOutcome",
    "ColorStats",
    "DriftMeasure",
    "check_broken_frames",
    "check_color_drift",
    "check_color_drift_video",
    "check_motion",
    "check_seam",
    "check_seams",
    "check_shape",
    "check_sync",
    "classify_frames",
    "color_drift",
    "color_stats",
    "frozen_pairs",
    "frozen_runs",
    "motion_fractions",
    "naive_avg_motion",
    "pair_mean_abs_diffs",
    "seam_ratio",
    "video_motion_series",
]
