"""One writer per video: a lock file in the video's folder, held by the run that writes it.

``fcntl.flock`` on ``<video>/.lock``: the kernel drops it when the holding process ends, however it ends
(``kill -9`` included), so a dead run never leaves the video locked. The file says which run holds it, so a
second run of the same video is refused naming the first. Runs of other videos take other locks. (On a
fleet the outputs are on a shared filesystem; where it does not support ``flock``, use the queue's
per-video tag concurrency limit instead, see ``deploy/``.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
from pathlib import Path

from i2v_dagster.errors import VideoBusyError

LOCK_NAME = ".lock"
_held: dict[str, tuple[int, str, int]] = {}
"""Lock path -> (file descriptor, run id, holders in this process): a run may set its resources up twice."""
_guard = threading.Lock()


def acquire(folder: Path, *, video: str, run_id: str) -> Path:
    """Take the video's lock for ``run_id`` or raise :class:`VideoBusyError` naming the run holding it."""
    path = folder / LOCK_NAME
    key = str(path.resolve())
    with _guard:
        if key in _held and _held[key][1] == run_id:
            fd, owner, count = _held[key]
            _held[key] = (fd, owner, count + 1)
            return path
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            os.close(fd)
            raise VideoBusyError(
                f"video {video!r} is being written by {holder}; one run per video at a time: wait for it to "
                "finish (or cancel it), then run again"
            ) from None
        os.ftruncate(fd, 0)
        holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname()}
        os.write(fd, json.dumps(holder).encode())
        _held[key] = (fd, run_id, 1)
    return path


def release(folder: Path, *, run_id: str) -> None:
    key = str((folder / LOCK_NAME).resolve())
    with _guard:
        if key not in _held or _held[key][1] != run_id:
            return
        fd, owner, count = _held[key]
        if count > 1:
            _held[key] = (fd, owner, count - 1)
            return
        del _held[key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the flock


def _describe(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        data = {}
    if not data.get("run_id"):
        return "another run"
    return f"run {data['run_id']} (process {data.get('pid')} on {data.get('host')})"
