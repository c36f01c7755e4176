"""Runs whose process died (``kill -9``, a lost machine) must not block the instance.

A run killed mid-step stays STARTED in Dagster's storage and keeps the `gpu` pool slot its step claimed,
so every later GPU step of every video waits for a slot that is never freed. Each run records the host and
process that execute it (tags, set when its resources are set up); :func:`reap_dead_runs` marks a STARTED
run whose process is gone from this host as failed and frees its pool slots, with a log line saying so. It
runs at the start of every run (the in-process entry points: ``i2v run``, ``dagster job execute``,
``dg launch``, ``dagster asset materialize``) and every 30 s in the daemon (the ``dead_runs`` sensor);
``dagster.yaml`` also has run monitoring free the slots of runs that ended
(``free_slots_after_run_end_seconds``).
"""

from __future__ import annotations

import logging
import os
import socket

import dagster as dg

from i2v_dagster.fsutil import process_alive

HOST_TAG = "i2v/host"
PID_TAG = "i2v/pid"
LIVE_STATUSES = (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING)


def claim_run(instance: dg.DagsterInstance, run_id: str) -> None:
    """Tag the run with this host and the process that runs it: the one that logged its RUN_START (under the
    multiprocess executor each step's process is a short-lived child of it), else this one."""
    starts = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    pid = starts[0].event_log_entry.dagster_event.pid if starts else None
    instance.add_run_tags(run_id, {HOST_TAG: socket.gethostname(), PID_TAG: str(pid or os.getpid())})


def reap_dead_runs(
    instance: dg.DagsterInstance, log: logging.Logger, *, skip: str | None = None
) -> list[str]:
    """Fail every live-status run of this host whose process is gone, and free its pool slots."""
    host = socket.gethostname()
    reaped = []
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=list(LIVE_STATUSES)))
    for record in records:
        run = record.dagster_run
        pid = run.tags.get(PID_TAG, "")
        if (
            run.run_id == skip
            or run.tags.get(HOST_TAG) != host
            or not pid.isdigit()
            or process_alive(int(pid))
        ):
            continue
        message = (
            f"run {run.run_id} ({run.job_name}) was {run.status.value} but its process {pid} on {host} is "
            "gone (killed?): marked failed and its pool slots freed"
        )
        instance.report_run_failed(run, message)
        freed = instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        log.warning("%s (%s slots)", message, freed or 0)
        reaped.append(run.run_id)
    return reaped


@dg.sensor(
    name="dead_runs",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs whose process died as failed and frees their gpu pool slots (the daemon's "
    "run monitoring cannot see the health of runs it did not launch).",
)
def dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    reaped = reap_dead_runs(context.instance, context.log)
    return dg.SkipReason(f"failed {len(reaped)} dead runs: {', '.join(reaped)}" if reaped else "no dead runs")
