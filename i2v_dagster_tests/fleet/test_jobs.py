"""The parallel-scenes job's shape, its executors and GPU device claims (fast: no
services, no rendering)."""

from __future__ import annotations

import contextlib
import logging
import os

import dagster as dg
import pytest

from i2v_dagster.errors import I2VError
from i2v_dagster_tests.fleet.harness import GPU_OPS


def test_parallel_job_makes_the_same_clips_asset_with_one_step_per_scene():
    from i2v_dagster.definitions import defs

    job = defs.resolve_job_def("render_video_parallel")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert keys == {"script", "narration", "keyframes", "clips", "stitched_video", "bundle"}
    assert job.executor_def.name == "multiprocess"
    assert job.partitions_def.name == "videos"
    ops = {op.name: op for op in job.graph.iterate_op_defs()}
    assert {"plan_scenes", "make_scene", "collect_clips", "clips_checks", "stitched_checks"} <= set(ops)
    assert {name for name, op in ops.items() if op.pool == "gpu"} == GPU_OPS - {"clips"}
    # the code location's `clips` (UI, render_video) stays the sequential step
    assert defs.resolve_job_def("render_video").executor_def.name == "in_process"
    assert {a.key.to_user_string(): a.op.name for a in defs.assets if a.is_executable}["clips"] == "clips"
    sequential = {a.key.to_user_string(): a for a in defs.assets}
    assert {n for n in ("narration", "keyframes", "clips", "clip") if sequential[n].op.pool == "gpu"} == {
        "narration",
        "keyframes",
        "clips",
        "clip",
    }


def test_scene_groups_by_chain_mode():
    from i2v_dagster.defs.parallel import scene_groups
    from i2v_dagster.planning import plan_timeline

    def plans(mode):
        return plan_timeline(
            [1.0, 2.5, 1.0], fps=12, max_clip_frames=12, clip_seed=lambda i: i, chain_mode=mode
        )

    assert scene_groups("keyframe", plans("keyframe").clips) == {
        "scene_000": [0],
        "scene_001": [1, 2, 3],
        "scene_002": [4],
    }
    chain = plans("last_frame").clips  # each clip continues the one before it: one group, in order
    assert scene_groups("last_frame", chain) == {"chain": [p.index for p in chain]} and len(chain) > 3


def test_executor_choice_is_checked(monkeypatch):
    pytest.importorskip("dagster_k8s", reason="the [fleet] extra is not installed")
    from i2v_dagster.defs.parallel import parallel_executor

    assert parallel_executor("k8s").name == "k8s"
    assert parallel_executor(None).name == "multiprocess"
    with pytest.raises(I2VError, match="I2V_PARALLEL_EXECUTOR: 'celery' is not one of multiprocess, k8s"):
        parallel_executor("celery")


def test_gpu_claims_give_each_step_its_own_device(monkeypatch, tmp_path):
    from i2v_dagster.defs.parallel import claim_gpu

    monkeypatch.setenv("I2V_GPU_DEVICES", "0,1")
    monkeypatch.setenv("I2V_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    log = logging.getLogger("test")
    with contextlib.ExitStack() as first, contextlib.ExitStack() as second:
        assert claim_gpu(first, log) == "0"
        assert claim_gpu(second, log) == "1"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
        with contextlib.ExitStack() as third, pytest.raises(dg.Failure, match="every device is held"):
            claim_gpu(third, log)
    with contextlib.ExitStack() as again:  # released when the steps ended
        assert claim_gpu(again, log) == "0"
    monkeypatch.delenv("I2V_GPU_DEVICES")
    with contextlib.ExitStack() as none:
        assert claim_gpu(none, log) is None
