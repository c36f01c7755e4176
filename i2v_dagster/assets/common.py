"""What every asset needs: the validated spec that `script` stored, the video's paths, small helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from PIL import Image

from i2v_dagster.errors import MediaError, SpecError
from i2v_dagster.paths import VideoPaths
from i2v_dagster.planning import Timeline
from i2v_dagster.resources.outputs import OutputsResource
from i2v_dagster.spec import JobSpec, Script
from i2v_dagster.storage import latest_materialization

SCRIPT_KEY = dg.AssetKey("script")


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def load_frame(path: Path, width: int, height: int) -> Image.Image:
    """An RGB image at ``width`` x ``height`` (resized only when it is not that size already)."""
    with Image.open(path) as img:
        image = img.convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image


@dataclass(frozen=True)
class VideoState:
    """One video's stored spec and folder, as a step sees them. Built per step, so the cached
    pictures below are read once per step, not once per clip."""

    spec: JobSpec
    paths: VideoPaths

    @property
    def name(self) -> str:
        return self.spec.name

    def script(self) -> Script:
        return Script(**_read_json(self.paths.script))

    def timeline(self) -> Timeline:
        return Timeline.from_dict(_read_json(self.paths.timeline))

    @property
    def start_image(self) -> Path:
        """What clip 0 starts from: the spec's initial image, else keyframe 0."""
        return (
            Path(self.spec.initial_image).expanduser() if self.spec.initial_image else self.paths.keyframe(0)
        )

    @cached_property
    def first_keyframe(self) -> np.ndarray:
        """Keyframe 0: the colour-drift checks' reference."""
        return load_rgb(self.paths.keyframe(0))

    @cached_property
    def color_reference(self) -> np.ndarray:
        """The first clip's reference frame (its start image), which colour correction matches."""
        return np.asarray(load_frame(self.start_image, self.spec.width, self.spec.height))


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise MediaError(f"{path} not found: materialize the upstream asset for this video first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MediaError(f"{path} is not valid JSON: {exc}") from exc


def video_dir_from_storage(instance: dg.DagsterInstance, video: str) -> Path | None:
    """The folder recorded by the latest `script` materialization of ``video`` (Dagster storage)."""
    record = latest_materialization(instance, SCRIPT_KEY, video)
    mat = record.asset_materialization if record is not None else None
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
