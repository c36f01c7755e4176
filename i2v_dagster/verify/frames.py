"""Frames as the checks see them: validation, luma, and one downscaled luma pass shared by every check.

:class:`ClipMeasures` is computed once per clip: luma at half resolution (a 2x2 box mean, which also
suppresses grain), each frame's largest per-channel spatial spread, and the mean absolute luma difference of
every consecutive pair. The broken-frame, frozen-run, motion and seam checks all read it, so a 49-frame
720x480 clip is converted once, not once per check. :func:`frame_diff` is the same difference for any two
frames (a seam's last and next-first frame)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Rec. 601 luma weights on gamma-encoded RGB (what "brightness" means to a frame check).
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def as_frames(frames: np.ndarray, *, arg: str = "frames") -> np.ndarray:
    """Return ``frames`` as a (T, H, W, 3) uint8 array, or raise ``ValueError`` naming the argument."""
    arr = np.asarray(frames)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"`{arg}` must have shape (T, H, W, 3) but has shape {arr.shape}.")
    if arr.dtype != np.uint8:
        raise ValueError(f"`{arg}` must be uint8 but is {arr.dtype}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"`{arg}` is empty (shape {arr.shape}).")
    return arr


def as_image(image: np.ndarray, *, arg: str = "image") -> np.ndarray:
    """Return one (H, W, 3) uint8 frame, or raise ``ValueError`` naming the argument."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"`{arg}` must be a (H, W, 3) uint8 array but is {arr.dtype} {arr.shape}.")
    return arr


def luma(frame: np.ndarray) -> np.ndarray:
    """Luma of (..., 3) uint8 RGB in levels 0..255, float32."""
    return frame.astype(np.float32) @ LUMA_WEIGHTS


def block_mean(plane: np.ndarray, block: int) -> np.ndarray:
    """Downscale the last two axes of ``plane`` by averaging ``block`` x ``block`` tiles (a box blur)."""
    if block <= 1:
        return plane
    h, w = plane.shape[-2] // block * block, plane.shape[-1] // block * block
    if h == 0 or w == 0:
        return plane
    cut = plane[..., :h, :w]
    shape = (*cut.shape[:-2], h // block, block, w // block, block)
    return cut.reshape(shape).mean(axis=(-3, -1))


BOX = 2
"""The measures' downscale: luma is averaged over BOX x BOX pixel blocks."""


def half_luma(frame: np.ndarray) -> np.ndarray:
    """Luma (levels 0..255, float32) of one (H, W, 3) uint8 frame, averaged over 2x2 blocks.

    Pillow does it in C: its "L" conversion is the same Rec. 601 luma (rounded to whole levels) and its
    ``reduce`` a box average; several times faster than the same arithmetic in numpy.
    """
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(frame), "RGB").convert("L")
    if image.width >= BOX and image.height >= BOX:
        image = image.reduce(BOX)
    return np.asarray(image, dtype=np.float32)


def frame_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two frames' half-resolution luma (levels): the one frame-pair difference
    every check uses (consecutive frames, a seam's two sides)."""
    return float(np.abs(half_luma(as_image(a, arg="a")) - half_luma(as_image(b, arg="b"))).mean())


@dataclass(frozen=True)
class ClipMeasures:
    """One pass over a clip's frames: what the per-clip checks share."""

    luma: np.ndarray
    """(T, H/2, W/2) float32: half-resolution luma of every frame."""
    channel_std: np.ndarray
    """(T,) the largest per-channel spatial standard deviation of each frame (every 8th pixel each way)."""

    @classmethod
    def of(cls, frames: np.ndarray) -> ClipMeasures:
        frames = as_frames(frames)
        small = np.empty((frames.shape[0], *half_luma(frames[0]).shape), dtype=np.float32)
        stds = np.empty(frames.shape[0], dtype=np.float64)
        for t, frame in enumerate(frames):
            small[t] = half_luma(frame)
            stds[t] = float(frame[::8, ::8].reshape(-1, 3).std(axis=0, dtype=np.float32).max())
        return cls(luma=small, channel_std=stds)

    @property
    def count(self) -> int:
        return int(self.luma.shape[0])

    @cached_property
    def pair_deltas(self) -> np.ndarray:
        """(T-1, H/2, W/2) absolute luma change of each consecutive pair."""
        return np.abs(np.diff(self.luma, axis=0))

    @cached_property
    def pair_diffs(self) -> np.ndarray:
        """(T-1,) mean absolute luma difference of each consecutive pair (levels)."""
        return self.pair_deltas.mean(axis=(1, 2), dtype=np.float64)
