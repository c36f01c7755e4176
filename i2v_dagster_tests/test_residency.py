"""Model residency: lazy loads, one large model at a time, a VRAM budget, teardown."""

from __future__ import annotations

import dagster as dg
import pytest

from i2v_dagster.defs.residency import ModelResidency
from i2v_dagster.models.base import AdapterSettings


@pytest.fixture()
def residency():
    res = ModelResidency()
    with dg.build_init_resource_context() as ctx:
        res.setup_for_execution(ctx)
        yield res
        res.teardown_after_execution(ctx)


def test_nothing_loads_at_setup(residency):
    assert residency.resident == [] and residency.events == []


def test_each_use_unloads_its_model_when_it_ends(residency):
    with residency.use("mock_speech") as speech:
        assert speech.is_loaded
    assert not speech.is_loaded
    with residency.use("mock_image") as image:
        assert image.is_loaded
    with residency.use("mock_video") as video:
        assert video.is_loaded and not image.is_loaded
    seq = [(e["event"], e["model"].split("#")[0]) for e in residency.events]
    assert seq == [
        ("load", "mock_speech"),
        ("unload", "mock_speech"),
        ("load", "mock_image"),
        ("unload", "mock_image"),
        ("load", "mock_video"),
        ("unload", "mock_video"),
    ]
    assert all(e["seconds"] >= 0 for e in residency.events)
    assert {e["reason"] for e in residency.events if e["event"] == "unload"} == {"its step is done"}
    assert residency.resident == []


def test_nested_uses_share_the_model_until_the_outermost_ends(residency):
    with residency.use("mock_video") as a:
        with residency.use("mock_video") as b:
            assert a is b
        assert a.is_loaded
    assert not a.is_loaded
    with residency.use("mock_video", AdapterSettings(options={"steps": 2})) as c:
        assert c is not a
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


def test_a_second_large_model_that_does_not_fit_beside_one_in_use_is_refused(monkeypatch):
    from i2v_dagster.errors import ModelLoadError
    from i2v_dagster.models.mock import MockImage, MockVideo

    monkeypatch.setattr(MockImage, "weights_gb", 34.0)
    monkeypatch.setattr(MockVideo, "weights_gb", 21.0)
    res = ModelResidency(vram_budget_gb=40.0)
    with dg.build_init_resource_context() as ctx:
        res.setup_for_execution(ctx)
        with (
            res.use("mock_image"),
            pytest.raises(ModelLoadError, match="cannot load beside mock_image"),
            res.use("mock_video"),
        ):
            pass
        res.teardown_after_execution(ctx)


def test_a_failing_step_drops_the_call_frames_and_unloads(residency, monkeypatch):
    """A timed-out call's traceback keeps every local of the model call alive until the error is dropped;
    the residency clears those frames (and unloads) before the error leaves the step."""
    import gc
    import weakref

    from i2v_dagster.errors import ClipTimeoutError
    from i2v_dagster.models.mock import MockVideo

    class Pipeline:  # stands for a diffusers pipeline: big tensors referenced from its call's frames
        def __call__(self):
            latents = bytearray(10_000_000)  # noqa: F841 - a local the traceback would keep
            raise ClipTimeoutError("clip 004 ran over its time limit", limit_s=1.0, elapsed_s=1.2)

    refs = []

    def generate(self, request):
        pipe = Pipeline()
        refs.append(weakref.ref(pipe))
        pipe()

    monkeypatch.setattr(MockVideo, "generate", generate)
    with pytest.raises(ClipTimeoutError) as info, residency.use("mock_video") as video:
        video.generate(None)
    gc.collect()
    assert info.value is not None  # the error is still held here ...
    assert refs[0]() is None  # ... but the pipeline it referenced is gone
    assert not video.is_loaded
    assert residency.events[-1]["reason"] == "its step failed"


def test_unknown_adapter_is_a_clear_error(residency):
    from i2v_dagster.errors import AdapterError

    with pytest.raises(AdapterError, match="unknown adapter 'nope'"), residency.use("nope"):
        pass
