"""Atomic file writes and hashing: nothing already produced is lost or left half-written."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def scratch_path(near: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``near`` (same suffix), removed afterwards whatever happens."""
    near = Path(near)
    near.parent.mkdir(parents=True, exist_ok=True)
    tmp = near.with_name(f".{near.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{near.suffix}")
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest`` (same suffix); rename it onto ``dest`` on success.

    On an exception the temporary file is removed and ``dest`` is left as it was.
    """
    with scratch_path(dest) as tmp:
        yield tmp
        os.replace(tmp, dest)


def write_bytes_atomic(dest: str | Path, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text_atomic(dest: str | Path, text: str) -> Path:
    return write_bytes_atomic(dest, text.encode("utf-8"))


def write_json_atomic(dest: str | Path, data: Any) -> Path:
    return write_text_atomic(dest, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def save_png_atomic(image, dest: str | Path) -> Path:
    """Save a PIL image (or uint8 HxWx3 array) as PNG, atomically. PNG is lossless."""
    from PIL import Image

    if not hasattr(image, "save"):
        image = Image.fromarray(image)
    with atomic_path(dest) as tmp:
        image.save(tmp, format="PNG")
    return Path(dest)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
