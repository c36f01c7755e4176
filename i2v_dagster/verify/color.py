"""Colour correction: match a clip's Lab statistics to a fixed reference frame.

Pass the FIRST clip's reference frame (keyframe 0) for every clip, not the previous clip: each clip is then
pulled toward the same target and corrections do not compound along the chain.
"""

from __future__ import annotations

import numpy as np

from i2v_dagster.verify.continuity import ColorStats, color_stats
from i2v_dagster.verify.frames import as_frames
from i2v_dagster.verify.lab import lab_planes, srgb_u8_planes

MIN_STD = 1e-3
SCALE_LIMITS = (0.25, 4.0)
CHUNK_PIXELS = 1 << 18


def color_transfer(stats: ColorStats, reference: ColorStats) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(scale, offset)`` with ``lab * scale + offset`` mapping ``stats`` onto ``reference``.

    The std ratio is clamped to ``SCALE_LIMITS`` (a near-flat clip keeps its contrast instead of having
    noise amplified); a channel with std below ``MIN_STD`` is only shifted.
    """
    scale = np.where(stats.std > MIN_STD, reference.std / np.maximum(stats.std, MIN_STD), 1.0)
    scale = np.clip(scale, *SCALE_LIMITS)
    offset = reference.mean - stats.mean * scale
    return scale.astype(np.float32), offset.astype(np.float32)


def match_color(frames: np.ndarray, reference: np.ndarray | ColorStats) -> np.ndarray:
    """``frames`` (T, H, W, 3) uint8 with the clip's Lab mean and std per channel matched to ``reference``.

    One affine map per channel for the whole clip (statistics pooled over its frames), so the correction
    does not flicker from frame to frame. Returns a new uint8 array of the same shape.
    """
    frames = as_frames(frames)
    ref = reference if isinstance(reference, ColorStats) else color_stats(reference)
    scale, offset = color_transfer(color_stats(frames), ref)
    flat = frames.reshape(-1, 3)
    out = np.empty_like(flat)
    for start in range(0, flat.shape[0], CHUNK_PIXELS):
        lab = lab_planes(np.ascontiguousarray(flat[start : start + CHUNK_PIXELS].T))
        lab *= scale[:, None]
        lab += offset[:, None]
        out[start : start + CHUNK_PIXELS] = srgb_u8_planes(lab).T
    return out.reshape(frames.shape)
