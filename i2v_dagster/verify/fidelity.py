"""Prompt fidelity: CLIP similarity of keyframes and sampled clip frames to their scene's prompt.

The scorer runs elsewhere (it is a model); this turns its scores into the check's outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from i2v_dagster.verify.outcome import CheckOutcome

NAME = "prompt_fidelity"


def sample_indices(count: int, samples: int) -> list[int]:
    """``samples`` frame indices spread evenly over ``count`` frames (first and last included)."""
    if count <= 0:
        return []
    return [int(i) for i in np.unique(np.linspace(0, count - 1, num=min(samples, count)).round())]


def check_prompt_fidelity(
    scores: Mapping[str, Sequence[float]], labels: Sequence[str], *, min_clip_score: float, sampled: int
) -> CheckOutcome:
    """Fails when the lowest per-model mean similarity is below ``min_clip_score``; ``scores`` maps a CLIP
    model to one similarity per image, ``labels`` names each image."""
    if not scores or not labels:
        return CheckOutcome.skipped(NAME, "nothing was scored", threshold=min_clip_score)
    means = {name: float(np.mean(vals)) for name, vals in scores.items()}
    worst_model = min(means, key=means.__getitem__)
    value = means[worst_model]
    passed = value >= min_clip_score
    explanation = (
        f"{'Passed' if passed else 'Failed'}: lowest mean CLIP similarity {value:.3f} ({worst_model}) "
        f"{'>=' if passed else '<'} {min_clip_score:g}, over {len(labels)} images (keyframes and "
        f"{sampled} sampled frames per clip) against their scene's prompt. "
        + ", ".join(f"{m}: mean {v:.3f}" for m, v in means.items())
    )
    details = {
        "mean": means,
        "scores": {
            m: dict(zip(labels, [round(float(x), 4) for x in v], strict=True)) for m, v in scores.items()
        },
    }
    return CheckOutcome(
        name=NAME,
        passed=passed,
        value=value,
        threshold=min_clip_score,
        explanation=explanation,
        details=details,
    )
