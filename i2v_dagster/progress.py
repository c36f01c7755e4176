"""Progress of a run of clips: "clip i of N, step s of S, elapsed, ETA", from the steps seen so far."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass
class Progress:
    """Counts clips and steps; estimates what is left from the average step and clip so far.

    ``should_report`` throttles per-step lines to one every ``every_s`` seconds (counted from the clip's
    start), so a model with slow steps reports each one and a fast one does not flood the event log (each
    clip's line when it is done says its steps).
    """

    total_clips: int
    every_s: float = 1.0
    started: float = field(default_factory=time.monotonic)
    done_clips: int = 0
    clip_seconds: list[float] = field(default_factory=list)
    _clip_started: float | None = None
    _step_seconds: list[float] = field(default_factory=list)
    _last_report: float = 0.0

    def start_clip(self) -> None:
        self._clip_started = self._last_report = time.monotonic()

    def end_clip(self) -> None:
        if self._clip_started is not None:
            self.clip_seconds.append(time.monotonic() - self._clip_started)
        self._clip_started = None
        self.done_clips += 1

    def skip_clip(self) -> None:
        """A clip that needed no work (reused): counted, but not in the time averages."""
        self.done_clips += 1

    def step(self, seconds: float) -> None:
        self._step_seconds.append(seconds)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def eta(self, step: int | None = None, total_steps: int | None = None) -> float | None:
        """Seconds left for the whole run of clips (None until there is something to go by)."""
        left_clips = self.total_clips - self.done_clips
        in_clip = 0.0
        if step is not None and total_steps and self._step_seconds:
            mean_step = sum(self._step_seconds[-total_steps:]) / min(len(self._step_seconds), total_steps)
            in_clip = (total_steps - step) * mean_step
            left_clips -= 1
        if self.clip_seconds:
            per_clip = sum(self.clip_seconds) / len(self.clip_seconds)
        elif step and self._clip_started is not None:
            per_clip = (time.monotonic() - self._clip_started) * (total_steps or step) / step
        else:
            return None
        return in_clip + max(left_clips, 0) * per_clip

    def should_report(self, step: int, total_steps: int) -> bool:
        now = time.monotonic()
        if now - self._last_report >= self.every_s:
            self._last_report = now
            return True
        return False

    def step_line(self, index: int, step: int, total_steps: int, seconds: float) -> str:
        return (
            f"clip {index + 1} of {self.total_clips} ({index:03d}): step {step} of {total_steps} "
            f"({seconds:.2f} s/step), elapsed {format_seconds(self.elapsed())}, "
            f"ETA {format_seconds(self.eta(step, total_steps))}"
        )

    def clip_line(self, index: int, what: str) -> str:
        return (
            f"clip {index + 1} of {self.total_clips} ({index:03d}) {what}; elapsed "
            f"{format_seconds(self.elapsed())}, ETA {format_seconds(self.eta())}"
        )


@dataclass(frozen=True)
class ProgressEvent:
    """What a step tells listeners in the same process (``i2v run``'s progress bar)."""

    video: str
    phase: str
    """script, narration, keyframes, clips, stitched_video, bundle."""
    done: float = 0.0
    """Clips finished (with the current clip's steps as a fraction), for the clips phase."""
    total: int = 0
    text: str = ""
    eta_s: float | None = None


_listeners: list = []


def listen(callback) -> None:
    """Call ``callback(event)`` for every :class:`ProgressEvent` in this process."""
    _listeners.append(callback)


def unlisten(callback) -> None:
    if callback in _listeners:
        _listeners.remove(callback)


def notify(event: ProgressEvent) -> None:
    for callback in list(_listeners):
        callback(event)
