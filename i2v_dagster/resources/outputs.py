"""Where outputs go, and registration of the run's `videos` partition before the first step reads it."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from i2v_dagster.partitions import CLIP_IDS, VIDEOS


def default_outputs_root() -> str:
    return os.environ.get("I2V_OUTPUTS", "outputs")


class OutputsResource(dg.ConfigurableResource):
    """The default outputs root (a spec's ``outputs_root`` overrides it for that video)."""

    root: str = Field(
        default_factory=default_outputs_root, description="Folder under which each video gets its own folder."
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.dagster_run
        instance = context.instance
        if run is None or instance is None:
            return
        tags = run.tags
        video = tags.get("dagster/partition/video") or tags.get("dagster/partition")
        if video and "|" not in video and not instance.has_dynamic_partition(VIDEOS.name, video):
            instance.add_dynamic_partitions(VIDEOS.name, [video])
        clip = tags.get("dagster/partition/clip")
        if clip and not instance.has_dynamic_partition(CLIP_IDS.name, clip):
            instance.add_dynamic_partitions(CLIP_IDS.name, [clip])
