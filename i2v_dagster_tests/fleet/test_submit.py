"""`i2v submit`: what it checks before it touches the instance (fast; the services tests submit for real)."""

from __future__ import annotations

from i2v_dagster.cli import main
from i2v_dagster_tests.fleet.harness import write_spec
from i2v_dagster_tests.helpers import mock_spec


def test_submit_refuses_run_config_that_replaces_the_spec(tmp_path, capsys):
    spec = write_spec(tmp_path, mock_spec("sub", tmp_path))
    extra = tmp_path / "extra.yaml"
    extra.write_text("ops: {script: {config: {}}}\n")
    assert main(["submit", str(spec), "--config", str(extra)]) == 2
    assert "expected run config without `ops`" in capsys.readouterr().err


def test_submit_checks_tags_before_touching_the_instance(tmp_path, capsys):
    import os
    from pathlib import Path

    from i2v_dagster_tests.fleet.harness import ROOT

    spec = write_spec(tmp_path, mock_spec("sub", tmp_path))
    tags = f"{ROOT / 'deploy' / 'k8s' / 'run-tags.yaml'}:gpu-40g"
    assert main(["submit", str(spec), "--tags", tags]) == 2
    assert "no tag set 'gpu-40g' (sets: gpu-24g, gpu-80g, coordinator)" in capsys.readouterr().err
    assert list(Path(os.environ["DAGSTER_HOME"]).iterdir()) == []  # no instance made, no partition added
