"""Every adapter on a tiny folder laid out exactly like its real hub repo (``layouts/*.json``).

For each adapter: the folder holds exactly the repo's files in the repo's formats; ``allow_patterns``
fetches exactly the files loading needs; and what it fetches, placed in a Hugging Face cache as the repo's
snapshot, loads by repo id with ``HF_HUB_OFFLINE=1`` through the adapter's own ``load()`` (the same
``from_pretrained`` call as for the real repo) and makes one tiny output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from i2v_dagster.models._compat import ensure_torch_stack  # noqa: E402

ensure_torch_stack()

from i2v_dagster.models.base import AdapterSettings, ClipRequest  # noqa: E402
from i2v_dagster.models.registry import build_adapter, get_adapter_info  # noqa: E402
from i2v_dagster_tests.models.real_layout import (  # noqa: E402
    build_layout,
    folder_files,
    load_layout,
    match_allow_patterns,
    to_hub_cache,
)
from i2v_dagster_tests.models.tiny_video import TINY_SIZES  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("one_torch_thread")]

VIDEO = ("cogvideox_5b_i2v", "cogvideox15_5b_i2v", "wan22_ti2v_5b", "hunyuan_i2v")
ADAPTERS = (*VIDEO, "flux_schnell", "bark", "clip")


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    built: dict = {}

    def get(adapter: str):
        if adapter not in built:
            built[adapter] = build_layout(adapter, tmp_path_factory.mktemp(f"{adapter}-repo"))
        return built[adapter]

    return get


@pytest.fixture(scope="module")
def hub_cache(real_folder, tmp_path_factory):
    """adapter -> (cache folder, snapshot folder) holding only what prefetch's allow_patterns fetch."""
    made: dict = {}

    def get(adapter: str):
        if adapter not in made:
            layout = load_layout(adapter)
            fetched = match_allow_patterns(layout.files, get_adapter_info(adapter).allow_patterns)
            cache = tmp_path_factory.mktemp(f"{adapter}-cache")
            made[adapter] = (cache, to_hub_cache(real_folder(adapter), fetched, cache, layout))
        return made[adapter]

    return get


def _check_format(path, fmt: str) -> None:
    if fmt in ("model-index", "config", "safetensors-index", "added-tokens", "special-tokens-map",
               "tokenizer-config", "bpe-vocab", "preprocessor", "speaker-embeddings-path", "open-clip-config",
               "tokenizer-json"):  # fmt: skip
        assert isinstance(json.loads(path.read_text()), dict), path
    elif fmt in ("safetensors", "other-weights"):
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            assert list(f.keys()), path
    elif fmt == "sentencepiece":
        import sentencepiece as spm

        assert spm.SentencePieceProcessor(model_file=str(path)).get_piece_size() > 0
    elif fmt == "torch-pickle":
        assert torch.load(path, map_location="cpu", weights_only=True), path
    elif fmt == "npy":
        assert np.load(path, allow_pickle=False).size > 0
    elif fmt == "bpe-merges":
        assert path.read_text().startswith("#version: 0.2\n")
    elif fmt == "wordpiece-vocab":
        assert "[UNK]" in path.read_text().splitlines()
    else:
        assert fmt == "other" and path.stat().st_size > 0, (path, fmt)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_folder_holds_exactly_the_repos_files_in_their_formats(adapter, real_folder):
    layout = load_layout(adapter)
    folder = real_folder(adapter)
    assert layout.repo == (get_adapter_info(adapter).repo_id or layout.repo)
    assert folder_files(folder) == set(layout.files)
    for rel, fmt in layout.files.items():
        _check_format(folder / rel, fmt)
    if layout.model_index is not None:
        assert json.loads((folder / "model_index.json").read_text()) == layout.model_index


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_allow_patterns_fetch_exactly_what_loading_needs(adapter):
    """No weights left out; no duplicate ``.bin``, single-file checkpoint or second tokenizer file."""
    layout = load_layout(adapter)
    fetched = match_allow_patterns(layout.files, get_adapter_info(adapter).allow_patterns)
    assert fetched == layout.fetched, {
        "fetched but not needed": sorted(fetched - layout.fetched),
        "needed but not fetched": sorted(layout.fetched - fetched),
    }


def _request(adapter: str) -> ClipRequest:
    from PIL import Image

    width, height = TINY_SIZES[adapter]
    pixels = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return ClipRequest(
        image=Image.fromarray(pixels), prompt="a red cat walks slowly", num_frames=5, width=width,
        height=height, fps=24, seed=1,
    )  # fmt: skip


@pytest.mark.parametrize("adapter", VIDEO)
def test_video_adapter_loads_the_fetched_files_by_repo_id_offline(adapter, hub_cache):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    cache, snapshot = hub_cache(adapter)
    layout = load_layout(adapter)
    model = build_adapter(adapter, AdapterSettings(cache_dir=str(cache), num_inference_steps=1))
    assert model.model_id == layout.repo
    model.load()
    pipe = model.pipe
    for name, (_library, cls_name) in ((k, v) for k, v in layout.model_index.items() if isinstance(v, list)):
        if cls_name is not None and name not in ("tokenizer", "tokenizer_2"):
            assert type(getattr(pipe, name)).__name__ == cls_name, name
    clip = model.generate(_request(adapter))
    assert clip.frames.shape == (5, *TINY_SIZES[adapter][::-1], 3)
    assert clip.frames.std() > 0
    model.unload()


def test_flux_loads_the_fetched_files_by_repo_id_offline(hub_cache):
    cache, _ = hub_cache("flux_schnell")
    model = build_adapter("flux_schnell", AdapterSettings(cache_dir=str(cache), num_inference_steps=1))
    image = model.generate("a red car on a road", width=64, height=64, seed=0).image
    assert image.size == (64, 64)
    assert type(model.pipe.tokenizer).__name__ == "CLIPTokenizer"
    assert model.pipe.tokenizer_2("a red car").input_ids[-1] == model.pipe.tokenizer_2.eos_token_id
    model.unload()


def test_bark_loads_by_repo_id_from_its_cache_dir_offline(hub_cache):
    """With ``cache_dir`` set, the tokenizer and voice presets come from that cache too (item 6)."""
    cache, _ = hub_cache("bark")
    default_cache = Path(os.environ["HF_HUB_CACHE"])
    assert not list(default_cache.glob("models--suno--bark-small*"))  # only cache_dir holds the repo
    model = build_adapter("bark", AdapterSettings(cache_dir=str(cache), options={"max_semantic_tokens": 12}))
    audio = model.synthesize("A red car drives down the road.", seed=0)
    assert audio.samples.size > 0 and model.voice is not None
    model.unload()


def test_clip_finds_open_clip_weights_in_the_cache_and_loads_the_snapshot(hub_cache):
    from i2v_dagster.models.clip_scorer import scorer_availability

    cache, snapshot = hub_cache("clip")
    by_tag = AdapterSettings(cache_dir=str(cache), options={"models": ["ViT-B-32"], "pretrained": "openai"})
    assert scorer_availability(by_tag) is None  # the openai tag's file is found where prefetch puts it
    by_folder = AdapterSettings(
        device="cpu", dtype="fp32", options={"models": ["ViT-B-32"], "pretrained": str(snapshot)}
    )
    from PIL import Image

    scores = build_adapter("clip", by_folder).score([Image.new("RGB", (32, 32), "red")], ["a red square"])
    assert -1.0 <= scores.per_model["ViT-B-32"][0] <= 1.0


@pytest.mark.parametrize("adapter", ("cogvideox_5b_i2v", "cogvideox15_5b_i2v"))
def test_spiece_only_t5_tokenizer_loads_offline(adapter, real_folder):
    """Item 1: the CogVideoX repos ship ``tokenizer/`` as ``spiece.model`` without ``tokenizer.json``."""
    from transformers import AutoTokenizer, T5TokenizerFast

    folder = real_folder(adapter) / "tokenizer"
    assert not (folder / "tokenizer.json").exists() and (folder / "spiece.model").is_file()
    for loader in (T5TokenizerFast, AutoTokenizer):
        tok = loader.from_pretrained(folder)
        ids = tok("a red cat walks slowly").input_ids
        assert ids[-1] == tok.eos_token_id == 1 and len(ids) > 2
        assert tok.decode(ids, skip_special_tokens=True) == "a red cat walks slowly"
        assert tok.convert_tokens_to_ids("<extra_id_0>") == len(tok) - 1
