"""Made-up videos for the verification tests: (T, H, W, 3) uint8 arrays built with numpy and PIL."""

from __future__ import annotations

import numpy as np
from PIL import Image

H, W = 96, 128


def texture(height: int = H, width: int = W, *, seed: int = 0, cell: int = 8) -> np.ndarray:
    """A smooth colourful texture: coarse random noise upscaled bicubically (structure every ``cell`` px)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // cell + 2, width // cell + 2, 3), dtype=np.uint8)
    big = Image.fromarray(coarse, "RGB").resize(
        (width + 2 * cell, height + 2 * cell), Image.Resampling.BICUBIC
    )
    return np.asarray(big)[cell : cell + height, cell : cell + width].copy()


def pan(frames: int = 17, *, step: int = 2, seed: int = 0, start: np.ndarray | None = None) -> np.ndarray:
    """A window sliding ``step`` px per frame across a texture (frame 0 equals ``start`` when given)."""
    wide = texture(H, W + step * frames, seed=seed)
    if start is not None:
        wide[:, :W] = start
    return np.stack([wide[:, t * step : t * step + W] for t in range(frames)])


def zoom(frames: int = 17, *, seed: int = 1, rate: float = 0.02) -> np.ndarray:
    """A push-in: each frame crops a smaller centred window of a texture and scales it back up."""
    base = Image.fromarray(texture(H, W, seed=seed), "RGB")
    out = []
    for t in range(frames):
        scale = 1.0 / (1.0 + rate * t)
        w, h = W * scale, H * scale
        box = ((W - w) / 2, (H - h) / 2, (W + w) / 2, (H + h) / 2)
        out.append(np.asarray(base.resize((W, H), Image.Resampling.BILINEAR, box=box)))
    return np.stack(out)


def still(frames: int = 17, *, seed: int = 0) -> np.ndarray:
    """The same textured frame repeated."""
    return np.repeat(texture(seed=seed)[None], frames, axis=0)


def constant(frames: int = 17, colour: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Every pixel of every frame one colour (black by default)."""
    return np.broadcast_to(np.array(colour, dtype=np.uint8), (frames, H, W, 3)).copy()


def single_jump(frames: int = 17, *, at: int = 8) -> np.ndarray:
    """Still frames, then one cut to a different picture at frame ``at``, then still again."""
    clip = still(frames, seed=3)
    clip[at:] = 255 - clip[at]
    return clip


def grainy_still(frames: int = 17, *, amplitude: int = 6, seed: int = 4) -> np.ndarray:
    """A still picture with fresh random grain in every frame (no real motion)."""
    rng = np.random.default_rng(seed)
    base = texture(seed=seed).astype(np.int16)
    grain = rng.integers(-amplitude, amplitude + 1, size=(frames, H, W, 1), dtype=np.int16)
    return np.clip(base[None] + grain, 0, 255).astype(np.uint8)


def with_cast(clip: np.ndarray, cast: tuple[float, float, float]) -> np.ndarray:
    """``clip`` with an RGB offset added to every pixel (clipped to 0..255)."""
    return np.clip(clip.astype(np.float32) + np.asarray(cast, dtype=np.float32), 0, 255).astype(np.uint8)


def chain(
    count: int = 3,
    frames: int = 9,
    *,
    cast_per_clip: tuple[float, float, float] = (0, 0, 0),
    hold: bool = False,
) -> list:
    """``count`` chained pans, each continuing the one before it: clip i+1's first frame is one pan step
    after clip i's last (the conditioning frame itself is not repeated). ``hold=True`` repeats it instead
    (clip i+1 starts ON clip i's last frame: a one-frame hold at every join).

    With ``cast_per_clip``, an RGB cast grows steadily along the chain (clip i goes from i to i+1 times the
    cast), the way a cast compounds when each clip starts from the previous clip's last frame.
    """
    step = 2
    wide = texture(H, W + step * (count * frames + 1), seed=10)
    clips = []
    ramp = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None, None, None]
    cast = np.asarray(cast_per_clip, dtype=np.float32)
    position = 0
    for i in range(count):
        if hold and i > 0:
            position -= 1
        raw = np.stack([wide[:, (position + t) * step : (position + t) * step + W] for t in range(frames)])
        position += frames
        clips.append(np.clip(raw + (i + ramp) * cast, 0, 255).astype(np.uint8))
    return clips
