from __future__ import annotations

import threading
import time

import pytest

from i2v_dagster.errors import ClipTimeoutError
from i2v_dagster.guardrails import Deadline, watchdog


def test_deadline_check_raises_after_the_limit():
    d = Deadline(0.05, label="clip 003")
    d.check()
    time.sleep(0.08)
    with pytest.raises(ClipTimeoutError, match="clip 003 ran over its time limit") as info:
        d.check()
    assert info.value.limit_s == 0.05 and info.value.elapsed_s >= 0.05


def test_watchdog_interrupts_code_that_never_checks():
    started = time.monotonic()
    with pytest.raises(ClipTimeoutError), watchdog(Deadline(0.3, label="clip 001")) as armed:
        assert armed
        time.sleep(5)
    assert time.monotonic() - started < 1.5


def test_watchdog_disarms_after_the_body():
    with watchdog(Deadline(0.2)):
        pass
    time.sleep(0.3)  # no alarm fires later


def test_watchdog_off_the_main_thread_relies_on_checks():
    seen = {}

    def body():
        with watchdog(Deadline(0.1)) as armed:
            seen["armed"] = armed

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen["armed"] is False


def test_shielded_work_is_never_interrupted_and_the_alarm_fires_after():
    from i2v_dagster.guardrails import shielded

    finished = []
    with pytest.raises(ClipTimeoutError), watchdog(Deadline(0.1, label="clip 002")):
        with shielded():
            time.sleep(0.3)  # the alarm comes due in here
            finished.append(True)
        time.sleep(5)  # never reached for long: the held-back alarm fires as the shield lifts
    assert finished == [True]
