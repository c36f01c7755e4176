"""ClipScorer on tiny open_clip models with random weights saved to files, loaded offline."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import weakref
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from i2v_dagster.models._compat import ensure_torch_stack  # noqa: E402

ensure_torch_stack()  # before open_clip: it imports torchvision
pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402

from i2v_dagster.errors import AdapterError, ScorerUnavailableError  # noqa: E402
from i2v_dagster.models.base import AdapterSettings  # noqa: E402
from i2v_dagster.models.clip_scorer import ClipScorer, scorer_availability  # noqa: E402
from i2v_dagster.models.registry import build_adapter  # noqa: E402
from i2v_dagster_tests.models.contract import assert_unload_releases  # noqa: E402
from i2v_dagster_tests.models.tiny_clip import (  # noqa: E402
    TINY_NAMES,
    save_clip_weights,
    save_tiny_clip,
    tiny_clip_config,
)

pytestmark = pytest.mark.models

CAPTION_A = "a noisy grey texture"
CAPTION_B = "a red circle on a blue background"


def _noise_image() -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8), "RGB")


def _circle_image() -> Image.Image:
    yy, xx = np.mgrid[0:48, 0:64]
    arr = np.zeros((48, 64, 3), dtype=np.uint8)
    arr[...] = (20, 40, 200)
    arr[(yy - 24) ** 2 + (xx - 32) ** 2 < 15**2] = (220, 20, 20)
    return Image.fromarray(arr, "RGB")


@pytest.fixture(scope="module")
def tiny_settings(tmp_path_factory) -> AdapterSettings:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def scorer(tiny_settings):
    adapter = ClipScorer(tiny_settings)
    adapter.load()
    yield adapter
    adapter.unload()


def _with_options(settings: AdapterSettings, **options) -> AdapterSettings:
    return AdapterSettings(device="cpu", dtype="fp32", options={**settings.options, **options})


def test_registry_builds_the_clip_scorer():
    adapter = build_adapter("clip")
    assert isinstance(adapter, ClipScorer)
    assert adapter.large is False
    assert adapter.model_id == "ViT-B-32:openai, ViT-L-14:openai"


def test_one_score_per_pair_per_model_in_range(scorer):
    images = [_noise_image(), _circle_image(), _noise_image()]
    scores = scorer.score(images, [CAPTION_A, CAPTION_B, CAPTION_B])
    assert list(scores.per_model) == list(TINY_NAMES)
    for values in scores.per_model.values():
        assert len(values) == 3
        assert all(isinstance(v, float) and -1.0 <= v <= 1.0 and math.isfinite(v) for v in values)


def test_scores_are_the_cosine_similarity_of_the_model_embeddings(scorer, tiny_settings):
    """Recompute with open_clip directly from the weights files: normalised embeddings, dot product."""
    import open_clip
    import torch

    images = [_noise_image(), _circle_image()]
    prompts = [CAPTION_A, CAPTION_B]
    got = scorer.score(images, prompts).per_model
    for name in TINY_NAMES:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=tiny_settings.options["pretrained"][name]
        )
        model.eval()
        tokenizer = open_clip.get_tokenizer(name)
        with torch.no_grad():
            img = model.encode_image(torch.stack([preprocess(i) for i in images]))
            txt = model.encode_text(tokenizer(prompts))
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        expected = (img * txt).sum(-1).tolist()
        assert got[name] == pytest.approx(expected, abs=1e-5)


def test_scores_are_deterministic_across_loads(scorer, tiny_settings):
    images, prompts = [_noise_image(), _circle_image()], [CAPTION_A, CAPTION_B]
    first = scorer.score(images, prompts)
    assert scorer.score(images, prompts) == first
    other = ClipScorer(tiny_settings)
    try:
        assert other.score(images, prompts) == first  # score() loads on first use
    finally:
        other.unload()


def test_score_depends_on_the_prompt_and_on_the_image(scorer):
    noise, circle = _noise_image(), _circle_image()
    per_model = scorer.score([noise, noise, circle], [CAPTION_A, CAPTION_B, CAPTION_A]).per_model
    for name, (own, other_prompt, other_image) in per_model.items():
        assert abs(own - other_prompt) > 1e-3, f"{name}: changing the prompt did not change the score"
        assert abs(own - other_image) > 1e-3, f"{name}: changing the image did not change the score"


def test_batching_keeps_pairs_in_order(tiny_settings):
    images = [_noise_image(), _circle_image(), _circle_image(), _noise_image(), _circle_image()]
    prompts = [CAPTION_A, CAPTION_B, CAPTION_A, "a third caption", CAPTION_B]
    batched = ClipScorer(_with_options(tiny_settings, batch_size=2))
    try:
        together = batched.score(images, prompts).per_model
        one_by_one = [batched.score([i], [p]).per_model for i, p in zip(images, prompts, strict=True)]
    finally:
        batched.unload()
    for name in TINY_NAMES:
        assert together[name] == pytest.approx([s[name][0] for s in one_by_one], abs=1e-6)


def test_scores_come_from_the_weights_file(scorer, tmp_path):
    """Other random weights (another seed) give other scores: the file is loaded, not a fresh init."""
    images, prompts = [_noise_image(), _circle_image()], [CAPTION_A, CAPTION_B]
    other = ClipScorer(save_tiny_clip(tmp_path, seed=1))
    try:
        theirs = other.score(images, prompts).per_model
    finally:
        other.unload()
    ours = scorer.score(images, prompts).per_model
    for name in TINY_NAMES:
        assert not np.allclose(ours[name], theirs[name], atol=1e-3)


def test_weights_save_load_round_trip_gives_identical_scores(scorer, tmp_path):
    images, prompts = [_noise_image(), _circle_image()], [CAPTION_A, CAPTION_B]
    before = scorer.score(images, prompts)
    resaved = {
        name: str(save_clip_weights(scorer.models[name].model, tmp_path / f"resaved-{name}.safetensors"))
        for name in TINY_NAMES
    }
    reloaded = ClipScorer(_with_options(scorer.settings, pretrained=resaved))
    try:
        assert reloaded.score(images, prompts) == before
    finally:
        reloaded.unload()


def test_missing_hub_weights_offline_raise_with_model_and_place(monkeypatch, tmp_path):
    cache = tmp_path / "empty-hub-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    adapter = ClipScorer(AdapterSettings())
    with pytest.raises(ScorerUnavailableError) as info:
        adapter.score([_noise_image()], [CAPTION_A])
    message = str(info.value)
    for expected in (
        "ViT-B-32",
        "ViT-L-14",
        str(cache),
        "timm/vit_base_patch32_clip_224.openai",
        "HF_HUB_OFFLINE",
    ):
        assert expected in message
    assert not adapter.is_loaded
    assert scorer_availability(AdapterSettings()) == message


def test_missing_weights_file_raises_naming_model_and_file(tiny_settings, tmp_path):
    absent = tmp_path / "absent.safetensors"
    settings = _with_options(tiny_settings, models=["tiny-clip-a"], pretrained={"tiny-clip-a": str(absent)})
    reason = scorer_availability(settings)
    assert reason is not None and "tiny-clip-a" in reason and str(absent) in reason
    with pytest.raises(ScorerUnavailableError, match="tiny-clip-a") as info:
        ClipScorer(settings).load()
    assert str(info.value) == reason


def test_folder_without_weights_is_unavailable_not_random(tmp_path):
    folder = tmp_path / "snapshot"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text("{}", encoding="utf-8")
    settings = AdapterSettings(model=str(folder), options={"models": ["ViT-B-32"]})
    reason = scorer_availability(settings)
    assert reason is not None and "ViT-B-32" in reason and "no weights file" in reason
    with pytest.raises(ScorerUnavailableError, match="no weights file"):
        ClipScorer(settings).load()


def test_weights_in_the_hub_cache_are_found_offline(monkeypatch, tmp_path):
    """A prefetched snapshot (hub cache layout) makes the default tag available with the hub offline."""
    cache = tmp_path / "hub"
    repo = cache / "models--timm--vit_base_patch32_clip_224.openai"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "open_clip_model.safetensors").write_bytes(b"weights")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert scorer_availability(AdapterSettings(options={"models": ["ViT-B-32"]})) is None
    reason = scorer_availability(AdapterSettings())
    assert reason is not None and "ViT-L-14" in reason and "ViT-B-32" not in reason
    # a snapshot prefetched at a pinned revision has no refs/main: it is found too
    (repo / "refs" / "main").unlink()
    assert scorer_availability(AdapterSettings(options={"models": ["ViT-B-32"]})) is None


def test_auto_quantization_is_plain_and_not_logged_other_values_are(tiny_settings, caplog):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU choices")
    auto = dataclasses.replace(tiny_settings, device="auto", dtype="auto")
    assert auto.quantization == "auto"  # the default
    ignored = ["clip: quantization 'nf4' is not used by this scorer"]
    for quantization, logged in (("auto", []), ("none", []), ("nf4", ignored)):
        adapter = ClipScorer(dataclasses.replace(auto, quantization=quantization))
        caplog.clear()
        with caplog.at_level(logging.INFO):
            adapter.load()
        try:
            said = [r.getMessage() for r in caplog.records if "quantization" in r.getMessage()]
            assert said == logged
            assert "clip: dtype auto -> fp32 on cpu" in caplog.text
            assert adapter.describe()["quantization_used"] == "none"
            params = [p for loaded in adapter.models.values() for p in loaded.model.parameters()]
            assert {(p.dtype, p.device.type) for p in params} == {(torch.float32, "cpu")}
        finally:
            adapter.unload()


def test_unload_releases_the_models(tiny_settings):
    adapter = ClipScorer(tiny_settings)
    adapter.load()
    assert set(adapter.models) == set(TINY_NAMES)
    modules = [weakref.ref(loaded.model) for loaded in adapter.models.values()]
    assert_unload_releases(adapter, "models")
    assert all(ref() is None for ref in modules), "an open_clip model is still referenced after unload()"


def test_configuration_errors_name_the_problem(tiny_settings, tmp_path):
    with pytest.raises(AdapterError, match="2 images but 1 prompts"):
        ClipScorer(tiny_settings).score([_noise_image(), _circle_image()], [CAPTION_A])
    with pytest.raises(AdapterError, match="lists 2 models"):
        ClipScorer(AdapterSettings(model=str(tmp_path / "w.safetensors"))).load()
    with pytest.raises(AdapterError, match="open_clip tag of ViT-B-32"):
        scorer_availability(AdapterSettings(options={"models": ["ViT-B-32"], "pretrained": "no_such_tag"}))
    with pytest.raises(AdapterError, match="device: clip runs on auto, cpu or cuda, got 'tpu'"):
        ClipScorer(dataclasses.replace(tiny_settings, device="tpu")).load()
    with pytest.raises(AdapterError, match="dtype: clip takes auto, bf16, fp16 or fp32, got 'fp8'"):
        ClipScorer(dataclasses.replace(tiny_settings, dtype="fp8")).load()
    with pytest.raises(AdapterError, match="not an open_clip architecture"):
        scorer_availability(
            AdapterSettings(options={"models": ["ViT-Nope"], "pretrained": str(Path(__file__))})
        )


def test_a_snapshot_folder_loads_the_same_weights(scorer, tiny_settings, tmp_path):
    """A folder laid out like the hub repo (open_clip_config.json + weights) gives the file's scores."""
    folder = tmp_path / "tiny-clip-a-snapshot"
    folder.mkdir()
    config = {"model_cfg": tiny_clip_config(), "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    shutil.copy(tiny_settings.options["pretrained"]["tiny-clip-a"], folder / "open_clip_model.safetensors")
    images, prompts = [_noise_image(), _circle_image()], [CAPTION_A, CAPTION_B]
    from_folder = ClipScorer(AdapterSettings(model=str(folder), options={"models": ["tiny-clip-a"]}))
    try:
        got = from_folder.score(images, prompts).per_model
    finally:
        from_folder.unload()
    assert got == {"tiny-clip-a": scorer.score(images, prompts).per_model["tiny-clip-a"]}
