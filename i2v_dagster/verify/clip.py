"""The per-clip checks in one call: shape, broken frames, motion and colour drift over one shared pass.

:func:`clip_outcomes` is what the pipeline runs for every clip it makes (and what the unit tests cover);
the Dagster layer only turns its outcomes into asset check results. Its :class:`ClipChecks` also carries the
per-clip figures later steps read instead of decoding the clip again: consecutive-frame differences (for
the seams) and motion per frame pair (for the plot).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from i2v_dagster.verify.broken import check_broken_frames
from i2v_dagster.verify.continuity import ColorStats, check_color_drift
from i2v_dagster.verify.delivery import Shape, check_shape
from i2v_dagster.verify.frames import ClipMeasures
from i2v_dagster.verify.motion import check_motion
from i2v_dagster.verify.outcome import CheckOutcome, rounded

CLIP_CHECKS = ("shape", "broken_frames", "motion", "color_drift")


@dataclass(frozen=True)
class Thresholds:
    """The per-clip checks' limits (the spec's ``checks`` section)."""

    min_motion: float = 0.05
    max_color_drift: float = 12.0
    max_frozen_frames: int = 6


@dataclass(frozen=True)
class ClipChecks:
    """A clip's check outcomes and the figures its record keeps."""

    outcomes: list[CheckOutcome]
    pair_diffs: list[float] = field(default_factory=list)
    """Consecutive-frame differences (levels, half-resolution luma)."""
    motion: list[float] = field(default_factory=list)
    """Changed-pixel fraction of each consecutive pair (the motion check's series)."""

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def failed(self) -> list[str]:
        return [o.name for o in self.outcomes if not o.passed]

    def replacing(self, outcome: CheckOutcome) -> ClipChecks:
        """These checks with the outcome of the same name replaced (e.g. shape, once the file is probed)."""
        outcomes = [outcome if o.name == outcome.name else o for o in self.outcomes]
        return ClipChecks(outcomes=outcomes, pair_diffs=self.pair_diffs, motion=self.motion)

    def to_record(self) -> dict[str, Any]:
        return {
            "outcomes": [o.to_metadata() for o in self.outcomes],
            "pair_diffs": rounded(self.pair_diffs),
            "motion": rounded(self.motion),
        }


def clip_outcomes(
    frames: np.ndarray,
    *,
    planned: Shape,
    encoded: Shape,
    reference: np.ndarray | ColorStats,
    nan_frames: Iterable[int] = (),
    thresholds: Thresholds = Thresholds(),
    measures: ClipMeasures | None = None,
) -> ClipChecks:
    """Every per-clip check on the frames the model made (and the encoded file's shape). ``measures``:
    the frames' shared pass when the caller already made it (e.g. while the encoder ran)."""
    measures = measures if measures is not None else ClipMeasures.of(frames)
    motion = check_motion(measures, min_motion=thresholds.min_motion)
    outcomes = [
        check_shape(encoded, planned),
        check_broken_frames(measures, nan_frames=nan_frames, max_frozen_frames=thresholds.max_frozen_frames),
        motion,
        check_color_drift(frames, reference, max_color_drift=thresholds.max_color_drift),
    ]
    return ClipChecks(
        outcomes=outcomes,
        pair_diffs=[float(d) for d in measures.pair_diffs],
        motion=list(motion.details.get("pair_fractions", [])),
    )
