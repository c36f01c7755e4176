"""Asset checks: every claim about a produced video, computed from its real pixels and audio.

- on `clip` (one partition per clip) and, per clip, from inside the `clips` step: shape, broken frames,
  motion, colour drift (from the generated frames, before they are encoded);
- on `clips` (the whole chain): the same four over all clips (worst clip decides) plus seam continuity;
- on `stitched_video`: audio/video sync and prompt fidelity (CLIP scores; skipped, with the reason in the
  log and in the materialization's metadata, when no scorer with weights is configured, never faked).

Each result carries its measured value, threshold, explanation and details as metadata. Thresholds come
from the spec's ``checks`` section. The functions that measure live in :mod:`i2v_dagster.verify`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from PIL import Image

from i2v_dagster.assets.common import load_rgb
from i2v_dagster.paths import VideoPaths
from i2v_dagster.planning import ClipPlan
from i2v_dagster.spec import JobSpec
from i2v_dagster.storage import check_evaluations
from i2v_dagster.verify import CheckOutcome
from i2v_dagster.verify.metrics import (
    check_broken_frames,
    check_color_drift,
    check_motion,
    check_shape,
    pair_mean_abs_diffs,
    seam_ratio,
)

CLIP_CHECKS = ("shape", "broken_frames", "motion", "color_drift")
CLIPS_CHECKS = (*CLIP_CHECKS, "seam_continuity")
STITCHED_CHECKS = ("sync", "prompt_fidelity")

DESCRIPTIONS = {
    "shape": "Frame count, fps and resolution as planned.",
    "broken_frames": "No NaN-born, all-black, all-white or constant frames; no long frozen runs.",
    "motion": "Median over frame pairs of the fraction of pixels that change (one jump cannot pass it).",
    "color_drift": "Lab colour statistics (mean, spread) stay near the first keyframe's.",
    "seam_continuity": "Each join's jump is not much larger than a typical in-clip frame step.",
    "sync": "Stitched duration equals the narration's within one frame; video and audio streams present.",
    "prompt_fidelity": "CLIP cosine similarity of keyframes and sampled clip frames to their prompts.",
}


def check_specs(asset, names: Sequence[str], partitions_def) -> list[dg.AssetCheckSpec]:
    """Partitioned check specs (a preview feature in Dagster 1.13; its warning is silenced here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(n, asset=asset, partitions_def=partitions_def, description=DESCRIPTIONS[n])
            for n in names
        ]


def clip_outcomes(
    spec: JobSpec,
    plan: ClipPlan,
    frames: np.ndarray,
    *,
    nan_frames: Iterable[int],
    reference: np.ndarray,
    encoded: Any,
) -> list[CheckOutcome]:
    """The per-clip checks, on the generated frames (and the encoded file's probe for shape)."""
    video = encoded.video
    c = spec.checks
    return [
        check_shape(
            num_frames=video.frames,
            fps=video.fps,
            width=video.width,
            height=video.height,
            planned_frames=plan.frames,
            planned_fps=spec.fps,
            planned_width=spec.width,
            planned_height=spec.height,
        ),
        check_broken_frames(frames, nan_frames=nan_frames, max_frozen_frames=c.max_frozen_frames),
        check_motion(frames, min_motion=c.min_motion),
        check_color_drift(frames, reference, max_color_drift=c.max_color_drift),
    ]


def check_result(
    asset: str,
    outcome: CheckOutcome,
    *,
    partition: str | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    evaluation: bool = False,
) -> dg.AssetCheckResult | dg.AssetCheckEvaluation:
    """A Dagster check result (or a loggable evaluation event, for a partition made by another step)."""
    md = outcome.to_metadata()
    metadata = {
        "value": dg.MetadataValue.float(float(md["value"])) if md["value"] is not None else "n/a",
        "threshold": dg.MetadataValue.float(float(md["threshold"])) if md["threshold"] is not None else "n/a",
        "explanation": dg.MetadataValue.text(outcome.explanation),
        "details": dg.MetadataValue.json(md["details"]),
    }
    if evaluation:
        return dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(asset),
            check_name=outcome.name,
            passed=outcome.passed,
            metadata=metadata,
            severity=severity,
            partition=partition,
            description=outcome.explanation,
        )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=outcome.name,
        passed=outcome.passed,
        metadata=metadata,
        severity=severity,
        description=outcome.explanation,
    )


def clip_check_summary(outcomes: Sequence[CheckOutcome], frames: np.ndarray) -> dict[str, Any]:
    """What a clip's record keeps for the video-level checks and pictures (no frames)."""
    return {
        "outcomes": [o.to_metadata() for o in outcomes],
        "pair_diffs": [round(float(d), 4) for d in pair_mean_abs_diffs(frames)],
    }


def _outcome(data: dict[str, Any]) -> CheckOutcome:
    return CheckOutcome(
        name=data["name"],
        passed=data["passed"],
        value=data["value"],
        threshold=data["threshold"],
        explanation=data["explanation"],
        details=data.get("details") or {},
        skipped_reason=data.get("skipped_reason"),
    )


def aggregate(name: str, per_clip: list[tuple[str, CheckOutcome]], *, worst: str) -> CheckOutcome:
    """One outcome for the whole chain: fails when any clip fails; value is the worst clip's."""
    values = [(key, o.value) for key, o in per_clip if o.value is not None]
    failing = [key for key, o in per_clip if not o.passed]
    pick = min if worst == "min" else max
    worst_key, value = pick(values, key=lambda kv: kv[1]) if values else ("-", None)
    threshold = per_clip[0][1].threshold if per_clip else None
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


WORST = {"shape": "max", "broken_frames": "max", "motion": "min", "color_drift": "max"}


def chain_outcomes(spec: JobSpec, paths: VideoPaths, plans: Sequence[ClipPlan]) -> list[CheckOutcome]:
    """The `clips` checks, from each clip's record and its lossless first/last frames."""
    records = [json.loads(paths.clip_record(p.index).read_text(encoding="utf-8")) for p in plans]
    outcomes = []
    for name in CLIP_CHECKS:
        per_clip = []
        for plan, record in zip(plans, records, strict=True):
            found = [o for o in record["checks"]["outcomes"] if o["name"] == name]
            per_clip.append((plan.key, _outcome(found[0])))
        outcomes.append(aggregate(name, per_clip, worst=WORST[name]))
    outcomes.append(seam_outcome(spec, paths, plans, records))
    return outcomes


def seam_outcome(
    spec: JobSpec, paths: VideoPaths, plans: Sequence[ClipPlan], records: list[dict]
) -> CheckOutcome:
    """Joins where a clip continues the one before it (all joins in last_frame mode; within scenes in
    keyframe mode, where a new scene is meant to cut)."""
    limit = spec.checks.max_seam_ratio
    joins = []
    for prev, nxt, prev_rec, next_rec in zip(plans, plans[1:], records, records[1:], strict=False):
        if spec.chain_mode == "keyframe" and nxt.first_of_scene:
            continue
        m = seam_ratio(
            load_rgb(paths.clip_last(prev.index))[None],
            load_rgb(paths.clip_first(nxt.index))[None],
            previous_diffs=np.asarray(prev_rec["checks"]["pair_diffs"]),
            next_diffs=np.asarray(next_rec["checks"]["pair_diffs"]),
        )
        joins.append({"join": f"{prev.key}->{nxt.key}", **{k: round(v, 4) for k, v in m.items()}})
    if not joins:
        return CheckOutcome.skipped("seam_continuity", "no join continues a previous clip", threshold=limit)
    worst = max(joins, key=lambda j: j["ratio"])
    failing = [j["join"] for j in joins if j["ratio"] > limit]
    passed = not failing
    return CheckOutcome(
        name="seam_continuity",
        passed=passed,
        value=worst["ratio"],
        threshold=limit,
        explanation=(
            f"{'Passed' if passed else 'Failed'}: worst join {worst['join']} has ratio "
            f"{worst['ratio']:.2f} ({'<=' if passed else '>'} {limit:g}); ratio = mean |last frame - next "
            "first frame| / median in-clip frame step of both clips."
        )
        + (f" Failing joins: {', '.join(failing)}." if failing else ""),
        details={"joins": joins, "failing_joins": failing, "chain_mode": spec.chain_mode},
    )


def sync_outcome(spec: JobSpec, paths: VideoPaths) -> CheckOutcome:
    from i2v_dagster.media.audio import wav_duration
    from i2v_dagster.media.video import probe
    from i2v_dagster.verify.metrics import check_sync

    info = probe(paths.final)
    narration = wav_duration(paths.narration) if paths.narration.is_file() else None
    video = info.video
    return check_sync(
        video_duration_s=video.duration_s if video else 0.0,
        narration_duration_s=narration,
        fps=spec.fps,
        has_video=video is not None,
        has_audio=info.audio is not None,
    )


def sampled_frames(path: Path, count: int) -> list[np.ndarray]:
    from i2v_dagster.media.video import read_frames

    frames = read_frames(path)
    idx = np.unique(np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int))
    return [frames[i] for i in idx]


def prompt_fidelity_outcome(state, residency) -> CheckOutcome:
    """CLIP scores of keyframes and sampled clip frames against their scene's keyframe prompt."""
    from i2v_dagster.errors import ScorerUnavailableError

    spec, paths = state.spec, state.paths
    threshold = spec.checks.min_clip_score
    choice = spec.scorer
    if choice is None:
        return CheckOutcome.skipped(
            "prompt_fidelity", "no scorer configured (models.scorer.adapter is 'none')", threshold=threshold
        )
    script = state.script()
    prompts = [spec.keyframe_prompt(s, script.subject) for s in script.scenes]
    images, texts, labels = [], [], []
    for i, prompt in enumerate(prompts):
        images.append(Image.open(paths.keyframe(i)).convert("RGB"))
        texts.append(prompt)
        labels.append(f"keyframe {i:03d}")
    for plan in state.timeline().clips:
        for j, frame in enumerate(sampled_frames(paths.clip(plan.index), spec.checks.sampled_frames)):
            images.append(Image.fromarray(frame))
            texts.append(prompts[plan.scene])
            labels.append(f"clip {plan.key} sample {j}")
    try:
        with residency.use(choice.adapter, choice.settings()) as scorer:
            scores = scorer.score(images, texts)
    except ScorerUnavailableError as exc:
        return CheckOutcome.skipped("prompt_fidelity", str(exc), threshold=threshold)
    means = {name: float(np.mean(vals)) for name, vals in scores.per_model.items()}
    worst_model = min(means, key=means.get)
    value = means[worst_model]
    passed = value >= threshold
    explanation = (
        f"{'Passed' if passed else 'Failed'}: lowest mean CLIP similarity {value:.3f} ({worst_model}) "
        f"{'>=' if passed else '<'} {threshold:g}, over {len(images)} images (keyframes and "
        f"{spec.checks.sampled_frames} sampled frames per clip) against their scene's prompt. "
        + ", ".join(f"{m}: mean {v:.3f}" for m, v in means.items())
    )
    details = {
        "mean": means,
        "scores": {
            m: dict(zip(labels, [round(float(x), 4) for x in v], strict=True))
            for m, v in scores.per_model.items()
        },
    }
    return CheckOutcome(
        name="prompt_fidelity",
        passed=passed,
        value=value,
        threshold=threshold,
        explanation=explanation,
        details=details,
    )


def stored_outcomes(instance: dg.DagsterInstance, run_id: str, skipped: dict[str, str]) -> list[CheckOutcome]:
    """Check results of a run, read back from Dagster's event log (for the report)."""
    out = []
    for ev in check_evaluations(instance, run_id):
        md = {k: v.value for k, v in ev.metadata.items()}
        asset = ev.asset_key.to_user_string()
        where = f"{asset}[{ev.partition}]" if ev.partition else asset
        value = md.get("value")
        threshold = md.get("threshold")
        out.append(
            CheckOutcome(
                name=f"{where}: {ev.check_name}",
                passed=ev.passed,
                value=value if isinstance(value, float | int) else None,
                threshold=threshold if isinstance(threshold, float | int) else None,
                explanation=str(md.get("explanation", "")),
                details=md.get("details") or {},
            )
        )
    for name, reason in skipped.items():
        out.append(CheckOutcome.skipped(name, reason))
    return out
