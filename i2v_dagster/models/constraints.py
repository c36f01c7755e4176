"""What an adapter can make, checked when a spec is validated (before any work).

Each check returns a list of messages; each message names the field, the adapter's rule and the value,
e.g. ``width/height: cogvideox_5b_i2v makes 720x480 only, not 640x480``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class SizeRule:
    sizes: tuple[tuple[int, int], ...] = ()
    """Exact (width, height) pairs allowed; empty means any size that meets the other rules."""
    multiple_of: int = 8
    min_side: int = 16
    max_side: int = 2048

    def check(self, adapter: str, width: int, height: int) -> list[str]:
        errors: list[str] = []
        if self.sizes:
            if (width, height) not in self.sizes:
                allowed = ", ".join(f"{w}x{h}" for w, h in self.sizes)
                errors.append(f"width/height: {adapter} makes {allowed} only, not {width}x{height}")
            return errors
        for field, value in (("width", width), ("height", height)):
            if value % self.multiple_of:
                errors.append(f"{field}: {adapter} needs a multiple of {self.multiple_of}, got {value}")
            if not self.min_side <= value <= self.max_side:
                errors.append(
                    f"{field}: {adapter} makes {self.min_side}..{self.max_side} pixels, got {value}"
                )
        return errors


@dataclass(frozen=True, kw_only=True)
class VideoConstraints:
    size: SizeRule = SizeRule()
    frame_step: int = 1
    """Generated frame counts are ``frame_step * N + 1`` (8 for CogVideoX, 4 for Wan/Hunyuan); 1 = any."""
    native_frames: tuple[int, ...] = ()
    """Exact generated frame counts allowed (CogVideoX: 49); empty means any that meets ``frame_step``."""
    max_frames: int = 49
    """Most frames one generation makes."""
    max_clip_frames: int | None = None
    """Most frames kept per clip (the rest trimmed); None means ``max_frames``."""
    fps: tuple[int, ...] = ()
    """Frame rates the model was trained for; empty means any."""

    @property
    def usable_frames(self) -> int:
        return self.max_clip_frames or self.max_frames

    def rule_text(self) -> str:
        if self.native_frames:
            return "frames " + " or ".join(str(n) for n in self.native_frames)
        if self.frame_step > 1:
            return f"frames {self.frame_step}N+1 up to {self.max_frames}"
        return f"frames up to {self.max_frames}"

    def generation_frames(self, wanted: int) -> int:
        """Smallest frame count the model can generate that is >= ``wanted``."""
        if self.native_frames:
            for n in sorted(self.native_frames):
                if n >= wanted:
                    return n
            return max(self.native_frames)
        step = self.frame_step
        if step <= 1:
            return wanted
        n = ((max(wanted, 1) - 1 + step - 1) // step) * step + 1
        return min(n, self.max_frames)

    def check(
        self, adapter: str, *, width: int, height: int, fps: int, clip_frames: int | None = None
    ) -> list[str]:
        errors = self.size.check(adapter, width, height)
        if self.fps and fps not in self.fps:
            allowed = " or ".join(str(f) for f in self.fps)
            errors.append(f"fps: {adapter} was made for {allowed} fps, got {fps}")
        if clip_frames is not None and not 1 <= clip_frames <= self.usable_frames:
            errors.append(
                f"max_clip_frames: {adapter} keeps 1..{self.usable_frames} frames per clip "
                f"({self.rule_text()}), got {clip_frames}"
            )
        return errors


@dataclass(frozen=True, kw_only=True)
class ImageConstraints:
    size: SizeRule = SizeRule()

    def check(self, adapter: str, *, width: int, height: int) -> list[str]:
        return self.size.check(adapter, width, height)
