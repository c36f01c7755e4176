"""One writer per video: a lock file in the video's folder, held by the run that writes it.

``fcntl.flock`` on ``<video>/.lock``: the kernel drops it when the holding process ends, however it ends
(``kill -9`` included), so a dead run never leaves the video locked. The file says which run holds it, so a
second run of the same video is refused naming the first. Runs of other videos take other locks.

A run's steps may run in several processes at once (the multiprocess executor, ``render_video_parallel``):
every process of the holding run holds the lock *shared*, and a claim (taking a free lock, or joining the
run that holds it) happens under a short exclusive lock on ``<video>/.lock.claim``, so two runs can never
both hold it. Between two steps of a multiprocess run no process holds it; the queue's per-video limit
(``deploy/``) keeps a second run from starting in that gap. (On a fleet the outputs are on a shared
filesystem; where it does not support ``flock``, that per-video limit is the guard.)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from pathlib import Path

from i2v_dagster.errors import VideoBusyError

LOCK_NAME = ".lock"
CLAIM_NAME = ".lock.claim"
_held: dict[str, tuple[int, str, int]] = {}
"""Lock path -> (file descriptor, run id, holders in this process): a run may set its resources up twice."""
_guard = threading.Lock()


def acquire(folder: Path, *, video: str, run_id: str) -> Path:
    """Take the video's lock for ``run_id`` (or join it, when another process of the same run holds it), or
    raise :class:`VideoBusyError` naming the run holding it."""
    path = folder / LOCK_NAME
    key = str(path.resolve())
    with _guard:
        if key in _held and _held[key][1] == run_id:
            fd, owner, count = _held[key]
            _held[key] = (fd, owner, count + 1)
            return path
        folder.mkdir(parents=True, exist_ok=True)
        claim = os.open(folder / CLAIM_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(claim, fcntl.LOCK_EX)  # held for the claim only (microseconds)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held (shared) by some run's processes: ours may join
                holder = _holder(fd)
                if holder.get("run_id") != run_id:
                    raise VideoBusyError(
                        f"video {video!r} is being written by {_describe(holder)}; one run per video at a "
                        "time: wait for it to finish (or cancel it), then run again"
                    ) from None
            else:  # free: it is this run's now
                os.ftruncate(fd, 0)
                holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname()}
                os.pwrite(fd, json.dumps(holder).encode(), 0)
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # no one holds it exclusively during a claim
        except BaseException:
            os.close(fd)
            raise
        finally:
            os.close(claim)  # drops the claim lock
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
        os.close(fd)  # closing drops the flock (the file keeps the last holder's name, for messages)


def _holder(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict) -> str:
    if not holder.get("run_id"):
        return "another run"
    return f"run {holder['run_id']} (process {holder.get('pid')} on {holder.get('host')})"
