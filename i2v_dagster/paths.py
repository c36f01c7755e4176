"""Where a video's files live: ``<outputs_root>/<video>/...``. Metadata records paths relative to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from i2v_dagster.planning import clip_id


@dataclass(frozen=True)
class VideoPaths:
    root: Path
    """The video's folder: ``<outputs_root>/<video name>``."""

    @classmethod
    def for_video(cls, outputs_root: str | Path, name: str) -> VideoPaths:
        return cls(Path(outputs_root).expanduser().resolve() / name)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    @property
    def script(self) -> Path:
        return self.root / "script.json"

    @property
    def timeline(self) -> Path:
        return self.root / "timeline.json"

    @property
    def narration(self) -> Path:
        return self.root / "narration.wav"

    def scene_audio(self, scene: int) -> Path:
        return self.root / "narration" / f"scene_{clip_id(scene)}.wav"

    def scene_audio_record(self, scene: int) -> Path:
        return self.root / "narration" / f"scene_{clip_id(scene)}.json"

    def keyframe_record(self, scene: int) -> Path:
        return self.root / "keyframes" / f"keyframe_{clip_id(scene)}.json"

    def keyframe(self, scene: int) -> Path:
        return self.root / "keyframes" / f"keyframe_{clip_id(scene)}.png"

    def clip(self, index: int) -> Path:
        return self.root / "clips" / f"clip_{clip_id(index)}.mp4"

    def clip_first(self, index: int) -> Path:
        return self.root / "clips" / f"clip_{clip_id(index)}_first.png"

    def clip_last(self, index: int) -> Path:
        return self.root / "clips" / f"clip_{clip_id(index)}_last.png"

    def clip_preview(self, index: int) -> Path:
        return self.root / "clips" / f"clip_{clip_id(index)}_preview.webp"

    def clip_override(self, index: int) -> Path:
        return self.root / "clips" / f"clip_{clip_id(index)}.override.json"

    def clip_record(self, index: int) -> Path:
        return self.root / "clips" / f"clip_{clip_id(index)}.json"

    @property
    def final(self) -> Path:
        return self.root / "final" / f"{self.name}.mp4"

    @property
    def verify_dir(self) -> Path:
        return self.root / "verify"

    @property
    def bundles(self) -> Path:
        return self.root / "bundles"

    def bundle(self, run_id: str) -> Path:
        return self.bundles / f"{self.name}-{run_id[:8]}.zip"

    def rel(self, path: str | Path) -> str:
        """``path`` relative to the video folder (what metadata and manifests record)."""
        return Path(path).resolve().relative_to(self.root).as_posix()
