"""The fleet's real services on loopback, for the services tests and benchmarks/bench_fleet.py.

- :class:`Services`: Postgres and Redis started by ``scripts/services`` (free 127.0.0.1 ports), stopped by
  the process ids it recorded;
- :func:`dagster_home`: a DAGSTER_HOME holding one of ``deploy/``'s instance files, on a fresh database;
- :class:`Processes`: the Dagster daemon and Celery workers this harness starts, each in its own session,
  stopped by that session's id (only what was started here);
- :func:`submit`: ``i2v submit`` as a user runs it;
- :func:`step_intervals` / :func:`max_overlap`: from the event log, how many steps ran at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services"
BIN = Path(sys.executable).parent
GPU_OPS = frozenset({"narration", "keyframes", "clips", "make_scene"})
"""Ops in the `gpu` pool (test_fleet_deploy checks this against the definitions)."""


def services_missing() -> str | None:
    """Why the services cannot start here (None when they can)."""
    pg = list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or shutil.which("initdb")
    if not pg:
        return "PostgreSQL server not installed (scripts/services install)"
    if not shutil.which("redis-server"):
        return "redis-server not installed (scripts/services install)"
    for module in ("dagster_postgres", "dagster_celery", "psycopg2", "redis"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} not installed (pip install -c constraints.txt -e '.[fleet]')"
    return None


class Services:
    """Postgres + Redis on loopback; ``env`` holds what ``DIR/env`` exports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env: dict[str, str] = {}

    def __enter__(self) -> Services:
        subprocess.run(["bash", str(SERVICES), "start", str(self.folder)], check=True, capture_output=True)
        for line in (self.folder / "env").read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            self.env[key] = value
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["bash", str(SERVICES), "stop", str(self.folder)], check=False, capture_output=True)

    def new_database(self, name: str) -> dict[str, str]:
        """A fresh database; the environment that points deploy/'s instance files at it."""
        import psycopg2

        conn = psycopg2.connect(self.env["I2V_POSTGRES_URL"].replace("postgresql+psycopg2", "postgresql"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        url = re.sub(r"/[^/]+$", f"/{name}", self.env["I2V_POSTGRES_URL"])
        return {**self.env, "I2V_PG_DB": name, "I2V_POSTGRES_URL": url}


def postgres_storage(env: Mapping[str, str]) -> dict[str, Any]:
    """The `storage` section of deploy/queued/dagster.yaml, resolved (for ``dg.instance_for_test``)."""
    config = yaml.safe_load((ROOT / "deploy" / "queued" / "dagster.yaml").read_text())
    db = dict(config["storage"]["postgres"]["postgres_db"])
    for key, value in db.items():
        if isinstance(value, dict) and "env" in value:
            db[key] = int(env[value["env"]]) if key == "port" else env[value["env"]]
    return {"postgres": {"postgres_db": db}}


def dagster_home(folder: Path, deployment: str) -> Path:
    """A DAGSTER_HOME with ``deploy/<deployment>/dagster.yaml`` as its instance."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "deploy" / deployment / "dagster.yaml", folder / "dagster.yaml")
    return folder


def run_env(home: Path, env: Mapping[str, str], **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **env,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        # dagster-celery starts `celery` by name: the virtual environment's bin first, as once activated
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    }


def dagster_cli(env: Mapping[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "dagster"), *args], cwd=ROOT, env=dict(env), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"dagster {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class Started:
    name: str
    process: subprocess.Popen
    log: Path


class Processes:
    """Long-running processes started here, each the leader of its own session (so a daemon's code server
    and run workers, or a Celery worker's pool, stop with it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Started] = []

    def start(self, name: str, command: list[str], env: Mapping[str, str]) -> Started:
        log = self.folder / f"{name}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                command, cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        started = Started(name, process, log)
        self.started.append(started)
        return started

    def daemon(self, env: Mapping[str, str]) -> Started:
        return self.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env)

    def celery_worker(
        self,
        name: str,
        devices: str,
        env: Mapping[str, str],
        queues: Iterable[str],
        *,
        host_worker: bool = False,
    ) -> Started:
        """``dagster-celery worker start`` as deploy/README.md starts one: a GPU worker (prefork, concurrency
        1, one device), or with ``host_worker`` a worker that runs render_video_parallel on every device
        it is given (``--pool solo``: the run's step processes are its children; I2V_GPU_DEVICES set)."""
        command = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"]
        command += ["-y", str(ROOT / "deploy" / "fleet" / "celery.yaml"), "-n", name]
        for queue in queues:
            command += ["-q", queue]
        command += ["--", "--pool", "solo"] if host_worker else ["--", "--concurrency", "1"]
        extra = {"CUDA_VISIBLE_DEVICES": devices}
        if host_worker:
            extra |= {"I2V_GPU_DEVICES": devices, "I2V_GPU_LOCK_DIR": str(self.folder)}
        return self.start(name, command, {**env, **extra})

    def session_of(self, pid: int) -> Started | None:
        """Which started process a (descendant) process belongs to."""
        try:
            sid = os.getsid(pid)
        except ProcessLookupError:
            return None
        return next((s for s in self.started if s.process.pid == sid), None)

    def stop(self) -> None:
        for started in reversed(self.started):
            if started.process.poll() is None:
                os.killpg(started.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for started in reversed(self.started):
            try:
                started.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(started.process.pid, signal.SIGKILL)
                started.process.wait()
            with contextlib.suppress(ProcessLookupError):  # anything left in the session (a pool child)
                os.killpg(started.process.pid, signal.SIGKILL)
        self.started.clear()

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.log.read_text()[-3000:]}" for s in self.started)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_spec(folder: Path, spec: Mapping[str, Any]) -> Path:
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump({"ops": {"script": {"config": dict(spec)}}}))
    return path


def submit(env: Mapping[str, str], spec_file: Path, *args: str) -> str:
    """``i2v submit SPEC [args]``; the run id it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "i2v_dagster.cli", "submit", str(spec_file), *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"submitted run ([0-9a-f-]{36})", done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"i2v submit failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return match[1]


def wait_for_runs(instance, run_ids: list[str], *, timeout_s: float, processes: Processes | None = None):
    """The runs' records once every run has ended (fails naming the runs still going)."""
    import dagster as dg

    ended = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout_s
    while True:
        records = instance.get_run_records(filters=dg.RunsFilter(run_ids=run_ids))
        if len(records) == len(run_ids) and all(r.dagster_run.status in ended for r in records):
            return {r.dagster_run.run_id: r for r in records}
        if time.monotonic() > deadline:
            going = {r.dagster_run.run_id[:8]: r.dagster_run.status.value for r in records}
            logs = processes.logs() if processes else ""
            raise AssertionError(f"runs not done after {timeout_s:.0f} s: {going}\n{logs}")
        time.sleep(0.5)


@dataclass(frozen=True)
class Interval:
    run_id: str
    step: str
    op: str
    start: float
    end: float
    pid: int | None


def op_of(step_key: str) -> str:
    """``scene_clips.make_scene[scene_001]`` -> ``make_scene``."""
    return step_key.split("[", 1)[0].rsplit(".", 1)[-1]


def step_intervals(instance, run_ids: Iterable[str]) -> list[Interval]:
    """Every step of the runs, from its STEP_START to its STEP_SUCCESS or STEP_FAILURE event."""
    import dagster as dg

    kinds = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    out = []
    for run_id in run_ids:
        starts: dict[str, tuple[float, int | None]] = {}
        for record in instance.get_records_for_run(run_id, of_type=kinds).records:
            entry = record.event_log_entry
            event = entry.dagster_event
            if event.event_type == dg.DagsterEventType.STEP_START:
                starts[entry.step_key] = (entry.timestamp, event.pid)
            else:
                start, pid = starts.pop(entry.step_key)
                out.append(
                    Interval(run_id, entry.step_key, op_of(entry.step_key), start, entry.timestamp, pid)
                )
    return out


def max_overlap(intervals: Iterable[Interval]) -> int:
    """The most intervals open at one moment (one ending as another starts do not overlap)."""
    points = sorted([(i.start, 1) for i in intervals] + [(i.end, -1) for i in intervals])
    most = now = 0
    for _, delta in points:
        now += delta
        most = max(most, now)
    return most


def overlap_excerpt(intervals: list[Interval], t0: float | None = None) -> list[str]:
    """Lines ``+12.34 -> +15.67  run 1a2b3c4d  clips`` sorted by start (for failure messages and notes)."""
    t0 = min(i.start for i in intervals) if t0 is None else t0
    return [
        f"{i.start - t0:+8.2f} -> {i.end - t0:+8.2f}  run {i.run_id[:8]}  {i.step}"
        for i in sorted(intervals, key=lambda i: i.start)
    ]
