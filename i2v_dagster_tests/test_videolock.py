"""The video lock across processes: the processes of the run that holds it may join, another run is refused
naming the holder for as long as any of them holds it, and it is free once they have all let go (or died)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from i2v_dagster import videolock
from i2v_dagster.errors import VideoBusyError

ROOT = Path(__file__).resolve().parents[1]

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from i2v_dagster import videolock
    from i2v_dagster.errors import VideoBusyError
    try:
        videolock.acquire(Path(sys.argv[1]), video="demo", run_id=sys.argv[2])
    except VideoBusyError as exc:
        print("refused:", exc, flush=True)
        sys.exit(3)
    print("held", flush=True)
    sys.stdin.readline()  # hold until told to let go
    videolock.release(Path(sys.argv[1]), run_id=sys.argv[2])
    """
)


class Process:
    """Another process that takes the lock for a run and holds it until :meth:`let_go`."""

    def __init__(self, folder: Path, run_id: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(folder), run_id],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.first_line = self.proc.stdout.readline().strip()

    def let_go(self) -> int:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return self.proc.wait(timeout=30)


@pytest.fixture()
def folder(tmp_path) -> Path:
    return tmp_path / "demo"


def test_processes_of_the_holding_run_join_and_another_run_waits_for_all_of_them(folder):
    first = Process(folder, "run-a")
    second = Process(folder, "run-a")  # another step process of the same run, at the same time
    assert (first.first_line, second.first_line) == ("held", "held")
    with pytest.raises(VideoBusyError, match=r"video 'demo' is being written by run run-a \(process \d+"):
        videolock.acquire(folder, video="demo", run_id="run-b")
    assert first.let_go() == 0
    with pytest.raises(VideoBusyError, match="run run-a"):  # the second process still holds it
        videolock.acquire(folder, video="demo", run_id="run-b")
    assert second.let_go() == 0
    videolock.acquire(folder, video="demo", run_id="run-b")
    try:
        late = Process(folder, "run-a")
        assert late.first_line.startswith("refused: video 'demo' is being written by run run-b")
        assert late.proc.wait(timeout=30) == 3
    finally:
        videolock.release(folder, run_id="run-b")


def test_a_killed_holder_leaves_the_video_free(folder):
    holder = Process(folder, "run-a")
    assert holder.first_line == "held"
    holder.proc.kill()
    holder.proc.wait(timeout=30)
    videolock.acquire(folder, video="demo", run_id="run-b")
    videolock.release(folder, run_id="run-b")


def test_one_process_takes_it_once_per_run_and_lets_go_at_the_last_release(folder):
    videolock.acquire(folder, video="demo", run_id="run-a")
    videolock.acquire(folder, video="demo", run_id="run-a")  # resources set up twice in one process
    videolock.release(folder, run_id="run-a")
    assert Process(folder, "run-b").first_line.startswith("refused:")
    videolock.release(folder, run_id="run-a")
    other = Process(folder, "run-b")
    assert other.first_line == "held"
    assert other.let_go() == 0
