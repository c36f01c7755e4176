from __future__ import annotations

import dagster as dg

from i2v_dagster.definitions import defs


def test_definitions_load_and_jobs_resolve():
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("render_video")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert keys == {"script", "narration", "keyframes", "clips", "stitched_video", "bundle"}
    assert job.executor_def.name == "in_process"
    assert job.partitions_def.name == "videos"


def test_gpu_steps_declare_the_gpu_pool():
    ops = {a.key.to_user_string(): a.op for a in defs.assets}
    for name in ("narration", "keyframes", "clips", "clip"):
        assert ops[name].pool == "gpu", name
    assert ops["bundle"].pool is None


def test_launchpad_config_prefills_from_jobs_folder():
    from i2v_dagster.defs.jobs import launchpad_config

    assert launchpad_config("demo")["ops"]["script"]["config"]["name"] == "demo"
    stub = launchpad_config("brand-new")["ops"]["script"]["config"]
    assert stub == {"name": "brand-new", "scenes": []}


def test_a_job_file_with_a_key_written_twice_is_no_prefill(tmp_path, monkeypatch):
    """The jobs folder is read by the strict reader: YAML alone would take the last `name` and prefill
    another video's Launchpad with this file."""
    from i2v_dagster.defs import jobs

    good = "ops:\n  script:\n    config:\n      name: good\n      scenes: []\n"
    (tmp_path / "a.yaml").write_text("ops:\n  script:\n    config:\n      name: first\n      name: twice\n")
    (tmp_path / "b.yaml").write_text(good)
    monkeypatch.setattr(jobs, "JOBS_DIR", tmp_path)
    assert jobs.launchpad_config("good")["ops"]["script"]["config"]["name"] == "good"
    assert jobs.launchpad_config("twice") == {"ops": {"script": {"config": {"name": "twice", "scenes": []}}}}


def test_the_stub_cannot_be_launched_as_it_is():
    import pytest

    from i2v_dagster.defs.jobs import STUB_SCENES_NOTE, launchpad_config
    from i2v_dagster.errors import SpecError
    from i2v_dagster.specfile import parse_spec

    stub = launchpad_config("brand-new")["ops"]["script"]["config"]
    with pytest.raises(SpecError, match=STUB_SCENES_NOTE):
        parse_spec(stub)
