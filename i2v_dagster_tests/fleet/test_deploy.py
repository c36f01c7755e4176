"""Deployment files checked offline: Dagster's schemas, then the raw Kubernetes keys they accept silently
(fast: no services)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from i2v_dagster.deploy import check, dagster_errors, file_errors, load_tags, tag_errors
from i2v_dagster.errors import I2VError
from i2v_dagster_tests.fleet.harness import ROOT

pytest.importorskip("dagster_k8s", reason="the [fleet] extra is not installed")
pytest.importorskip("dagster_celery", reason="the [fleet] extra is not installed")

DEPLOY = ROOT / "deploy"


def test_every_deployment_file_validates():
    results = check([DEPLOY])
    names = {p.relative_to(DEPLOY).as_posix() for p in results}
    assert {
        "single-box/dagster.yaml",
        "queued/dagster.yaml",
        "fleet/dagster.yaml",
        "fleet/celery.yaml",
        "k8s/dagster.yaml",
        "k8s/run-tags.yaml",
        "k8s/parallel-run-config.yaml",
    } <= names
    assert {str(p): e for p, e in results.items() if e} == {}


def test_single_box_is_the_projects_own_instance():
    assert (DEPLOY / "single-box" / "dagster.yaml").read_text() == (ROOT / "dagster.yaml").read_text()


def test_the_instances_name_the_fleet_parts():
    def load(name: str) -> dict:
        return yaml.safe_load((DEPLOY / name / "dagster.yaml").read_text())

    for name in ("queued", "fleet", "k8s"):
        config = load(name)
        assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2", name
        assert config["run_coordinator"]["class"] == "QueuedRunCoordinator", name
        assert config["run_monitoring"]["enabled"] is True, name
        assert config["concurrency"]["pools"]["granularity"] == "op", name
    assert load("fleet")["run_launcher"]["class"] == "CeleryRunLauncher"
    assert load("k8s")["run_launcher"]["class"] == "K8sRunLauncher"
    limits = load("k8s")["run_launcher"]["config"]["run_k8s_config"]["container_config"]["resources"][
        "limits"
    ]
    assert limits["nvidia.com/gpu"] == "1"


def _k8s_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "k8s"
    shutil.copytree(DEPLOY / "k8s", folder)
    return folder


def test_a_key_written_twice_in_a_deployment_file_is_refused_naming_its_path(tmp_path, capsys):
    """YAML keeps the last of two equal keys silently: a second `run_launcher:` would replace the first."""
    from i2v_dagster.deploy import main

    folder = _k8s_copy(tmp_path)
    text = (folder / "run-tags.yaml").read_text()
    assert "\n  dagster-k8s/config:" in text
    (folder / "run-tags.yaml").write_text(
        text.replace("\n  dagster-k8s/config:", "\n  dagster-k8s/config: {}\n  dagster-k8s/config:", 1)
    )
    assert main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'run-tags.yaml'}: duplicate key " in err and ".dagster-k8s/config at line" in err
    with pytest.raises(I2VError, match="duplicate key"):
        load_tags(f"{folder / 'run-tags.yaml'}:gpu-24g")


def test_a_container_key_typo_passes_dagsters_schema_and_is_refused_naming_the_key(tmp_path):
    from dagster_k8s import K8sRunLauncher

    folder = _k8s_copy(tmp_path)
    path = folder / "dagster.yaml"
    config = yaml.safe_load(path.read_text())
    container = config["run_launcher"]["config"]["run_k8s_config"]["container_config"]
    container["resourcez"] = container.pop("resources")
    path.write_text(yaml.safe_dump(config))
    # Dagster's own schema takes raw Kubernetes config as a free-form mapping: no error there
    assert dagster_errors(K8sRunLauncher.config_type(), config["run_launcher"]["config"]) == []
    assert file_errors(path) == [
        f"{path}: run_launcher.config.run_k8s_config.container_config.resourcez: "
        "unknown key (not a field of Kubernetes V1Container)"
    ]


def test_per_step_typos_are_refused_naming_the_key(tmp_path):
    from dagster_k8s import k8s_job_executor

    folder = _k8s_copy(tmp_path)
    path = folder / "parallel-run-config.yaml"
    config = yaml.safe_load(path.read_text())
    steps = config["execution"]["config"]["per_step_k8s_config"]
    steps["make_scene"]["container_config"]["resourcez"] = steps["make_scene"]["container_config"].pop(
        "resources"
    )
    steps["keyframe"] = steps.pop("keyframes")  # an op name that does not exist: dagster-k8s ignores it
    path.write_text(yaml.safe_dump(config))
    assert dagster_errors(k8s_job_executor.config_schema.config_type, config["execution"]["config"]) == []
    errors = file_errors(path)
    assert len(errors) == 2, errors
    assert errors[0].endswith(
        "execution.config.per_step_k8s_config.make_scene.container_config.resourcez: "
        "unknown key (not a field of Kubernetes V1Container)"
    )
    assert (
        "execution.config.per_step_k8s_config.keyframe: no op 'keyframe' in render_video_parallel"
        in (errors[1])
    )


def test_dagsters_own_schema_errors_name_the_key(tmp_path):
    folder = _k8s_copy(tmp_path)
    path = folder / "dagster.yaml"
    text = path.read_text().replace("    job_namespace: i2v", "    job_namespaces: i2v")
    path.write_text(text)
    assert file_errors(path) == [f"{path}: run_launcher.config.job_namespaces: unknown key"]


def test_run_tags_load_as_json_and_typos_are_refused():
    tags = load_tags(f"{DEPLOY / 'k8s' / 'run-tags.yaml'}:gpu-80g")
    import json

    config = json.loads(tags["dagster-k8s/config"])
    assert config["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert tag_errors({"dagster-k8s/config": {"pod_spec_config": {"nodeSelectr": {}}}}, prefix="x") == [
        "x.dagster-k8s/config.pod_spec_config.nodeSelectr: unknown key (not a field of Kubernetes V1PodSpec)"
    ]
    assert tag_errors({"dagster-k8s/config": {"merge_behaviour": "SHALLOW"}}) == [
        "dagster-k8s/config.merge_behaviour: unknown key"
    ]
    with pytest.raises(I2VError, match="no tag set 'gpu-40g'"):
        load_tags(f"{DEPLOY / 'k8s' / 'run-tags.yaml'}:gpu-40g")


def test_the_validator_command_exits_nonzero_on_a_typo(tmp_path, capsys):
    from i2v_dagster.deploy import main

    folder = _k8s_copy(tmp_path)
    text = (folder / "run-tags.yaml").read_text().replace("node_selector", "nodeSelectr", 1)
    (folder / "run-tags.yaml").write_text(text)
    assert main([str(folder)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"{folder / 'run-tags.yaml'}: gpu-24g.dagster-k8s/config.pod_spec_config.nodeSelectr: "
        "unknown key (not a field of Kubernetes V1PodSpec)"
    ]
    assert main([str(DEPLOY)]) == 0


@pytest.mark.parametrize("name", ["queued", "fleet", "k8s"])
def test_the_queue_runs_one_run_per_video_at_a_time(tmp_path, name):
    """The deployment's own run-queue settings, read by Dagster and applied by Dagster's tag-limit counter
    (what the daemon dequeues by): a queued second run of a video waits; another video's run does not."""
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    config = yaml.safe_load((DEPLOY / name / "dagster.yaml").read_text())
    # only the queue's settings are read: local storage, no launcher, compute logs or settings naming
    # environment variables
    config = {
        "storage": {"sqlite": {"base_dir": str(tmp_path / "storage")}},
        "concurrency": config["concurrency"],
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits

    def run(video: str) -> DagsterRun:
        return DagsterRun(job_name="render_video", tags={"dagster/partition": video})

    counter = TagConcurrencyLimitsCounter(limits, [run("demo")])
    assert counter.is_blocked(run("demo"))
    assert not counter.is_blocked(run("lighthouse"))
