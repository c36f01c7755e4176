"""What every asset needs: the video a step works on (found through Dagster's storage), and metadata
helpers."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from i2v_dagster.defs.outputs import OutputsResource
from i2v_dagster.defs.storage import latest_materialization
from i2v_dagster.paths import VideoPaths
from i2v_dagster.state import VideoState

SCRIPT_KEY = dg.AssetKey("script")


def video_dir_from_storage(instance: dg.DagsterInstance, video: str) -> Path | None:
    """The folder recorded by the latest `script` materialization of ``video`` (Dagster storage)."""
    record = latest_materialization(instance, SCRIPT_KEY, video)
    mat = record.asset_materialization if record is not None else None
    if mat is not None and "video_dir" in mat.metadata:
        return Path(str(mat.metadata["video_dir"].value))
    return None


def load_video(context, outputs: OutputsResource, video: str, *, phase: str | None = None) -> VideoState:
    """The video's stored spec and folder: where its latest `script` materialization says, else under the
    outputs root. ``phase``: the step, told to progress listeners (``i2v run``'s bar)."""
    folder = video_dir_from_storage(context.instance, video) or VideoPaths.for_video(outputs.root, video).root
    state = VideoState.load(folder, video)
    if phase is not None:
        from i2v_dagster.progress import ProgressEvent, notify

        notify(ProgressEvent(video=video, phase=phase))
    return state


def video_partition(context) -> str:
    """The video of a `videos` partition or of a `video_clips` one (``001|demo``)."""
    from i2v_dagster.defs.partitions import SEPARATOR, split_clip_key

    key = context.partition_key
    return split_clip_key(key)[0] if SEPARATOR in key else key


def path_md(paths: VideoPaths, path: Path) -> dg.MetadataValue:
    return dg.MetadataValue.path(paths.rel(path))


def timings_md(**seconds: float) -> dict[str, dg.MetadataValue]:
    return {f"seconds_{k}": dg.MetadataValue.float(round(v, 3)) for k, v in seconds.items()}


def log_stage_plan(context, spec, role: str) -> None:
    """The GPU step's memory plan as its first line (against this GPU, or the card the spec names)."""
    from i2v_dagster.gpu_plan import stage_line

    line = stage_line(spec, role)
    if line is not None:
        context.log.info(line)
