"""The pipeline tests again, on Postgres: the storage of deploy/queued/dagster.yaml (dagster-postgres, the
``postgresql+psycopg2`` scheme), a fresh database per test on the loopback server of ``scripts/services``.

The tests are test_pipeline's own functions, collected here with this module's ``instance`` fixture, plus
the parallel-scenes job and the manifest's records read back from Postgres.
"""

from __future__ import annotations

import json
import uuid
import zipfile

import dagster as dg
import pytest

from i2v_dagster_tests import test_pipeline as pipeline
from i2v_dagster_tests.fleet.harness import postgres_storage

pytestmark = [pytest.mark.slow, pytest.mark.services]


@pytest.fixture()
def instance(services):
    env = services.new_database(f"pipeline_{uuid.uuid4().hex[:12]}")
    overrides = {"storage": postgres_storage(env), "concurrency": {"pools": {"default_limit": 2}}}
    with dg.instance_for_test(overrides=overrides) as inst:
        assert type(inst.run_storage).__name__ == "PostgresRunStorage"
        yield inst


for _name, _test in vars(pipeline).items():  # every pipeline test, with the Postgres `instance` above
    if _name.startswith("test_") and callable(_test):
        globals()[_name] = _test


def test_parallel_scenes_and_manifest_on_postgres(instance, tmp_path):
    from i2v_dagster.definitions import render_video_parallel_job
    from i2v_dagster_tests.helpers import mock_spec, run_config

    spec = mock_spec("pgpar", tmp_path, chain_mode="keyframe")
    result = dg.execute_job(
        dg.reconstructable(render_video_parallel_job),
        instance=instance,
        run_config=run_config(spec),
        tags={"dagster/partition": "pgpar"},
        raise_on_error=False,
    )
    assert result.success
    bundle = next((tmp_path / "pgpar" / "bundles").glob("*.zip"))
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["run"]["job"] == "render_video_parallel"
    assets = {m["asset"] for m in manifest["materializations"]}
    assert {"script", "narration", "keyframes", "clips", "stitched_video", "clip"} <= assets
    checks = {(c["asset"], c["check"]) for c in manifest["checks"]}
    assert {("clip", "motion"), ("clips", "seam_continuity"), ("stitched_video", "sync")} <= checks
