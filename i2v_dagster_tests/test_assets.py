"""Each asset body called directly with ``build_asset_context`` on a tiny mock video (fast: no job run).

The bodies run in their real order on one instance, so each reads what the one before it stored; every
test checks what its asset wrote and recorded.
"""

from __future__ import annotations

import json
import zipfile

import dagster as dg
import numpy as np
import pytest

from i2v_dagster.defs.bundle import bundle
from i2v_dagster.defs.clips import ClipConfig, clip, clips
from i2v_dagster.defs.outputs import OutputsResource
from i2v_dagster.defs.partitions import VIDEOS
from i2v_dagster.defs.residency import ModelResidency
from i2v_dagster.defs.stitch import stitched_video
from i2v_dagster.defs.story import keyframes, narration, script
from i2v_dagster.media.video import probe
from i2v_dagster_tests.helpers import mock_spec

VIDEO = "tiny"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An instance with the video's partition, the resources, and the spec (2 scenes, 160x96, 12 fps)."""
    root = tmp_path_factory.mktemp("assets")
    spec = mock_spec(VIDEO, root / "outputs", max_clip_frames=8)
    spec["scenes"] = spec["scenes"][:2]
    (root / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster")) as instance:
        instance.add_dynamic_partitions(VIDEOS.name, [VIDEO])
        residency = ModelResidency()
        residency.setup_for_execution(dg.build_init_resource_context())
        yield {
            "instance": instance,
            "spec": spec,
            "root": root / "outputs" / VIDEO,
            "outputs": OutputsResource(root=str(root / "outputs")),
            "residency": residency,
        }


def _v(value):
    """A metadata entry's plain value (bodies return MetadataValues and plain values side by side)."""
    return getattr(value, "value", value)


def _context(world, **kwargs):
    return dg.build_asset_context(partition_key=VIDEO, instance=world["instance"], **kwargs)


def _record(world, asset, result):
    """Store a direct call's materialization, as a run would, so the next body finds it."""
    world["instance"].report_runless_asset_event(
        dg.AssetMaterialization(asset_key=asset.key, partition=VIDEO, metadata=result.metadata)
    )


def test_1_script_validates_and_stores_the_spec(world):
    ctx = _context(world, asset_config=world["spec"])
    result = script(ctx, outputs=world["outputs"], residency=world["residency"])
    _record(world, script, result)
    stored = json.loads((world["root"] / "spec.json").read_text())
    assert stored["name"] == VIDEO and stored["fps"] == 12
    assert result.metadata["scenes"] == 2 and str(_v(result.metadata["video_dir"])) == str(world["root"])


def test_1b_a_bad_spec_is_refused_as_its_config_is_resolved(world):
    bad = {**world["spec"], "fps": 1000}
    with pytest.raises(dg.DagsterInvalidConfigError) as info:
        script(_context(world, asset_config=bad), outputs=world["outputs"], residency=world["residency"])
    assert "fps: Input should be less than or equal to 120 (got 1000)" in str(info.value)


def test_2_narration_plans_frames_from_the_audio(world):
    result = narration(_context(world), outputs=world["outputs"], residency=world["residency"])
    _record(world, narration, result)
    timeline = json.loads((world["root"] / "timeline.json").read_text())
    durations = _v(result.metadata["scene_durations_s"])
    assert [s["frames"] for s in timeline["scenes"]] == [int(np.ceil(round(d * 12, 6))) for d in durations]
    assert len(_v(result.metadata["narration_sha256"])) == 64


def test_3_keyframes_one_per_scene(world):
    result = keyframes(_context(world), outputs=world["outputs"], residency=world["residency"])
    assert len(_v(result.metadata["keyframes"])) == 2
    assert (world["root"] / "keyframes" / "keyframe_001.png").is_file()


def test_4_clips_make_the_chain_and_log_each_clip(world):
    # Direct invocation cannot log the per-clip check evaluations (Dagster accepts only materializations
    # and observations there), so this one body runs through `materialize`, on the same instance.
    from i2v_dagster.definitions import defs

    run = dg.materialize(
        list(defs.assets),
        selection=["clips"],
        instance=world["instance"],
        resources={"outputs": world["outputs"], "residency": world["residency"]},
        partition_key=VIDEO,
    )
    mats = run.asset_materializations_for_node("clips")
    result = next(m for m in mats if m.asset_key == clips.key)
    assert sorted(m.partition for m in mats if m.asset_key == clip.key)[:2] == ["000|tiny", "001|tiny"]
    files = _v(result.metadata["clips"])
    timeline = json.loads((world["root"] / "timeline.json").read_text())
    assert len(files) == len(timeline["clips"]) >= 3
    for plan in timeline["clips"]:
        info = probe(world["root"] / files[plan["index"]])
        assert info.video.frames == plan["frames"]
    per_clip = {(e.partition, e.check_name) for e in run.get_asset_check_evaluations()}
    assert len(per_clip) == 4 * len(files)
    assert world["residency"].resident == []  # the video model left with its step


def test_5_clip_remakes_one_clip_with_its_checks(world):
    ctx = dg.build_asset_context(partition_key=f"001|{VIDEO}", instance=world["instance"])
    before = (world["root"] / "clips" / "clip_001.json").read_text()
    result = clip(ctx, config=ClipConfig(), outputs=world["outputs"], residency=world["residency"])
    assert {c.check_name for c in result.check_results} == {"shape", "broken_frames", "motion", "color_drift"}
    assert all(c.passed for c in result.check_results)
    assert json.loads(before)["content_key"] == _v(result.metadata["content_key"])  # same inputs


def test_6_stitched_video_checks_and_pictures(world):
    result = stitched_video(_context(world), outputs=world["outputs"])
    _record(world, stitched_video, result)
    assert {c.check_name: c.passed for c in result.check_results} == {"sync": True, "shape": True}
    assert _v(result.metadata["contact_sheet"]).startswith("![contact sheet](data:image/png;base64,")
    final = probe(world["root"] / "final" / f"{VIDEO}.mp4")
    assert final.video.frames == _v(result.metadata["frames"]) and final.audio is not None


def test_7_bundle_holds_the_files_and_the_manifest(world):
    ctx = _context(world)
    result = bundle(ctx, outputs=world["outputs"])
    path = world["root"] / _v(result.metadata["bundle"])
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
    assert {"final/tiny.mp4", "spec.json", "verify/report.html", "clips/clip_000.mp4"} <= names
    assert set(manifest["files"]) == names - {"manifest.json"}
    assert manifest["video"] == VIDEO
