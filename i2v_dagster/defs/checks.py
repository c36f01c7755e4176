"""Asset checks as Dagster sees them: specs, and outcomes turned into results.

The checks themselves are plain functions in :mod:`i2v_dagster.verify` (unit-tested there); the assets
compute outcomes with them and this module only converts:

- on `clip` (one partition per clip) and, per clip, from inside the `clips` step: shape, broken frames,
  motion, colour drift;
- on `clips` (the whole chain): the same four over all clips (worst clip decides) plus seam continuity;
- on `stitched_video`: audio/video sync and prompt fidelity (skipped, with the reason in the log and in the
  materialization's metadata, when no scorer with weights is configured; never faked).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import dagster as dg

from i2v_dagster.defs.storage import check_evaluations
from i2v_dagster.verify import CheckOutcome
from i2v_dagster.verify.clip import CLIP_CHECKS

CLIPS_CHECKS = (*CLIP_CHECKS, "seam_continuity")
STITCHED_CHECKS = ("sync", "prompt_fidelity")

DESCRIPTIONS = {
    "shape": "Frame count, fps and resolution as planned.",
    "broken_frames": "No NaN-born, all-black, all-white or constant frames; no long frozen runs.",
    "motion": "Median over frame pairs of the fraction of pixels that change (one jump cannot pass it).",
    "color_drift": "Lab colour statistics (mean, spread) stay near the first keyframe's.",
    "seam_continuity": "No join jumps (a new picture) or holds (a repeated frame) against the clips' motion.",
    "sync": "Stitched duration equals the narration's within one frame; video and audio streams present.",
    "prompt_fidelity": "CLIP cosine similarity of keyframes and sampled clip frames to their prompts. Not "
    "evaluated without a scorer (or its weights): the reason is in stitched_video's `skipped_checks` "
    "metadata and the run log.",
}


def check_specs(asset, names: Sequence[str], partitions_def) -> list[dg.AssetCheckSpec]:
    """Partitioned check specs (a preview feature in Dagster 1.13; its warning is silenced here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(n, asset=asset, partitions_def=partitions_def, description=DESCRIPTIONS[n])
            for n in names
        ]


def _metadata(outcome: CheckOutcome) -> dict[str, dg.MetadataValue]:
    md = outcome.to_metadata()
    return {
        "value": dg.MetadataValue.float(float(md["value"])) if md["value"] is not None else "n/a",
        "threshold": dg.MetadataValue.float(float(md["threshold"])) if md["threshold"] is not None else "n/a",
        "explanation": dg.MetadataValue.text(outcome.explanation),
        "details": dg.MetadataValue.json(md["details"]),
    }


def check_result(
    asset: str, outcome: CheckOutcome, *, severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR
) -> dg.AssetCheckResult:
    """The result of a check the running step owns."""
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=outcome.name,
        passed=outcome.passed,
        metadata=_metadata(outcome),
        severity=severity,
        description=outcome.explanation,
    )


def check_evaluation(asset: str, outcome: CheckOutcome, *, partition: str) -> dg.AssetCheckEvaluation:
    """A loggable evaluation event, for a partition another step makes (a `clip` made by `clips`)."""
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset),
        check_name=outcome.name,
        passed=outcome.passed,
        metadata=_metadata(outcome),
        severity=dg.AssetCheckSeverity.ERROR,
        partition=partition,
        description=outcome.explanation,
    )


def stored_outcomes(
    instance: dg.DagsterInstance, run_id: str, skipped: dict[str, str], *, with_keys: bool = False
) -> list:
    """Check results of a run, read back from Dagster's event log (for the report); with ``with_keys``,
    pairs of (outcome, (asset, check, partition))."""
    out: list = []
    for ev in check_evaluations(instance, run_id):
        md = {k: v.value for k, v in ev.metadata.items()}
        asset = ev.asset_key.to_user_string()
        where = f"{asset}[{ev.partition}]" if ev.partition else asset
        value = md.get("value")
        threshold = md.get("threshold")
        outcome = CheckOutcome(
            name=f"{where}: {ev.check_name}",
            passed=ev.passed,
            value=value if isinstance(value, float | int) else None,
            threshold=threshold if isinstance(threshold, float | int) else None,
            explanation=str(md.get("explanation", "")),
            details=md.get("details") or {},
        )
        out.append((outcome, (asset, ev.check_name, ev.partition)) if with_keys else outcome)
    for name, reason in skipped.items():
        out.append(CheckOutcome.skipped(name, reason))
    return out
