"""A job's GPU memory plan: every GPU stage of a spec against a card, before any weights load.

``i2v plan``, spec validation (when the spec names its card, ``target_gpu_gb``) and the start of each GPU
step use it. The estimates are :mod:`i2v_dagster.models.memory`'s.
"""

from __future__ import annotations

import sys

from i2v_dagster.models.memory import StagePlan, free_gb_for_card, plan_video_job
from i2v_dagster.models.registry import ROLES, stage_settings
from i2v_dagster.spec import JobSpec

GPU_ROLES = ("speech", "image", "video", "scorer")


def spec_plan(
    spec: JobSpec, *, free_gb: float, device: str = "cuda", roles: tuple[str, ...] = GPU_ROLES
) -> list[StagePlan]:
    """One plan per GPU stage the spec uses, of ``roles`` (script writers run elsewhere: Ollama on its own
    server); each stage is planned on its own."""
    models = {
        role: (getattr(spec.models, role).adapter, stage_settings(spec, role))
        for role in ROLES
        if role in GPU_ROLES and role in roles and getattr(spec.models, role).adapter != "none"
    }
    from i2v_dagster.models.registry import max_clip_frames

    return plan_video_job(
        models,
        width=spec.width,
        height=spec.height,
        frames=max_clip_frames(spec),
        free_gb=free_gb,
        device=device,
    )


def card_problems(spec: JobSpec) -> list[str]:
    """For a spec that names its card: each stage that would not fit it, with the estimate and the fix."""
    if spec.target_gpu_gb is None or spec.dry_run:
        return []
    free = free_gb_for_card(spec.target_gpu_gb)
    return [
        f"target_gpu_gb: on a {spec.target_gpu_gb:g} GB card {plan.describe()}"
        for plan in spec_plan(spec, free_gb=free)
        if not plan.fits
    ]


def current_free_gb() -> float | None:
    """The CUDA device's free memory now, when torch is already loaded and sees one (else None)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    from i2v_dagster.models.memory import cuda_free_gb

    return cuda_free_gb()


def stage_line(spec: JobSpec, role: str) -> str | None:
    """The plan line a GPU step logs as it starts: against the CUDA card when there is one, else against
    the card the spec names; None when neither is known."""
    free = current_free_gb()
    where = "this GPU"
    if free is None and spec.target_gpu_gb is not None:
        free, where = (
            free_gb_for_card(spec.target_gpu_gb),
            f"the {spec.target_gpu_gb:g} GB card the spec names",
        )
    if free is None or getattr(spec.models, role).adapter == "none":
        return None
    (plan,) = spec_plan(spec, free_gb=free, roles=(role,))
    return f"memory plan on {where}: {plan.describe()}"
