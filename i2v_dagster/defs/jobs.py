"""The render_video job (one run = one video) and its Launchpad config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from i2v_dagster.defs.bundle import bundle
from i2v_dagster.defs.clips import clips
from i2v_dagster.defs.outputs import run_spec
from i2v_dagster.defs.partitions import VIDEOS
from i2v_dagster.defs.stitch import stitched_video
from i2v_dagster.defs.story import keyframes, narration, script
from i2v_dagster.errors import SpecError
from i2v_dagster.specfile import read_document

JOBS_DIR = Path(__file__).resolve().parents[2] / "jobs"
DEFAULT_MAX_RUNTIME_S = int(os.environ.get("I2V_MAX_RUNTIME_S", str(6 * 3600)))


STUB_SCENES_NOTE = "fill in the scenes"


def stored_spec(partition_key: str) -> dict[str, Any] | None:
    """The spec the video's latest `script` materialization stored (None without one, or without an
    instance to ask)."""
    import json

    from i2v_dagster.defs.common import video_dir_from_storage

    if not os.environ.get("DAGSTER_HOME"):
        return None
    try:
        instance = dg.DagsterInstance.get()
    except dg.DagsterInvariantViolationError:
        return None
    folder = video_dir_from_storage(instance, partition_key)
    if folder is None or not (folder / "spec.json").is_file():
        return None
    try:
        return json.loads((folder / "spec.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def launchpad_config(partition_key: str) -> dict[str, Any]:
    """Prefill the Launchpad for a video: the spec it was last rendered with (so a re-launch is that video,
    not a stub over it); else the job file in ``jobs/`` whose spec has this name; else a stub with no scenes,
    which the `script` step refuses as it is (a stub cannot overwrite anything by accident).

    ``dagster job execute -c FILE`` and ``dg launch --config FILE`` replace this with the file given.
    """
    stored = stored_spec(partition_key)
    if stored is not None:
        return {"ops": {"script": {"config": stored}}}
    if JOBS_DIR.is_dir():
        for path in sorted(JOBS_DIR.glob("*.yaml")):
            try:
                data = read_document(path) or {}  # the strict reader: a key written twice is no prefill
            except SpecError:
                continue
            spec = run_spec(data) if isinstance(data, dict) else None
            if isinstance(spec, dict) and spec.get("name") == partition_key:
                return data
    return {"ops": {"script": {"config": {"name": partition_key, "scenes": []}}}}


render_video = dg.define_asset_job(
    "render_video",
    selection=[script, narration, keyframes, clips, stitched_video, bundle],
    partitions_def=VIDEOS,
    config=dg.PartitionedConfig(partitions_def=VIDEOS, run_config_for_partition_key_fn=launchpad_config),
    executor_def=dg.in_process_executor,
    tags={"dagster/max_runtime": str(DEFAULT_MAX_RUNTIME_S)},
    description="Render one video (the run's `videos` partition = the spec's name): script -> bundle.",
)
