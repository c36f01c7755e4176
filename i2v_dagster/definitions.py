"""The code location: assets, checks, jobs, schedules and resources in one Definitions."""

from __future__ import annotations

import dagster as dg

from i2v_dagster.assets.bundle import bundle
from i2v_dagster.assets.clips import clip, clips, clips_checks
from i2v_dagster.assets.stitch import stitched_checks, stitched_video
from i2v_dagster.assets.story import keyframes, narration, script
from i2v_dagster.jobs import render_video
from i2v_dagster.prefetch_defs import hf_resource, prefetch_job, smoke_prefetch_schedule
from i2v_dagster.resources.outputs import OutputsResource
from i2v_dagster.resources.residency import ModelResidency

defs = dg.Definitions(
    assets=[script, narration, keyframes, clips, clip, stitched_video, bundle],
    asset_checks=[clips_checks, stitched_checks],
    jobs=[render_video, prefetch_job],
    schedules=[smoke_prefetch_schedule],
    resources={"outputs": OutputsResource(), "residency": ModelResidency(), "hf": hf_resource()},
)
