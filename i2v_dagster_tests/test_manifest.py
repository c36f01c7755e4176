"""Storage reads and the manifest, on a small real run (script -> clips of a one-scene mock video)."""

from __future__ import annotations

import hashlib

import dagster as dg
import pytest

from i2v_dagster.defs.manifest import build_manifest, scrub
from i2v_dagster.defs.storage import check_evaluations, latest_materialization
from i2v_dagster_tests.helpers import mock_spec, run_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from i2v_dagster.definitions import defs

    root = tmp_path_factory.mktemp("manifest")
    spec = mock_spec("man", root / "outputs", max_clip_frames=8)
    spec["scenes"] = spec["scenes"][:1]
    (root / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster")) as instance:
        instance.add_dynamic_partitions("videos", ["man"])
        result = dg.materialize(
            list(defs.assets),
            selection=["script", "narration", "keyframes", "clips"],
            instance=instance,
            resources=dict(defs.resources),
            partition_key="man",
            run_config=run_config(spec),
        )
        yield instance, result, root / "outputs" / "man"


def test_latest_materialization_by_asset_and_partition(run):
    instance, result, root = run
    record = latest_materialization(instance, "script", "man")
    assert record.run_id == result.run_id
    assert str(record.asset_materialization.metadata["video_dir"].value) == str(root)
    assert latest_materialization(instance, "script", "other") is None
    clip = latest_materialization(instance, dg.AssetKey("clip"), "000|man")
    assert clip.asset_materialization.metadata["clip"].value == "000"


def test_check_evaluations_of_a_run(run):
    instance, result, _ = run
    evaluations = check_evaluations(instance, result.run_id)
    assert evaluations and {e.check_name for e in evaluations} == {
        "shape",
        "broken_frames",
        "motion",
        "color_drift",
    }
    assert all(e.asset_key == dg.AssetKey("clip") for e in evaluations)


def test_manifest_exports_the_run_with_relative_files_and_no_secret(run, monkeypatch):
    instance, result, root = run
    secret = "hf_" + "S" * 30
    monkeypatch.setenv("HF_TOKEN", secret)
    files = {"spec.json": root / "spec.json", "clips/clip_000.mp4": root / "clips" / "clip_000.mp4"}
    manifest = build_manifest(instance, run_id=result.run_id, video="man", files=files, clip_count=1)
    assert manifest["run"]["run_id"] == result.run_id and manifest["video"] == "man"
    assert (
        manifest["files"]["spec.json"]["sha256"]
        == hashlib.sha256(files["spec.json"].read_bytes()).hexdigest()
    )
    assert {m["asset"] for m in manifest["materializations"]} >= {"script", "narration", "clips", "clip"}
    assert all("video_dir" not in m["metadata"] for m in manifest["materializations"])
    clips = {m["partition"] for m in manifest["materializations"] if m["asset"] == "clip"}
    assert clips == {"000|man"}  # clip_count=1: the manifest lists the clips it is told of
    assert len(manifest["checks"]) == 4 * len(list((root / "clips").glob("clip_*.mp4")))
    assert secret not in repr(manifest)
    assert scrub({"a": [f"token {secret}"]}, [secret]) == {"a": ["token ***"]}
