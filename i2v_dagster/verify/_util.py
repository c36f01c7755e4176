"""Shared helpers: frame validation, luma, and atomic file writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file next to ``path``, then rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
