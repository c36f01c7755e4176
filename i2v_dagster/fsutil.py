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

from i2v_dagster.errors import MediaError

TMP_MARK = ".tmp-"
"""Every temporary file is named ``.<stem>.tmp-<pid>-<random><suffix>`` beside its destination."""


def scratch_name(near: str | Path) -> Path:
    """A hidden temporary path beside ``near`` (same suffix; the folder is created)."""
    near = Path(near)
    near.parent.mkdir(parents=True, exist_ok=True)
    return near.with_name(f".{near.stem}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{near.suffix}")


@contextlib.contextmanager
def scratch_path(near: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``near`` (same suffix), removed afterwards whatever happens."""
    tmp = scratch_name(near)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest`` (same suffix); rename it onto ``dest`` on success.

    On an exception the temporary file is removed and ``dest`` is left as it was; an operating-system error
    (a full disk, a read-only folder) becomes a :class:`MediaError` naming ``dest``.
    """
    try:
        with scratch_path(dest) as tmp:
            yield tmp
            os.replace(tmp, dest)
    except OSError as exc:
        other = (
            f" ({exc.filename})" if exc.filename and str(exc.filename) not in (str(dest), str(tmp)) else ""
        )
        raise MediaError(f"cannot write {dest}: {exc.strerror or exc}{other}") from exc


def write_bytes_atomic(dest: str | Path, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text_atomic(dest: str | Path, text: str) -> Path:
    return write_bytes_atomic(dest, text.encode("utf-8"))


def write_json_atomic(dest: str | Path, data: Any) -> Path:
    return write_text_atomic(dest, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def save_png_atomic(image, dest: str | Path, *, compress_level: int = 1) -> Path:
    """Save a PIL image (or uint8 HxWx3 array) as PNG, atomically. PNG is lossless; level 1 is the fast end
    of zlib (the files are working copies, a few percent larger than at the default level)."""
    from PIL import Image

    if not hasattr(image, "save"):
        image = Image.fromarray(image)
    with atomic_path(dest) as tmp:
        image.save(tmp, format="PNG", compress_level=compress_level)
    return Path(dest)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete temporary files left in ``folder`` (recursively) by processes that no longer run (a killed
    run); a live process's files are left alone. Returns what was removed."""
    removed = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for path in root.rglob(f".*{TMP_MARK}*"):
        pid = path.name.split(TMP_MARK, 1)[1].split("-", 1)[0]
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
