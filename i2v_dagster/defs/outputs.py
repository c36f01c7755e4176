"""Where outputs go, and registration of the run's `videos` partition before the first step reads it.

A partition is registered only for a video name the spec allows and, when the run carries a spec, only for
a spec that validates: a refused spec leaves no partition (and no file) behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from i2v_dagster import videolock
from i2v_dagster.defs.partitions import SEPARATOR, VIDEOS
from i2v_dagster.errors import SpecError
from i2v_dagster.paths import VideoPaths
from i2v_dagster.spec import NAME_PATTERN


def default_outputs_root() -> str:
    return os.environ.get("I2V_OUTPUTS", "outputs")


class OutputsResource(dg.ConfigurableResource):
    """The default outputs root (a spec's ``outputs_root`` overrides it for that video). For each run it
    also registers the run's video partition and holds the video's lock (one writer per video)."""

    root: str = Field(
        default_factory=default_outputs_root, description="Folder under which each video gets its own folder."
    )
    _locked: tuple[str, str] | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from i2v_dagster.defs.runs import claim_run, reap_dead_runs

        run = context.dagster_run
        instance = context.instance
        if run is None or instance is None:
            return
        claim_run(instance, run.run_id)
        reap_dead_runs(instance, context.log, skip=run.run_id)
        tags = run.tags
        video = tags.get("dagster/partition") or ""
        if SEPARATOR in video:  # a run of one clip (`video_clips`): its video
            video = video.split(SEPARATOR, 1)[1]
        if not re.fullmatch(NAME_PATTERN, video) or not _spec_ok(run.run_config, video):
            return
        folder = self.video_folder(instance, run.run_config, video)
        videolock.acquire(folder, video=video, run_id=run.run_id)
        self._locked = (str(folder), run.run_id)
        if not instance.has_dynamic_partition(VIDEOS.name, video):
            instance.add_dynamic_partitions(VIDEOS.name, [video])

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._locked is not None:
            folder, run_id = self._locked
            videolock.release(Path(folder), run_id=run_id)
            self._locked = None

    def video_folder(self, instance: dg.DagsterInstance, run_config: dict[str, Any], video: str) -> Path:
        """Where the run's video lives: the spec's outputs root when the run carries a spec, else where the
        video's latest `script` materialization recorded it, else under this resource's root."""
        from i2v_dagster.defs.common import video_dir_from_storage

        spec = run_spec(run_config)
        if spec is not None:
            return VideoPaths.for_video(spec.get("outputs_root") or self.root, video).root
        return video_dir_from_storage(instance, video) or VideoPaths.for_video(self.root, video).root


def run_spec(run_config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The spec a run carries (``ops.script.config``), or None (a run of one clip carries none)."""
    return ((run_config or {}).get("ops") or {}).get("script", {}).get("config")


def _spec_ok(run_config: dict[str, Any], video: str) -> bool:
    """Whether the run's spec (if it carries one) validates and is for ``video``, the run's partition; the
    `script` step reports why not."""
    spec = run_spec(run_config)
    if spec is None:
        return True
    from i2v_dagster.specfile import parse_spec

    try:
        return parse_spec(spec).name == video
    except SpecError:
        return False
