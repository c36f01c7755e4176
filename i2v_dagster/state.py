"""One video as a step sees it: the stored spec, its folder, and what earlier steps wrote there.

Plain Python (the Dagster layer finds the folder through its storage and builds a :class:`VideoState`).
Built once per step, so the pictures cached below are read once per step, not once per clip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from i2v_dagster.errors import MediaError, SpecError
from i2v_dagster.paths import VideoPaths
from i2v_dagster.planning import Timeline
from i2v_dagster.spec import JobSpec, Script


def read_json(path: Path) -> Any:
    """A JSON file an earlier step wrote; a missing or broken one names the file and what to do."""
    if not path.is_file():
        raise MediaError(f"{path} not found: materialize the upstream asset for this video first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MediaError(f"{path} is not valid JSON: {exc}") from None


def load_rgb(path: Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 array; an unreadable one names the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise MediaError(f"image not found: {path}") from None
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise MediaError(f"{path} cannot be read as an image: {exc}") from None


def load_frame(path: Path, width: int, height: int) -> np.ndarray:
    """An RGB image at ``width`` x ``height`` (resized only when it is not that size already)."""
    from PIL import Image

    rgb = load_rgb(path)
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


@dataclass(frozen=True)
class VideoState:
    """One video's stored spec and folder."""

    spec: JobSpec
    paths: VideoPaths

    @classmethod
    def load(cls, folder: Path, video: str) -> VideoState:
        """The spec that ``script`` stored in ``folder`` (validated again: a hand-edited file is refused)."""
        from pydantic import ValidationError

        paths = VideoPaths(folder)
        if not paths.spec.is_file():
            raise SpecError(f"no stored spec for video {video!r} at {paths.spec}: materialize `script` first")
        try:
            spec = JobSpec.model_validate(read_json(paths.spec))
        except ValidationError as exc:
            from i2v_dagster.specfile import format_validation_error

            raise SpecError(f"{paths.spec}: {format_validation_error(exc)}") from None
        if spec.name != video:
            raise SpecError(f"stored spec at {paths.spec} is for {spec.name!r}, not {video!r}")
        if spec.dry_run:  # a dry run is rendered on the mocks; the stored spec keeps the real adapters
            from i2v_dagster.specfile import rehearsal

            spec = rehearsal(spec)
        return cls(spec=spec, paths=paths)

    @property
    def name(self) -> str:
        return self.spec.name

    def script(self) -> Script:
        return Script.model_validate(read_json(self.paths.script))

    def timeline(self) -> Timeline:
        return Timeline.from_dict(read_json(self.paths.timeline))

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
        return load_frame(self.start_image, self.spec.width, self.spec.height)
