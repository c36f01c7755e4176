"""A `gpu` pool slot stands for the GPU's memory: with the pool at 1, three runs started at once never hold
more than one large model loaded at a time, across processes (each step unloads its models as it ends)."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from i2v_dagster_tests.helpers import mock_spec, project_home, spawn_i2v

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def model_intervals(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, float, str]]:
    """(loaded at, unloaded at, model) for every model a run loaded, from its own log lines."""
    opened: dict[str, float] = {}
    spans = []
    for record in instance.get_records_for_run(run_id).records:
        entry = record.event_log_entry
        message = entry.user_message or ""
        if "residency: loading model " in message:
            model = message.split("residency: loading model ")[1].split()[0]
            opened[model] = entry.timestamp
        elif "residency: unloaded model " in message:
            model = message.split("residency: unloaded model ")[1].split()[0]
            spans.append((opened.pop(model), entry.timestamp, f"{run_id[:8]}:{model}"))
    assert not opened, f"models never unloaded: {opened}"
    return spans


def most_at_once(spans: list[tuple[float, float, str]]) -> int:
    edges = sorted([(start, 1) for start, _, _ in spans] + [(end, -1) for _, end, _ in spans])
    live = peak = 0
    for _, step in edges:
        live += step
        peak = max(peak, live)
    return peak


def test_three_runs_at_once_hold_one_large_model_at_a_time(tmp_path):
    home = project_home(tmp_path / "home")  # the gpu pool at 1
    procs = []
    for name in ("pool-a", "pool-b", "pool-c"):
        spec = mock_spec(name, tmp_path / "out")
        slow = {"steps": 4, "seconds_per_step": 0.2}
        spec["models"] = {"video": {"adapter": "mock_video", "options": slow}}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"ops": {"script": {"config": spec}}}))
        procs.append(spawn_i2v(home, "run", str(path), "--progress", "off"))
        time.sleep(0.3)
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance:
            records = instance.get_run_records()
            assert len(records) == 3
            spans = [s for r in records for s in model_intervals(instance, r.dagster_run.run_id)]
            runs = [(r.start_time, r.end_time) for r in records]
    large = [s for s in spans if not s[2].split(":")[1].startswith("spec#")]
    assert {s[2].split(":")[1].split("#")[0] for s in large} == {"mock_speech", "mock_image", "mock_video"}
    assert len(large) == 9  # three models in each of three runs
    overlap = most_at_once([(start, end, "run") for start, end in runs])
    print(f"{len(large)} large-model loads in {len(runs)} runs; runs at once: {overlap}; "
          f"large models loaded at once, across the processes: {most_at_once(large)}")  # fmt: skip
    assert most_at_once(large) == 1, sorted(large)
    assert overlap == 3  # the runs did overlap


def test_overlap_counter():
    assert most_at_once([(0, 2, "a"), (1, 3, "b"), (4, 5, "c")]) == 2
    assert most_at_once([(0, 1, "a"), (1, 2, "b")]) == 1
