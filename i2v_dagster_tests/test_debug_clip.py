"""Debugging one clip: another seed for it changes that clip and the stitch only; the same again is
"unchanged"; clearing it goes back to the plan; a clip beyond the plan cannot be launched."""

from __future__ import annotations

import json
import time

import dagster as dg
import numpy as np
import pytest

from i2v_dagster.media.video import read_frames
from i2v_dagster_tests.helpers import materialize_clip, mock_spec, render

pytestmark = pytest.mark.slow


def mtimes(folder):
    return {
        p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("clip_*")) if p.suffix in (".mp4", ".json")
    }


def stitch(instance, video):
    from i2v_dagster.definitions import defs

    return dg.materialize(
        list(defs.assets),
        selection=["stitched_video"],
        instance=instance,
        resources=dict(defs.resources),
        partition_key=video,
    )


def test_a_new_seed_for_one_clip_changes_that_clip_and_the_stitch_only(tmp_path):
    with dg.instance_for_test() as instance:
        assert render(instance, mock_spec("dbg", tmp_path)).success
        clips = tmp_path / "dbg" / "clips"
        final = tmp_path / "dbg" / "final" / "dbg.mp4"
        before, final_before = mtimes(clips), final.read_bytes()
        first = json.loads((clips / "clip_001.json").read_text())

        made = materialize_clip(instance, "dbg", 1, seed=42)
        assert made.success
        mat = made.asset_materializations_for_node("clip")[0]
        assert mat.metadata["status"].value == "made" and mat.metadata["seed"].value == 42
        assert mat.metadata["override"].value == {"seed": 42}
        planned = len(json.loads((tmp_path / "dbg" / "timeline.json").read_text())["clips"])
        lines = [r.user_message for r in instance.all_logs(made.run_id) if r.user_message]
        assert any(line.startswith(f"clip 2 of {planned} (001): step 1 of ") for line in lines), lines
        after = mtimes(clips)
        changed = [n for n in after if after[n] != before.get(n)]
        assert changed == ["clip_001.json", "clip_001.mp4", "clip_001.override.json"]
        assert json.loads((clips / "clip_001.override.json").read_text()) == {"seed": 42}

        assert stitch(instance, "dbg").success
        assert final.read_bytes() != final_before
        start = json.loads((tmp_path / "dbg" / "timeline.json").read_text())["clips"][1]["start_frame"]
        clip1 = read_frames(clips / "clip_001.mp4")
        assert np.array_equal(read_frames(final)[start : start + len(clip1)], clip1)

        again = materialize_clip(instance, "dbg", 1, seed=42)
        mat = again.asset_materializations_for_node("clip")[0]
        assert mat.metadata["status"].value == "unchanged"
        assert (
            mat.metadata["content_key"].value
            == json.loads((clips / "clip_001.json").read_text())["content_key"]
        )
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("clip"), asset_partitions=["001|dbg"]), limit=1
        ).records[0]
        assert latest.asset_materialization.tags["dagster/data_version"] == mat.metadata["content_key"].value

        cleared = materialize_clip(instance, "dbg", 1, clear=True)
        assert cleared.success and not (clips / "clip_001.override.json").exists()
        record = json.loads((clips / "clip_001.json").read_text())
        assert record["seed"] == first["seed"] and record["content_key"] == first["content_key"]


def test_a_clip_beyond_the_plan_cannot_be_launched(tmp_path):
    with dg.instance_for_test() as instance:
        spec = mock_spec("short", tmp_path)
        spec["scenes"] = spec["scenes"][:1]
        assert render(instance, spec).success
        planned = len(json.loads((tmp_path / "short" / "timeline.json").read_text())["clips"])
        assert planned < 6
        keys = instance.get_dynamic_partitions("video_clips")
        assert keys == [f"{i:03d}|short" for i in range(planned)]  # the picker offers these, no others
        started = time.monotonic()
        with pytest.raises(dg.DagsterUnknownPartitionError, match="006|short"):
            materialize_clip(instance, "short", 6)
        assert time.monotonic() - started < 2.0


def test_the_command_line_refuses_a_clip_beyond_the_plan_in_one_line(tmp_path):
    """`dagster asset materialize --partition 006|short` (Dagster raises its subset error there)."""
    import os
    import subprocess
    import sys

    from i2v_dagster_tests.helpers import REPO_ROOT, project_home

    home = project_home(tmp_path / "home")
    spec = mock_spec("short", tmp_path / "out")
    spec["scenes"] = spec["scenes"][:1]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert render(instance, spec).success
        assert "006|short" not in instance.get_dynamic_partitions("video_clips")
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "i2v_dagster.definitions",
         "--select", "clip", "--partition", "006|short"],
        cwd=REPO_ROOT, env={**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode != 0
    assert (
        "error: no clip partition '006|short': a video's clip partitions are the clips of its plan"
        in out.stderr
    )
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
