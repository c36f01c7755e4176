"""Test support: mock specs and running render_video / single clips on a real (temporary) instance."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg

from i2v_dagster.definitions import render_video_job

SCENES = [
    {
        "narration": "A paper boat sets out.",
        "visual_prompt": "a paper boat on a river",
        "motion_prompt": "push in",
    },
    {
        "narration": "It drifts past reeds.",
        "visual_prompt": "a paper boat among reeds",
        "motion_prompt": "pan right",
    },
    {
        "narration": "It reaches the sea.",
        "visual_prompt": "a paper boat on the sea",
        "motion_prompt": "pull back",
    },
]


def mock_spec(name: str, outputs: Path, **overrides: Any) -> dict[str, Any]:
    """A small, fast 3-scene mock spec (160x96 at 12 fps)."""
    spec: dict[str, Any] = {
        "name": name,
        "subject": "a paper boat",
        "seed": 7,
        "fps": 12,
        "width": 160,
        "height": 96,
        "max_clip_frames": 12,
        "outputs_root": str(outputs),
        "scenes": copy.deepcopy(SCENES),
    }
    for key, value in overrides.items():
        spec[key] = value
    return spec


def run_config(spec: dict[str, Any]) -> dict[str, Any]:
    return {"ops": {"script": {"config": spec}}}


def render(instance: dg.DagsterInstance, spec: dict[str, Any], job: Any = None) -> dg.ExecutionResult:
    """Run ``job`` (``render_video`` by default) for ``spec`` as ``dagster job execute`` does."""
    return dg.execute_job(
        dg.reconstructable(job if job is not None else render_video_job),
        instance=instance,
        run_config=run_config(spec),
        tags={"dagster/partition": spec["name"]},
        raise_on_error=False,
    )


def materialize_clip(
    instance: dg.DagsterInstance, video: str, index: int, **config: Any
) -> dg.ExecuteInProcessResult:
    """What `dagster asset materialize --select clip --partition "001|demo"` does (``config``: the clip's
    seed / motion_prompt / clear)."""
    from i2v_dagster.definitions import defs

    return dg.materialize(
        list(defs.assets),
        selection=["clip"],
        instance=instance,
        resources=dict(defs.resources),
        partition_key=f"{index:03d}|{video}",
        run_config={"ops": {"clip": {"config": config}}} if config else None,
        raise_on_error=False,
    )


def step_failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    return "\n".join(r.event_log_entry.dagster_event.event_specific_data.error.to_string() for r in records)


REPO_ROOT = Path(__file__).resolve().parents[1]


def project_home(folder: Path) -> Path:
    """A DAGSTER_HOME in ``folder`` with this project's dagster.yaml (the `gpu` pool at 1), its storage
    created (processes started at once would race to create it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(folder)) as instance:  # its databases made once, not raced
        instance.get_run_records(limit=1)
    return folder


def spawn_i2v(home: Path, *args: str) -> subprocess.Popen:
    """``python -m i2v_dagster.cli ARGS`` in its own process against the instance in ``home``."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "i2v_dagster.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
