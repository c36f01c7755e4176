"""Checks over a whole chain of clips, from what each clip's record holds (no frames decoded again).

The per-clip checks (:mod:`i2v_dagster.verify.clip`) become one outcome each for the video: it fails when
any clip fails, and its value is the worst clip's. Seams are measured from each join's two lossless frames
(:mod:`i2v_dagster.verify.continuity`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from i2v_dagster.verify.clip import CLIP_CHECKS
from i2v_dagster.verify.outcome import CheckOutcome

WORST = {"shape": "max", "broken_frames": "max", "motion": "min", "color_drift": "max"}
"""Which end of a check's values is the worst one."""


def outcome_from_record(data: Mapping[str, Any]) -> CheckOutcome:
    """A :class:`CheckOutcome` back from its ``to_metadata()`` form (as a clip record stores it)."""
    return CheckOutcome(
        name=data["name"],
        passed=data["passed"],
        value=data["value"],
        threshold=data["threshold"],
        explanation=data["explanation"],
        details=dict(data.get("details") or {}),
        skipped_reason=data.get("skipped_reason"),
    )


def aggregate(name: str, per_clip: Sequence[tuple[str, CheckOutcome]]) -> CheckOutcome:
    """One outcome for the whole chain: fails when any clip fails; value is the worst clip's."""
    if not per_clip:
        return CheckOutcome.skipped(name, "no clips")
    values = [(key, o.value) for key, o in per_clip if o.value is not None]
    failing = [key for key, o in per_clip if not o.passed]
    pick = min if WORST.get(name, "max") == "min" else max
    worst_key, value = pick(values, key=lambda kv: kv[1]) if values else ("-", None)
    threshold = per_clip[0][1].threshold
    passed = not failing
    explanation = (
        f"{'Passed' if passed else 'Failed'}: {len(per_clip) - len(failing)} of {len(per_clip)} clips "
        f"pass; worst is clip {worst_key} ({value if value is None else round(value, 4)} vs "
        f"threshold {threshold})."
    )
    if failing:
        explanation += (
            " Failing: " + "; ".join(f"clip {k}: {o.explanation}" for k, o in per_clip if not o.passed)[:1500]
        )
    details = {
        "per_clip": {k: {"value": o.value, "passed": o.passed} for k, o in per_clip},
        "failing_clips": failing,
    }
    return CheckOutcome(
        name=name, passed=passed, value=value, threshold=threshold, explanation=explanation, details=details
    )


def chain_outcomes(records: Mapping[str, Mapping[str, Any]]) -> list[CheckOutcome]:
    """The per-clip checks aggregated over every clip; ``records`` maps clip key -> its check record
    (``ClipChecks.to_record()``), in order."""
    outcomes = []
    for name in CLIP_CHECKS:
        per_clip = []
        for key, record in records.items():
            found = [o for o in record["outcomes"] if o["name"] == name]
            if not found:
                raise ValueError(f"clip {key}: its record holds no {name!r} outcome")
            per_clip.append((key, outcome_from_record(found[0])))
        outcomes.append(aggregate(name, per_clip))
    return outcomes
