"""A tiny, randomly initialised Bark (transformers' ``BarkModel`` + ``BarkProcessor``) built in code.

The token layout is Bark's, scaled down (Bark's own numbers in brackets):

- semantic tokens ``0..SEMANTIC_VOCAB-1`` [10 000], end/pad ``SEMANTIC_VOCAB``; text ids shifted by
  ``TEXT_OFFSET`` [10 048]; then the text pad and the semantic infer tokens;
- coarse tokens: ``SEMANTIC_VOCAB + k * CODEBOOK_SIZE + code`` for the 2 coarse codebooks [1024 codes],
  then the coarse pad and infer tokens;
- fine: 8 codebooks of ``CODEBOOK_SIZE`` codes; a tiny EnCodec (hop 320 at 24 kHz = 75 frames/s, as the
  real one, 8 quantizers) turns them into audio.

Context windows are shortened (text 32 tokens, coarse window 32 + history 60, fine window 64) so the
blocks stay small, and the generation config draws ``MIN_SEMANTIC_TOKENS`` to ``MAX_SEMANTIC_TOKENS``
semantic tokens per call (0.25-0.8 s of audio): a sentence takes a fraction of a second on one CPU thread
(several seconds on two contended threads: tests set ``torch.set_num_threads(1)``). The adapter option
``max_semantic_tokens`` lowers the cap further. The saved folder holds one voice preset, ``VOICE_PRESET``,
as Bark repos do (``speaker_embeddings_path.json`` + ``speaker_embeddings/v2/*.npy``).

The audio is what random weights make (mostly a wobbling offset), but it is real EnCodec output: its
length follows the tokens, and the text, the voice preset and the seed all change it.
"""

from __future__ import annotations

from pathlib import Path

from i2v_dagster_tests.models.tiny_tokenizers import VOCAB_SIZE, bert_tokenizer

SEMANTIC_VOCAB = 32
SEMANTIC_PAD = SEMANTIC_VOCAB  # also the end-of-semantic (eos) token, as in Bark
TEXT_OFFSET = SEMANTIC_VOCAB + 8
TEXT_PAD = TEXT_OFFSET + VOCAB_SIZE
SEMANTIC_INFER = TEXT_PAD + 1
SEMANTIC_INPUT_VOCAB = SEMANTIC_INFER + 1
SEMANTIC_OUTPUT_VOCAB = SEMANTIC_PAD + 8

CODEBOOK_SIZE = 16
N_COARSE = 2
N_FINE = 8
COARSE_PAD = SEMANTIC_VOCAB + N_COARSE * CODEBOOK_SIZE
COARSE_INFER = COARSE_PAD + 2
COARSE_VOCAB = COARSE_INFER + 1
FINE_VOCAB = CODEBOOK_SIZE + 8

MAX_INPUT_SEMANTIC = 32
MAX_SEMANTIC_TOKENS = 40
"""Default semantic-token cap of the tiny generation config (Bark's is 768, about 15 s)."""
MIN_SEMANTIC_TOKENS = 12
"""The random model would often stop after a token or two: too short for EnCodec's 7-tap convolutions."""
SAMPLE_RATE = 24_000
INIT_STD = 0.5
"""Weights std (Bark's is 0.02). Large weights make peaked next-token distributions, so the text, the
voice preset and the seed all visibly change the tokens drawn (at 0.02 sampling is near-uniform noise)."""
VOICE_PRESET = "v2/en_speaker_6"


def _sub(cls, *, vocab_in: int, vocab_out: int, block: int, **kw):
    return cls(
        input_vocab_size=vocab_in,
        output_vocab_size=vocab_out,
        hidden_size=16,
        num_layers=1,
        num_heads=2,
        block_size=block,
        bias=False,
        initializer_range=INIT_STD,
        **kw,
    )


def build_tiny_bark(seed: int = 0):
    """(``BarkModel``, ``BarkProcessor``, voice preset arrays), tiny and random from ``seed``, fp32."""
    from i2v_dagster.models._compat import ensure_torch_stack

    ensure_torch_stack()
    import numpy as np
    import torch
    from transformers import (
        BarkCoarseConfig,
        BarkConfig,
        BarkFineConfig,
        BarkModel,
        BarkProcessor,
        BarkSemanticConfig,
        EncodecConfig,
        GenerationConfig,
    )
    from transformers.models.bark.generation_configuration_bark import BarkGenerationConfig

    config = BarkConfig(
        semantic_config=_sub(
            BarkSemanticConfig, vocab_in=SEMANTIC_INPUT_VOCAB, vocab_out=SEMANTIC_OUTPUT_VOCAB, block=128
        ).to_dict(),
        coarse_acoustics_config=_sub(
            BarkCoarseConfig, vocab_in=COARSE_VOCAB, vocab_out=COARSE_VOCAB, block=128
        ).to_dict(),
        fine_acoustics_config=_sub(
            BarkFineConfig,
            vocab_in=FINE_VOCAB,
            vocab_out=FINE_VOCAB,
            block=64,
            n_codes_total=N_FINE,
            n_codes_given=1,
        ).to_dict(),
        codec_config=EncodecConfig(
            sampling_rate=SAMPLE_RATE,
            target_bandwidths=[2.4],  # 1000 * 2.4 // (75 frames/s * 4 bits) = 8 quantizers
            hidden_size=8,
            num_filters=2,
            num_lstm_layers=1,
            upsampling_ratios=[8, 5, 4, 2],
            codebook_size=CODEBOOK_SIZE,
        ).to_dict(),
        initializer_range=INIT_STD,
    )
    torch.manual_seed(seed)
    model = BarkModel(config).eval()
    with torch.no_grad():  # EnCodec initialises its codebooks to zeros: every code would decode the same
        for layer in model.codec_model.quantizer.layers:
            layer.codebook.embed.normal_()
    nested = BarkGenerationConfig(
        semantic_config={
            "eos_token_id": SEMANTIC_PAD,
            "max_new_tokens": MAX_SEMANTIC_TOKENS,
            "min_new_tokens": MIN_SEMANTIC_TOKENS,
            "text_encoding_offset": TEXT_OFFSET,
            "text_pad_token": TEXT_PAD,
            "semantic_infer_token": SEMANTIC_INFER,
            "semantic_vocab_size": SEMANTIC_VOCAB,
            "max_input_semantic_length": MAX_INPUT_SEMANTIC,
            "semantic_rate_hz": 49.9,
        },
        coarse_acoustics_config={
            "coarse_semantic_pad_token": COARSE_PAD,
            "coarse_rate_hz": 75,
            "n_coarse_codebooks": N_COARSE,
            "coarse_infer_token": COARSE_INFER,
            "max_coarse_input_length": 32,
            "max_coarse_history": 60,
            "sliding_window_len": 30,
        },
        fine_acoustics_config={
            "temperature": 1.0,
            "max_fine_history_length": 32,
            "max_fine_input_length": 64,
            "n_fine_codebooks": N_FINE,
        },
        sample_rate=SAMPLE_RATE,
        codebook_size=CODEBOOK_SIZE,
    )
    # A loaded Bark holds a plain GenerationConfig whose sub-configs are dicts (BarkModel.generate rebuilds
    # the typed configs from them); BarkGenerationConfig itself cannot be saved (transformers 5.23).
    model.generation_config = GenerationConfig(**nested.to_dict())

    rng = np.random.default_rng(seed)
    voice = {
        "semantic_prompt": rng.integers(0, SEMANTIC_VOCAB, size=48).astype(np.int64),
        "coarse_prompt": rng.integers(0, CODEBOOK_SIZE, size=(N_COARSE, 72)).astype(np.int64),
        "fine_prompt": rng.integers(0, CODEBOOK_SIZE, size=(N_FINE, 72)).astype(np.int64),
    }
    processor = BarkProcessor(tokenizer=bert_tokenizer())
    return model, processor, voice


def save_tiny_bark(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny Bark (model, processor, voice preset ``VOICE_PRESET``) into ``path``; returns the folder.

    The layout matches ``suno/bark-small``: ``config.json``, ``generation_config.json``, weights, tokenizer
    files, ``speaker_embeddings_path.json`` and ``speaker_embeddings/v2/en_speaker_6_*.npy``.
    """
    import json

    import numpy as np

    path = Path(path)
    model, processor, voice = build_tiny_bark(seed)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    # BarkProcessor.save_pretrained copies presets it can already load; write the tiny one directly.
    folder = path / "speaker_embeddings" / Path(VOICE_PRESET).parent
    folder.mkdir(parents=True, exist_ok=True)
    entry = {}
    for key, array in voice.items():
        rel = f"speaker_embeddings/{VOICE_PRESET}_{key}.npy"
        np.save(path / rel, array, allow_pickle=False)
        entry[key] = rel
    (path / "speaker_embeddings_path.json").write_text(
        json.dumps({"repo_or_path": str(path), VOICE_PRESET: entry}), encoding="utf-8"
    )
    return path
