"""Narration with Bark through transformers' ``BarkModel`` and ``BarkProcessor``.

Not the PyPI ``bark`` package: it pulls a CUDA torchaudio that breaks transformers/diffusers imports next
to CPU torch, and its checkpoint loading fails under torch >= 2.6.

One Bark call makes at most ~13-15 s of audio (768 semantic tokens at 49.9 Hz), so ``synthesize`` splits
the text into sentences (a sentence longer than ``max_chars`` at clause, then word boundaries; 150
characters, about 10 s of speech, stay clear of the cap that 200 sit near), makes each
piece with its own seed (``seed + index``: a piece's audio does not depend on the pieces before it) and
joins them with ``pause_s`` of silence. Any length of narration works; time grows with it.

Options (``AdapterSettings.options``, validated by :class:`BarkOptions`):

- ``voice_preset`` (``"v2/en_speaker_6"``): a preset listed in the model's ``speaker_embeddings_path.json``,
  a path to a ``.npz`` preset, or None for Bark's unconditioned (random) voice.
- ``max_semantic_tokens`` (None: the model's generation config, 768 for Bark): cap on semantic tokens per
  piece. Coarse and fine tokens follow from the semantic ones (about 3 coarse tokens each), so this one
  number bounds both the audio per piece (tokens / 49.9 s) and the time. Tests use it to stay fast.
- ``semantic_temperature`` (0.7), ``coarse_temperature`` (0.7), ``fine_temperature`` (0.5): Bark's own
  sampling temperatures.
- ``min_eos_p`` (0.2): end a piece once the end token is this likely (Bark's default; stops trailing noise).
- ``pause_s`` (0.25): silence between pieces. ``max_chars`` (150): longest piece of text per call.

Settings: ``dtype`` ``auto`` is fp16 on CUDA and fp32 on CPU; ``cpu_offload`` (CUDA only) moves one
sub-model at a time to the GPU; ``quantization`` must be ``none`` (or ``auto``); ``cache_dir`` is where
the model, the tokenizer and the voice presets are all read (``BarkProcessor.from_pretrained`` would read
the tokenizer from the default cache whatever ``cache_dir`` says, so the processor is put together here).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from i2v_dagster.errors import AdapterError, ModelLoadError
from i2v_dagster.models._torch import (
    dtype_name,
    free_memory,
    guard_cpu_offload,
    hub_kwargs,
    load_errors,
    resolve_device,
    resolve_dtype,
    weights_source,
)
from i2v_dagster.models.base import AdapterOptions, AdapterSettings, Audio, SpeechModel

DEFAULT_VOICE_PRESET = "v2/en_speaker_6"
DEFAULT_SAMPLE_RATE = 24_000
SPEAKER_EMBEDDINGS_PATH = "speaker_embeddings_path.json"

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n\s*\n?")
_CLAUSE_END = re.compile(r"(?<=[,;:—–])\s+")


class BarkOptions(AdapterOptions):
    """``models.speech.options`` of ``bark``."""

    voice_preset: str | None = Field(
        DEFAULT_VOICE_PRESET,
        max_length=1_000,
        description="A voice preset of the model's speaker_embeddings_path.json, a .npz preset file, or null "
        "for Bark's unconditioned (random) voice.",
    )
    max_semantic_tokens: int | None = Field(
        None,
        ge=1,
        le=4_096,
        description="Semantic tokens per piece at most (49.9 per second of audio); null: the model's "
        "generation config (768 for Bark).",
    )
    semantic_temperature: float = Field(0.7, gt=0, le=5, description="Sampling temperature, semantic tokens.")
    coarse_temperature: float = Field(0.7, gt=0, le=5, description="Sampling temperature, coarse tokens.")
    fine_temperature: float = Field(0.5, gt=0, le=5, description="Sampling temperature, fine tokens.")
    min_eos_p: float | None = Field(
        0.2,
        ge=0,
        le=1,
        description="End a piece once the end token is this likely (stops trailing noise); null: when "
        "it is sampled.",
    )
    pause_s: float = Field(0.25, ge=0, le=10, description="Silence between pieces, seconds.")
    max_chars: int = Field(150, ge=10, le=1_000, description="Longest piece of text per Bark call.")


class BarkSpeech(SpeechModel):
    """Text to speech with Bark; the model lives in ``self.model``, its processor in ``self.processor``."""

    name = "bark"
    large = True
    weights_gb = 0.81
    """suno/bark-small in fp16 (404 M parameters: three 12-layer GPTs + EnCodec; 1.6 GB in fp32). suno/bark
    (``settings.model``) is 1.10 B parameters: 2.2 GB fp16, 4.4 GB fp32."""
    default_repo = "suno/bark-small"
    allow_patterns = (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        SPEAKER_EMBEDDINGS_PATH,
        "speaker_embeddings/v2/*",
    )
    """Model, tokenizer and the v2 voice presets. suno/bark-small's main branch ships ``pytorch_model.bin``
    only; a ``model.safetensors`` is taken where a revision has it. Not ``vocab.txt`` (the vocabulary of
    ``tokenizer.json`` again)."""
    Options = BarkOptions
    options_defaults: ClassVar[dict[str, Any]] = BarkOptions().model_dump()

    def __init__(self, settings: AdapterSettings | None = None, *, logger: logging.Logger | None = None):
        super().__init__(settings, logger=logger)
        self.model: Any = None
        self.processor: Any = None
        self.device: str = "cpu"
        self.voice: dict[str, np.ndarray] | None = None
        """The voice preset's prompts (semantic, coarse, fine), loaded once."""

    # -- options -------------------------------------------------------------------------------------

    def option(self, key: str) -> Any:
        return getattr(self.options, key)

    @property
    def sample_rate(self) -> int:
        config = getattr(self.model, "generation_config", None)
        return int(getattr(config, "sample_rate", None) or DEFAULT_SAMPLE_RATE)

    # -- loading -------------------------------------------------------------------------------------

    def _load(self) -> None:
        from i2v_dagster.models._compat import ensure_torch_stack

        ensure_torch_stack()
        from transformers import AutoTokenizer, BarkModel, BarkProcessor

        s = self.settings
        if s.quantization not in ("none", "auto"):
            raise AdapterError(
                f"quantization: {self.name} supports none, not {s.quantization!r} (auto means none here)"
            )
        device = resolve_device(self.name, s.device)
        dtype = resolve_dtype(self.name, s.dtype, device, auto_cuda="fp16", log=self.log)
        source, local = weights_source(self.name, self.model_id)
        self.log.info(
            "loading %s from %s (revision %s, %s, %s)",
            self.name,
            self.model_id,
            s.revision,
            dtype_name(dtype),
            device,
        )
        hub = hub_kwargs(s, local=local, default_revision=self.default_revision)
        with load_errors(self.name, "BarkModel", source):
            processor = BarkProcessor(
                tokenizer=AutoTokenizer.from_pretrained(source, **hub),
                speaker_embeddings=_speaker_embeddings(source, local, hub),
            )
            model: Any = BarkModel.from_pretrained(source, dtype=dtype, **hub)
        model.eval()
        if guard_cpu_offload(self.log, self.name, s.cpu_offload, device):
            model.enable_cpu_offload(accelerator_id=_cuda_index(device))
        else:
            model.to(device)
        self.device = str(device)
        self.voice = self._load_voice(processor)
        self.processor = processor
        self.model = model

    def _load_voice(self, processor) -> dict[str, np.ndarray] | None:
        preset = self.option("voice_preset")
        if preset is None or preset == "":
            return None
        preset = str(preset)
        known = processor.available_voice_presets
        is_file = preset.endswith(".npz") and Path(preset).is_file()
        if preset not in known and not is_file:
            listed = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "") if known else "none"
            raise AdapterError(
                f"options.voice_preset: {self.model_id!r} has no voice preset {preset!r} "
                f"(presets there: {listed}); give one of them, a .npz file, or null for no preset"
            )
        try:
            if is_file and preset not in known:
                with np.load(preset) as data:
                    arrays = {key: data[key] for key in data.files}
            else:
                # The processor's own loader, called with our cache folder and revision (its __call__
                # would look in the default cache only).
                arrays = processor._load_voice_preset(
                    preset, cache_dir=self.settings.cache_dir, revision=self.settings.revision
                )
            processor._validate_voice_preset_dict(arrays)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ModelLoadError(
                f"{self.name}: voice preset {preset!r} of {self.model_id!r} could not be read: {exc}"
            ) from exc
        return arrays

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["voice_preset"] = self.option("voice_preset")
        info["quantization_used"] = "none"
        return info

    def _unload(self) -> None:
        self.model = None
        self.processor = None
        self.voice = None
        free_memory()

    # -- speaking ------------------------------------------------------------------------------------

    def synthesize(self, text: str, *, seed: int) -> Audio:
        """Speech for ``text`` (any length), deterministic for (``text``, ``seed``)."""
        pieces = split_text(text, max_chars=int(self.option("max_chars")))
        if not pieces:
            raise AdapterError(f"text: {self.name} needs words to speak, got {text!r}")
        self.load()
        sr = self.sample_rate
        pause = np.zeros(int(round(float(self.option("pause_s")) * sr)), dtype=np.float32)
        parts: list[np.ndarray] = []
        for index, piece in enumerate(pieces):
            if parts:
                parts.append(pause)
            parts.append(self._speak(piece, seed=int(seed) + index))
            self.log.debug("%s: piece %d/%d, %d samples", self.name, index + 1, len(pieces), len(parts[-1]))
        samples = np.clip(np.concatenate(parts), -1.0, 1.0).astype(np.float32)
        return Audio(samples=samples, sample_rate=sr, model_id=self.model_id)

    def _speak(self, text: str, *, seed: int) -> np.ndarray:
        """One Bark call: mono float32 samples for one piece of text."""
        import torch

        inputs = self.processor(text, voice_preset=self.voice)
        history = inputs.pop("history_prompt", None)
        kwargs: dict[str, Any] = {key: value.to(self.device) for key, value in inputs.items()}
        if history is not None:
            kwargs["history_prompt"] = {key: value.to(self.device) for key, value in history.items()}
        cap = self.option("max_semantic_tokens")
        if cap is not None:
            kwargs["semantic_max_new_tokens"] = int(cap)
        device = torch.device(self.device)
        devices = [_cuda_index(device)] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            audio = self.model.generate(
                **kwargs,
                do_sample=True,
                semantic_temperature=float(self.option("semantic_temperature")),
                coarse_temperature=float(self.option("coarse_temperature")),
                fine_temperature=float(self.option("fine_temperature")),
                min_eos_p=self.option("min_eos_p"),
            )
        return audio.reshape(-1).float().cpu().numpy()


def _speaker_embeddings(source: str, local: bool, hub: dict[str, Any]) -> dict[str, Any] | None:
    """The repo's voice preset index (``speaker_embeddings_path.json``) read from ``hub``'s cache, or None
    when the repo has none; its presets are then read from ``source``."""
    import json

    if local:
        path: Path | None = Path(source) / SPEAKER_EMBEDDINGS_PATH
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        try:
            path = Path(hf_hub_download(source, SPEAKER_EMBEDDINGS_PATH, **hub))
        except (EntryNotFoundError, LocalEntryNotFoundError):
            path = None
    if path is None or not path.is_file():
        return None
    presets = json.loads(path.read_text(encoding="utf-8"))
    presets["repo_or_path"] = source
    return presets


def split_text(text: str, *, max_chars: int = 150) -> list[str]:
    """Sentences of ``text``; a sentence longer than ``max_chars`` is cut at clauses, then between words."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = " ".join(sentence.split())
        if len(sentence) <= max_chars:
            pieces.extend([sentence] if sentence else [])
            continue
        clauses: list[str] = []
        for clause in _CLAUSE_END.split(sentence):
            clauses.extend([clause] if len(clause) <= max_chars else _pack(clause.split(), max_chars))
        pieces.extend(_pack(clauses, max_chars))
    return pieces


def _pack(units: list[str], max_chars: int) -> list[str]:
    """``units`` joined by spaces, greedily, into pieces of at most ``max_chars`` (a longer unit alone)."""
    pieces: list[str] = []
    current = ""
    for unit in units:
        candidate = f"{current} {unit}" if current else unit
        if len(candidate) <= max_chars or not current:
            current = candidate
        else:
            pieces.append(current)
            current = unit
    if current:
        pieces.append(current)
    return pieces


def _cuda_index(device) -> int:
    """The CUDA device number of ``device`` (``cuda`` alone is the current device)."""
    import torch

    return device.index if device.index is not None else torch.cuda.current_device()
