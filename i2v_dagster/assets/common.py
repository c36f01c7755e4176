"""What every asset needs: the validated spec that `script` stored, the video's paths, small helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from i2v_dagster.errors import MediaError, SpecError
from i2v_dagster.paths import VideoPaths
from i2v_dagster.planning import Timeline
from i2v_dagster.resources.outputs import OutputsResource
from i2v_dagster.spec import JobSpec, Script

SCRIPT_KEY = dg.AssetKey("script")


@dataclass(frozen=True)
class VideoState:
    spec: JobSpec
    paths: VideoPaths

    @property
    def name(self) -> str:
        return self.spec.name

    def script(self) -> Script:
        return Script(**_read_json(self.paths.script))

    def timeline(self) -> Timeline:
        return Timeline.from_dict(_read_json(self.paths.timeline))


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise MediaError(f"{path} not found: materialize the upstream asset for this video first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MediaError(f"{path} is not valid JSON: {exc}") from exc


def video_dir_from_storage(instance: dg.DagsterInstance, video: str) -> Path | None:
    """The folder recorded by the latest `script` materialization of ``video`` (Dagster storage)."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SCRIPT_KEY, asset_partitions=[video]), limit=1
    )
    for record in result.records:
        mat = record.asset_materialization
        if mat is not None and "video_dir" in mat.metadata:
            return Path(str(mat.metadata["video_dir"].value))
    return None


def load_video(context: dg.AssetExecutionContext, outputs: OutputsResource, video: str) -> VideoState:
    folder = video_dir_from_storage(context.instance, video) or VideoPaths.for_video(outputs.root, video).root
    paths = VideoPaths(folder)
    if not paths.spec.is_file():
        raise SpecError(f"no stored spec for video {video!r} at {paths.spec}: materialize `script` first")
    spec = JobSpec(**_read_json(paths.spec))
    if spec.name != video:
        raise SpecError(f"stored spec at {paths.spec} is for {spec.name!r}, not {video!r}")
    return VideoState(spec=spec, paths=paths)


def video_partition(context: dg.AssetExecutionContext) -> str:
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension["video"]
    return key


def path_md(paths: VideoPaths, path: Path) -> dg.MetadataValue:
    return dg.MetadataValue.path(paths.rel(path))


def timings_md(**seconds: float) -> dict[str, dg.MetadataValue]:
    return {f"seconds_{k}": dg.MetadataValue.float(round(v, 3)) for k, v in seconds.items()}
