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


def clip_id(index: int) -> str:
    """A clip's id: its index as three digits ("000", "001", ...), in file names and `clip` partitions."""
    return f"{index:03d}"


@dataclass(frozen=True)
class ClipPlan:
    index: int
    scene: int
    frames: int
    """Frames the clip adds to the video."""
    start_frame: int
    first_of_scene: bool
    seed: int
    continues: bool = False
    """The clip continues the previous clip from its last frame. An image-to-video model's first frame
    reproduces its conditioning image, so such a clip is generated one frame longer and that first frame
    dropped: no frame is repeated at the join."""

    @property
    def key(self) -> str:
        return clip_id(self.index)

    @property
    def generate_frames(self) -> int:
        """Frames to ask the model for."""
        return self.frames + 1 if self.continues else self.frames


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


def split_frames(total: int, max_per_clip: int, *, first_max: int | None = None) -> list[int]:
    """Split ``total`` frames into the fewest clips, as even as possible: the first at most ``first_max``
    (default ``max_per_clip``; at most one more), the others at most ``max_per_clip``."""
    first_max = max_per_clip if first_max is None else first_max
    if not max_per_clip <= first_max <= max_per_clip + 1:
        raise ValueError(f"first_max must be max_per_clip or one more, got {first_max} and {max_per_clip}")
    n = 1 if total <= first_max else 1 + math.ceil((total - first_max) / max_per_clip)
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def plan_timeline(
    durations: list[float],
    *,
    fps: int,
    max_clip_frames: int,
    clip_seed,
    chain_mode: str = "last_frame",
) -> Timeline:
    """Scenes get ``ceil(duration * fps)`` frames; each is split into clips the model can make.

    A clip that continues the one before it (every clip after the first in ``last_frame`` mode; the clips
    after a scene's first in ``keyframe`` mode) is generated one frame longer than it keeps, so it keeps at
    most ``max_clip_frames - 1``; a clip that starts from a picture keeps up to ``max_clip_frames``.
    """
    if max_clip_frames < 2:
        raise ValueError(f"max_clip_frames must be at least 2 to chain clips, got {max_clip_frames}")
    scenes: list[ScenePlan] = []
    clips: list[ClipPlan] = []
    start = 0
    for s, duration in enumerate(durations):
        frames = scene_frames(duration, fps)
        scenes.append(ScenePlan(index=s, duration_s=float(duration), frames=frames, start_frame=start))
        starts_fresh = not clips or chain_mode == "keyframe"
        sizes = split_frames(
            frames, max_clip_frames - 1, first_max=max_clip_frames if starts_fresh else max_clip_frames - 1
        )
        clip_start = start
        for j, n in enumerate(sizes):
            idx = len(clips)
            clips.append(
                ClipPlan(
                    index=idx,
                    scene=s,
                    frames=n,
                    start_frame=clip_start,
                    first_of_scene=j == 0,
                    seed=clip_seed(idx),
                    continues=not (j == 0 and starts_fresh),
                )
            )
            clip_start += n
        start += frames
    return Timeline(fps=fps, scenes=scenes, clips=clips)
