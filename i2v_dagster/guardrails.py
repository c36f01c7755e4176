"""Time limits enforced inside a step: a deadline object and a SIGALRM watchdog.

Dagster OSS has no op-level timeout, so each clip gets ``min(per_clip_limit, run_budget_left)`` and two
mechanisms enforce it: adapters call :meth:`Deadline.check` at every denoising step, and a watchdog
(SIGALRM, main thread only) interrupts code that does not reach such a check.
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
        raise deadline.error()

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(deadline.remaining(), 0.001))
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
