"""A whole video's checks, from what its steps stored (records, lossless join frames, the final file).

Plain Python: gathers the inputs and calls :mod:`i2v_dagster.verify`; the Dagster layer turns the outcomes
into asset check results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from i2v_dagster.planning import ClipPlan
from i2v_dagster.spec import JobSpec
from i2v_dagster.state import VideoState, load_rgb, read_json
from i2v_dagster.verify import CheckOutcome
from i2v_dagster.verify.chain import chain_outcomes
from i2v_dagster.verify.continuity import check_seams, measure_join


def clip_records(state: VideoState, plans: Sequence[ClipPlan]) -> dict[str, dict[str, Any]]:
    """Clip key -> its record (``clips/clip_NNN.json``), in plan order."""
    return {p.key: read_json(state.paths.clip_record(p.index)) for p in plans}


def seam_outcome(
    state: VideoState, plans: Sequence[ClipPlan], records: dict[str, dict[str, Any]]
) -> CheckOutcome:
    """Joins where a clip continues the one before it, measured on their lossless frames."""
    spec, paths = state.spec, state.paths
    joins = [
        measure_join(
            f"{prev.key}->{nxt.key}",
            load_rgb(paths.clip_last(prev.index)),
            load_rgb(paths.clip_first(nxt.index)),
            previous_diffs=records[prev.key]["checks"]["pair_diffs"],
            next_diffs=records[nxt.key]["checks"]["pair_diffs"],
        )
        for prev, nxt in zip(plans, plans[1:], strict=False)
        if nxt.continues
    ]
    return check_seams(joins, max_seam_ratio=spec.checks.max_seam_ratio)


def chain_checks(state: VideoState) -> list[CheckOutcome]:
    """The `clips` checks: every per-clip check over the chain, and the seams."""
    plans = state.timeline().clips
    records = clip_records(state, plans)
    return [
        *chain_outcomes({k: r["checks"] for k, r in records.items()}),
        seam_outcome(state, plans, records),
    ]


def sync_outcome(
    spec: JobSpec, video_duration_s: float, *, has_video: bool, has_audio: bool, narration_s: float | None
) -> CheckOutcome:
    """The stitched file (probed by the caller) against its narration."""
    from i2v_dagster.verify.delivery import check_sync

    return check_sync(
        video_duration_s=video_duration_s,
        narration_duration_s=narration_s,
        fps=spec.fps,
        has_video=has_video,
        has_audio=has_audio,
    )
