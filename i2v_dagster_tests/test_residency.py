"""Model residency: lazy loads, one large model at a time, a VRAM budget, teardown."""

from __future__ import annotations

import dagster as dg
import pytest

from i2v_dagster.models.base import AdapterSettings
from i2v_dagster.resources.residency import ModelResidency


@pytest.fixture()
def residency():
    res = ModelResidency()
    with dg.build_init_resource_context() as ctx:
        res.setup_for_execution(ctx)
        yield res
        res.teardown_after_execution(ctx)


def test_nothing_loads_at_setup(residency):
    assert residency.resident == [] and residency.events == []


def test_one_large_model_at_a_time_in_order(residency):
    with residency.use("mock_speech") as speech:
        assert speech.is_loaded
    with residency.use("mock_image") as image:
        assert image.is_loaded and not speech.is_loaded
    with residency.use("mock_video") as video:
        assert video.is_loaded and not image.is_loaded
    seq = [(e["event"], e["model"].split("#")[0]) for e in residency.events]
    assert seq == [
        ("load", "mock_speech"),
        ("unload", "mock_speech"),
        ("load", "mock_image"),
        ("unload", "mock_image"),
        ("load", "mock_video"),
    ]
    assert all(e["seconds"] >= 0 for e in residency.events)
    assert residency.events[3]["reason"] == "to make room for mock_video"


def test_same_settings_reuse_the_loaded_model(residency):
    with residency.use("mock_video") as a:
        pass
    with residency.use("mock_video") as b:
        assert a is b
    with residency.use("mock_video", AdapterSettings(options={"steps": 2})) as c:
        assert c is not a and not a.is_loaded
    assert sum(e["event"] == "load" for e in residency.events) == 2


def test_small_models_stay_beside_a_large_one(residency):
    with residency.use("spec") as writer, residency.use("mock_video") as video:
        assert writer.is_loaded and video.is_loaded


def test_budget_allows_sharing_when_models_fit():
    res = ModelResidency(max_resident_large=1, vram_budget_gb=80.0)
    with dg.build_init_resource_context() as ctx:
        res.setup_for_execution(ctx)
        with res.use("mock_image") as image, res.use("mock_video") as video:
            assert image.is_loaded and video.is_loaded  # mock weights are 0 GB: both fit
        res.teardown_after_execution(ctx)
        assert not image.is_loaded and not video.is_loaded
        assert [e["reason"] for e in res.events if e["event"] == "unload"] == ["teardown", "teardown"]


def test_budget_evicts_when_models_do_not_fit(monkeypatch):
    from i2v_dagster.models.mock import MockImage, MockVideo

    monkeypatch.setattr(MockImage, "weights_gb", 34.0)
    monkeypatch.setattr(MockVideo, "weights_gb", 21.0)
    res = ModelResidency(vram_budget_gb=40.0)
    with dg.build_init_resource_context() as ctx:
        res.setup_for_execution(ctx)
        with res.use("mock_image") as image:
            pass
        with res.use("mock_video"):
            assert not image.is_loaded
        res.teardown_after_execution(ctx)


def test_unknown_adapter_is_a_clear_error(residency):
    from i2v_dagster.errors import AdapterError

    with pytest.raises(AdapterError, match="unknown adapter 'nope'"), residency.use("nope"):
        pass
