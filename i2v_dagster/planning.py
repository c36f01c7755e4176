"""Audio first: narration durations decide frames per scene; long scenes become several chained clips."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ScenePlan:
    index: int
    duration_s: float
    """Spoken (or spec) duration, before padding to whole frames."""
    frames: int
    start_frame: int


@dataclass(frozen=True)
class ClipPlan:
    index: int
    scene: int
    frames: int
    start_frame: int
    first_of_scene: bool
    seed: int

    @property
    def key(self) -> str:
        return f"{self.index:03d}"


@dataclass(frozen=True)
class Timeline:
    fps: int
    scenes: list[ScenePlan]
    clips: list[ClipPlan]

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.scenes)

    @property
    def duration_s(self) -> float:
        return self.total_frames / self.fps

    def to_dict(self) -> dict:
        return {
            "fps": self.fps,
            "scenes": [asdict(s) for s in self.scenes],
            "clips": [asdict(c) for c in self.clips],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Timeline:
        return cls(
            fps=int(data["fps"]),
            scenes=[ScenePlan(**s) for s in data["scenes"]],
            clips=[ClipPlan(**c) for c in data["clips"]],
        )


def scene_frames(duration_s: float, fps: int) -> int:
    """Frames that cover ``duration_s`` (ceil, so no narration is cut; at least one)."""
    return max(1, math.ceil(round(duration_s * fps, 6)))


def split_frames(total: int, max_per_clip: int) -> list[int]:
    """Split ``total`` frames into the fewest clips of at most ``max_per_clip``, as even as possible."""
    n = max(1, math.ceil(total / max_per_clip))
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def plan_timeline(durations: list[float], *, fps: int, max_clip_frames: int, clip_seed) -> Timeline:
    """Scenes get ``ceil(duration * fps)`` frames; each is split into clips of at most ``max_clip_frames``."""
    scenes: list[ScenePlan] = []
    clips: list[ClipPlan] = []
    start = 0
    for s, duration in enumerate(durations):
        frames = scene_frames(duration, fps)
        scenes.append(ScenePlan(index=s, duration_s=float(duration), frames=frames, start_frame=start))
        clip_start = start
        for j, n in enumerate(split_frames(frames, max_clip_frames)):
            idx = len(clips)
            clips.append(
                ClipPlan(
                    index=idx,
                    scene=s,
                    frames=n,
                    start_frame=clip_start,
                    first_of_scene=j == 0,
                    seed=clip_seed(idx),
                )
            )
            clip_start += n
        start += frames
    return Timeline(fps=fps, scenes=scenes, clips=clips)
