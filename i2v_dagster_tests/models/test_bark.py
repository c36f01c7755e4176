"""BarkSpeech on a tiny random Bark (model, processor, one voice preset) saved to a folder, loaded offline."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from i2v_dagster.models._compat import ensure_torch_stack  # noqa: E402

ensure_torch_stack()
pytest.importorskip("transformers")

from i2v_dagster.errors import AdapterError, ModelLoadError  # noqa: E402
from i2v_dagster.models.bark import BarkSpeech, split_text  # noqa: E402
from i2v_dagster.models.base import AdapterSettings  # noqa: E402
from i2v_dagster.models.registry import get_adapter_info  # noqa: E402
from i2v_dagster_tests.models.contract import assert_unload_releases  # noqa: E402
from i2v_dagster_tests.models.tiny_bark import SAMPLE_RATE, VOICE_PRESET, save_tiny_bark  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("one_torch_thread")]

FAST = {"max_semantic_tokens": 16}
"""16 semantic tokens per piece: about 0.3 s of audio, a fraction of a second on CPU."""
ONE = "A red car drives down the road."
TWO = ONE + " The sun sets over the sea."
THREE = TWO + " A dog runs along the beach."


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny_bark(tmp_path_factory.mktemp("tiny_bark"))


def _settings(folder, **options) -> AdapterSettings:
    return AdapterSettings(model=str(folder), options={**FAST, **options})


@pytest.fixture(scope="module")
def bark(tiny_folder):
    adapter = BarkSpeech(_settings(tiny_folder))
    adapter.load()
    yield adapter
    adapter.unload()


def test_registry_entry_and_class_facts():
    info = get_adapter_info("bark")
    assert info.cls is BarkSpeech and info.role == "speech" and info.large
    assert info.repo_id == "suno/bark-small"
    assert {"config.json", "generation_config.json", "speaker_embeddings_path.json"} <= set(
        info.allow_patterns
    )
    assert any(p.startswith("speaker_embeddings/") for p in info.allow_patterns)


def test_audio_is_mono_float32_at_the_models_sample_rate(bark, tiny_folder):
    audio = bark.synthesize(ONE, seed=0)
    assert audio.sample_rate == SAMPLE_RATE == bark.model.generation_config.sample_rate
    assert audio.samples.ndim == 1 and audio.samples.dtype == np.float32
    assert len(audio.samples) > 0 and audio.duration_s > 0
    assert np.isfinite(audio.samples).all() and np.abs(audio.samples).max() <= 1.0
    assert np.abs(audio.samples).max() > 0  # sound, not silence
    assert audio.model_id == str(tiny_folder)


def test_more_sentences_make_longer_audio_each_piece_seeded_on_its_own(bark):
    one, two, three = (bark.synthesize(text, seed=5).samples for text in (ONE, TWO, THREE))
    assert len(one) < len(two) < len(three)
    pause = int(0.25 * SAMPLE_RATE)
    # Piece i is drawn from seed + i, so a longer narration starts with exactly the shorter one's audio,
    # followed by the pause of silence.
    assert np.array_equal(two[: len(one)], one)
    assert not two[len(one) : len(one) + pause].any()
    assert np.array_equal(three[: len(two)], two)


def test_same_seed_same_audio_other_seed_other_audio(bark):
    a = bark.synthesize(ONE, seed=11).samples
    b = bark.synthesize(ONE, seed=11).samples
    c = bark.synthesize(ONE, seed=12).samples
    other_text = bark.synthesize("The dog runs.", seed=11).samples
    assert np.array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)
    assert len(a) != len(other_text) or not np.array_equal(a, other_text)


def test_seeding_leaves_the_global_torch_generator_alone(bark):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    bark.synthesize(ONE, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_save_pretrained_round_trip_gives_the_same_audio(bark, tmp_path):
    before = bark.synthesize(ONE, seed=2).samples
    copy = str(tmp_path / "copy")  # BarkProcessor.save_pretrained writes the folder into JSON: a str
    bark.model.save_pretrained(copy)
    bark.processor.save_pretrained(copy)
    again = BarkSpeech(_settings(copy))
    after = again.synthesize(ONE, seed=2).samples
    assert again.processor.available_voice_presets == [VOICE_PRESET]
    again.unload()
    assert np.array_equal(before, after)


def test_voice_preset_conditions_the_audio_and_none_is_allowed(bark, tiny_folder):
    plain = BarkSpeech(_settings(tiny_folder, voice_preset=None))
    unvoiced = plain.synthesize(ONE, seed=0).samples
    assert plain.voice is None and bark.voice is not None
    assert set(bark.voice) == {"semantic_prompt", "coarse_prompt", "fine_prompt"}
    voiced = bark.synthesize(ONE, seed=0).samples
    assert len(unvoiced) != len(voiced) or not np.array_equal(unvoiced, voiced)
    plain.unload()


def test_voice_preset_from_an_npz_file(bark, tiny_folder, tmp_path):
    np.savez(tmp_path / "voice.npz", **bark.voice)
    from_file = BarkSpeech(_settings(tiny_folder, voice_preset=str(tmp_path / "voice.npz")))
    audio = from_file.synthesize(ONE, seed=4).samples
    from_file.unload()
    assert np.array_equal(audio, bark.synthesize(ONE, seed=4).samples)


def test_unknown_voice_preset_is_an_error_listing_the_presets(tiny_folder):
    adapter = BarkSpeech(_settings(tiny_folder, voice_preset="v2/xx_speaker_9"))
    with pytest.raises(
        AdapterError, match=r"options.voice_preset: .* has no voice preset 'v2/xx_speaker_9'"
    ) as err:
        adapter.load()
    assert VOICE_PRESET in str(err.value)
    assert not adapter.is_loaded and adapter.model is None


def test_preset_listed_but_files_missing_is_a_model_load_error(tmp_path):
    folder = save_tiny_bark(tmp_path / "broken")
    paths = json.loads((folder / "speaker_embeddings_path.json").read_text())
    (folder / paths[VOICE_PRESET]["fine_prompt"]).unlink()
    with pytest.raises(ModelLoadError, match=f"voice preset '{VOICE_PRESET}'"):
        BarkSpeech(_settings(folder)).load()


def test_missing_folder_is_a_model_load_error_naming_it(tmp_path):
    adapter = BarkSpeech(_settings(tmp_path / "no_such_bark"))
    with pytest.raises(ModelLoadError, match="no_such_bark"):
        adapter.load()
    assert not adapter.is_loaded


def test_auto_quantization_loads_plain_weights_without_a_warning(tiny_folder, caplog):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU choice")
    adapter = BarkSpeech(_settings(tiny_folder))
    assert adapter.settings.quantization == "auto"  # the default
    with caplog.at_level(logging.INFO):
        adapter.load()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "bark: dtype auto -> fp32 on cpu" in caplog.text
    assert adapter.describe()["quantization_used"] == "none"
    assert {p.dtype for p in adapter.model.parameters()} == {torch.float32}
    adapter.unload()


def test_quantization_is_refused_naming_the_setting(tiny_folder):
    adapter = BarkSpeech(AdapterSettings(model=str(tiny_folder), quantization="nf4"))
    with pytest.raises(AdapterError, match="quantization: bark supports none, not 'nf4'"):
        adapter.load()


def test_bad_dtype_is_refused_naming_the_setting(tiny_folder):
    adapter = BarkSpeech(AdapterSettings(model=str(tiny_folder), dtype="fp8"))
    with pytest.raises(AdapterError, match="dtype: bark takes auto, bf16, fp16 or fp32, got 'fp8'"):
        adapter.load()
    assert not adapter.is_loaded and adapter.model is None


def test_empty_text_is_refused_before_loading(tiny_folder):
    adapter = BarkSpeech(_settings(tiny_folder))
    with pytest.raises(AdapterError, match="text: bark needs words"):
        adapter.synthesize("  \n ", seed=0)
    assert not adapter.is_loaded


def test_unload_releases_the_model(tiny_folder):
    adapter = BarkSpeech(_settings(tiny_folder))
    adapter.load()
    assert adapter.processor is not None
    assert_unload_releases(adapter, "model")
    assert adapter.processor is None and adapter.voice is None


def test_long_sentences_are_cut_to_150_characters_by_default():
    """Bark makes at most ~13-14 s per call; 200 characters sit near that cap, 150 stay clear of it."""
    sentence = ("The boat drifts past the reeds, " * 6).strip() + "."
    assert 150 < len(sentence) <= 200
    pieces = split_text(sentence)
    assert len(pieces) == 2 and all(len(p) <= 150 for p in pieces)
    assert BarkSpeech.options_defaults["max_chars"] == 150


def test_split_text_sentences_and_long_sentences():
    assert split_text("Hello there.  How are you?\nFine!") == ["Hello there.", "How are you?", "Fine!"]
    assert split_text("   ") == []
    long = "The boat drifts, the gulls call over the harbour, and the light fades " * 6
    pieces = split_text(long.strip() + ".", max_chars=80)
    assert len(pieces) > 1 and all(len(p) <= 80 for p in pieces)
    assert " ".join(pieces).split() == (long.strip() + ".").split()  # nothing lost, nothing reordered
    assert split_text("x" * 30, max_chars=10) == ["x" * 30]  # a word longer than the limit stays whole
