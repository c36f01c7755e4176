"""The code location: assets, checks, jobs, schedules and resources in one Definitions.

``dagster dev`` (workspace.yaml), ``dagster job execute -m i2v_dagster.definitions`` and ``dg`` load it.
"""

from __future__ import annotations

import dagster as dg

from i2v_dagster.defs.bundle import bundle
from i2v_dagster.defs.clips import clip, clips, clips_checks
from i2v_dagster.defs.config import install_config_error_hook
from i2v_dagster.defs.jobs import render_video
from i2v_dagster.defs.outputs import OutputsResource
from i2v_dagster.defs.parallel import render_video_parallel
from i2v_dagster.defs.prefetch import hf_resource, prefetch_job, smoke_prefetch_schedule
from i2v_dagster.defs.residency import ModelResidency
from i2v_dagster.defs.runs import dead_runs_sensor
from i2v_dagster.defs.stitch import stitched_checks, stitched_video
from i2v_dagster.defs.story import keyframes, narration, script

resources = {"outputs": OutputsResource(), "residency": ModelResidency(), "hf": hf_resource()}
defs = dg.Definitions(
    assets=[script, narration, keyframes, clips, clip, stitched_video, bundle],
    asset_checks=[clips_checks, stitched_checks],
    jobs=[render_video, render_video_parallel(resources), prefetch_job],
    schedules=[smoke_prefetch_schedule],
    sensors=[dead_runs_sensor],
    resources=resources,
    executor=dg.in_process_executor,  # an ad-hoc materialization (one clip) runs in one process, no spawn
)


install_config_error_hook()


def render_video_job() -> dg.JobDefinition:
    """The resolved job, for ``dg.reconstructable`` (used by ``i2v run``)."""
    return defs.resolve_job_def("render_video")


def render_video_parallel_job() -> dg.JobDefinition:
    """The resolved parallel-scenes job, for ``dg.reconstructable``."""
    return defs.resolve_job_def("render_video_parallel")
