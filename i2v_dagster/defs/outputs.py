"""Where outputs go, and registration of the run's `videos` partition before the first step reads it.

A partition is registered only for a video name the spec allows and, when the run carries a spec, only for
a spec that validates: a refused spec leaves no partition (and no file) behind.
"""

from __future__ import annotations

import os
import re
from typing import Any

import dagster as dg
from pydantic import Field

from i2v_dagster.defs.partitions import CLIP_IDS, VIDEOS
from i2v_dagster.errors import SpecError
from i2v_dagster.spec import NAME_PATTERN


def default_outputs_root() -> str:
    return os.environ.get("I2V_OUTPUTS", "outputs")


class OutputsResource(dg.ConfigurableResource):
    """The default outputs root (a spec's ``outputs_root`` overrides it for that video)."""

    root: str = Field(
        default_factory=default_outputs_root, description="Folder under which each video gets its own folder."
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from i2v_dagster.defs.runs import claim_run, reap_dead_runs

        run = context.dagster_run
        instance = context.instance
        if run is None or instance is None:
            return
        claim_run(instance, run.run_id)
        reap_dead_runs(instance, context.log, skip=run.run_id)
        tags = run.tags
        video = tags.get("dagster/partition/video") or tags.get("dagster/partition")
        if not video or "|" in video or not re.fullmatch(NAME_PATTERN, video) or not _spec_ok(run.run_config):
            return
        if not instance.has_dynamic_partition(VIDEOS.name, video):
            instance.add_dynamic_partitions(VIDEOS.name, [video])
        clip = tags.get("dagster/partition/clip")
        if clip and not instance.has_dynamic_partition(CLIP_IDS.name, clip):
            instance.add_dynamic_partitions(CLIP_IDS.name, [clip])


def _spec_ok(run_config: dict[str, Any]) -> bool:
    """Whether the run's spec (if it carries one) validates; the `script` step reports why not."""
    spec = ((run_config or {}).get("ops") or {}).get("script", {}).get("config")
    if spec is None:
        return True
    from i2v_dagster.specfile import parse_spec

    try:
        parse_spec(spec)
    except SpecError:
        return False
    return True
