"""Time limits enforced inside a step: a deadline object and a SIGALRM watchdog.

Dagster OSS has no op-level timeout, so each clip gets ``min(per_clip_limit, run_budget_left)`` and two
mechanisms enforce it: adapters call :meth:`Deadline.check` at every denoising step, and a watchdog
(SIGALRM, main thread only) interrupts code that does not reach such a check.

The watchdog is armed around model code only. Work that must not be cut in half while it is armed (a
progress callback writing to Dagster's event log) runs inside :func:`shielded`: the alarm is held back
for its duration and fires right after it, never inside the write.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from i2v_dagster.errors import ClipTimeoutError

log = logging.getLogger(__name__)


@dataclass
class Deadline:
    """A point in time (monotonic clock) by which a unit of work must finish."""

    limit_s: float
    label: str = "clip"
    started: float = field(default_factory=time.monotonic)

    @property
    def expires_at(self) -> float:
        return self.started + self.limit_s

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def error(self) -> ClipTimeoutError:
        elapsed = self.elapsed()
        return ClipTimeoutError(
            f"{self.label} ran over its time limit: {elapsed:.1f} s elapsed, limit {self.limit_s:.1f} s",
            limit_s=self.limit_s,
            elapsed_s=elapsed,
        )

    def check(self) -> None:
        """Raise :class:`ClipTimeoutError` once the deadline has passed."""
        if self.expired():
            raise self.error()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def watchdog(deadline: Deadline) -> Iterator[bool]:
    """Interrupt the body with :class:`ClipTimeoutError` when ``deadline`` passes.

    Yields whether the alarm is armed (only in the main thread of a process with SIGALRM); otherwise
    the body relies on cooperative :meth:`Deadline.check` calls alone.
    """
    if not (_in_main_thread() and hasattr(signal, "setitimer")):
        log.debug("watchdog not armed for %s: not in the main thread", deadline.label)
        yield False
        return

    def _on_alarm(signum, frame):  # noqa: ARG001 - signal handler signature
        if _shield.depth:  # inside shielded(): raise when it ends instead
            _shield.pending = deadline
            return
        raise deadline.error()

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(deadline.remaining(), 0.001))
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _shield.pending = None


class _Shield:
    depth = 0
    pending: Deadline | None = None


_shield = _Shield()


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold the watchdog's alarm back while the body runs; an alarm that came due meanwhile raises its
    :class:`ClipTimeoutError` as the body ends (never inside it)."""
    _shield.depth += 1
    try:
        yield
    finally:
        _shield.depth -= 1
    if _shield.depth == 0 and _shield.pending is not None:
        due, _shield.pending = _shield.pending, None
        raise due.error()
