"""FLUX.1-schnell keyframes through diffusers' ``FluxPipeline``.

Schnell is timestep-distilled: 4 steps, no guidance (``guidance_scale`` 0), T5 prompts of at most 256
tokens. Settings (``AdapterSettings``):

- ``quantization``: ``nf4`` loads the transformer and the T5 encoder (``text_encoder_2``) in bitsandbytes
  4-bit NF4 with bf16 compute: about 10 GB of weights instead of 33.7 GB in bf16, which is what a
  single consumer GPU can hold. bitsandbytes quantizes on CUDA only: without CUDA the adapter logs a
  warning and loads unquantized. ``auto`` means ``nf4`` on CUDA and ``none`` on CPU. ``none`` is taken at
  its word (bf16 on CUDA). ``int8wo`` is not offered for FLUX (``AdapterError``).
- ``dtype``: ``auto`` is bf16 on CUDA and fp32 on CPU.
- ``cpu_offload``: model CPU offload, on CUDA only (ignored with a log line on CPU).
- ``num_inference_steps`` (default 4) and ``guidance_scale`` (default 0.0) override schnell's values.

Every keyframe is drawn from a CPU ``torch.Generator`` seeded with the given seed, so a seed gives the
same latents on any device; using one seed for every keyframe of a video is the caller's choice.
"""

from __future__ import annotations

import gc
import logging
from typing import Any, ClassVar

from i2v_dagster.errors import AdapterError, ModelLoadError
from i2v_dagster.models.base import AdapterSettings, GeneratedImage, ImageModel
from i2v_dagster.models.constraints import ImageConstraints, SizeRule

DEFAULT_STEPS = 4
DEFAULT_GUIDANCE = 0.0
MAX_SEQUENCE_LENGTH = 256
"""T5 prompt tokens: schnell was distilled with 256 (dev uses 512)."""

NF4_FALLBACK_MESSAGE = "NF4 quantization needs CUDA (bitsandbytes); loading %s unquantized in %s on %s"
"""Logged (warning) when ``nf4`` is asked for on a machine without CUDA."""


class FluxSchnell(ImageModel):
    """Text-to-image keyframes with FLUX.1-schnell (``FluxPipeline``); the pipeline lives in ``self.pipe``."""

    name = "flux_schnell"
    large = True
    weights_gb = 10.0
    """NF4 (the CUDA configuration): transformer 6.69 + T5-XXL 2.87 + CLIP-L 0.25 + VAE 0.17 GB. Computed on
    the meta device from ../shared/model-configs/flux.1-schnell: 4 bits per Linear weight plus one fp32
    absmax per 64 weights; everything else bf16."""
    weights_gb_bf16: ClassVar[float] = 33.7
    """All four modules in bf16 (transformer 23.8 + T5-XXL 9.5 + CLIP-L 0.25 + VAE 0.17 GB)."""
    default_repo = "black-forest-labs/FLUX.1-schnell"
    allow_patterns = (
        "model_index.json",
        "scheduler/*.json",
        "tokenizer/*",
        "tokenizer_2/*",
        "text_encoder/*.json",
        "text_encoder/*.safetensors",
        "text_encoder_2/*.json",
        "text_encoder_2/*.safetensors",
        "transformer/*.json",
        "transformer/*.safetensors",
        "vae/*.json",
        "vae/*.safetensors",
    )
    """The diffusers-format folders only: not the single-file ``flux1-schnell.safetensors`` (23.8 GB, the
    same transformer again) nor ``ae.safetensors``."""
    constraints = ImageConstraints(size=SizeRule(multiple_of=16, min_side=64, max_side=2048))
    """Latents are 8x smaller and packed in 2x2 patches: sides multiple of 16. Native 720x480 works."""

    def __init__(self, settings: AdapterSettings | None = None, *, logger: logging.Logger | None = None):
        super().__init__(settings, logger=logger)
        self.pipe: Any = None
        self.device: str = "cpu"
        self.quantized: bool = False
        """Whether the loaded pipeline holds NF4 modules."""

    # -- loading -------------------------------------------------------------------------------------

    def _load(self) -> None:
        from i2v_dagster.models._compat import ensure_torch_stack

        ensure_torch_stack()
        import torch
        from diffusers import FluxPipeline

        s = self.settings
        self.device = _resolve_device(s.device, torch, self.name)
        dtype = _resolve_dtype(s.dtype, self.device, torch, self.name)
        quantization = self._effective_quantization(dtype)
        kwargs: dict[str, Any] = {"revision": s.revision, "cache_dir": s.cache_dir, "dtype": dtype}
        if quantization == "nf4":
            kwargs["quantization_config"] = _nf4_config(torch)
        self.log.info(
            "loading %s from %s (revision %s, %s, quantization %s, %s)",
            self.name,
            self.model_id,
            s.revision,
            dtype,
            quantization,
            self.device,
        )
        try:
            pipe = FluxPipeline.from_pretrained(self.model_id, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"{self.name}: cannot load FluxPipeline from {self.model_id!r}: {exc}"
            ) from exc
        self.quantized = quantization == "nf4"
        self._place(pipe)
        if s.vae_tiling:
            pipe.vae.enable_tiling()
        if s.vae_slicing:
            pipe.vae.enable_slicing()
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe

    def _effective_quantization(self, dtype) -> str:
        q = self.settings.quantization
        if q not in ("none", "nf4", "auto"):
            raise AdapterError(f"quantization: {self.name} supports none, nf4 or auto, not {q!r}")
        if q == "auto":
            return "nf4" if self.device == "cuda" else "none"
        if q == "nf4" and self.device != "cuda":
            self.log.warning(NF4_FALLBACK_MESSAGE, self.name, _dtype_name(dtype), self.device)
            return "none"
        return q

    def _place(self, pipe) -> None:
        if self.device != "cuda":
            if self.settings.cpu_offload:
                self.log.info("%s: cpu_offload needs an accelerator; ignored on %s", self.name, self.device)
            pipe.to(self.device)
            return
        if self.settings.cpu_offload:
            pipe.enable_model_cpu_offload()
        else:
            pipe.to("cuda")

    def _unload(self) -> None:
        self.pipe = None
        self.quantized = False
        gc.collect()
        _empty_cuda_cache()

    # -- generating ----------------------------------------------------------------------------------

    def generate(self, prompt: str, *, width: int, height: int, seed: int) -> GeneratedImage:
        """One keyframe of ``width`` x ``height`` for ``prompt``, drawn from ``seed``."""
        errors = self.constraints.check(self.name, width=width, height=height)
        if errors:
            raise AdapterError("; ".join(errors))
        self.load()
        import torch

        s = self.settings
        steps = s.num_inference_steps or DEFAULT_STEPS
        guidance = DEFAULT_GUIDANCE if s.guidance_scale is None else s.guidance_scale
        generator = torch.Generator("cpu").manual_seed(int(seed))
        with torch.inference_mode():
            out = self.pipe(
                prompt=prompt,
                width=width,
                height=height,
                num_inference_steps=steps,
                guidance_scale=guidance,
                max_sequence_length=MAX_SEQUENCE_LENGTH,
                generator=generator,
                output_type="pil",
            )
        image = out.images[0].convert("RGB")
        return GeneratedImage(image=image, prompt=prompt, seed=seed, model_id=self.model_id)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["quantized_nf4"] = self.quantized
        return info


def _nf4_config(torch):
    """NF4 for the transformer (diffusers' bitsandbytes config) and the T5 encoder (transformers')."""
    from diffusers import BitsAndBytesConfig as DiffusersBnb
    from diffusers import PipelineQuantizationConfig
    from transformers import BitsAndBytesConfig as TransformersBnb

    kw = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": torch.bfloat16}
    return PipelineQuantizationConfig(
        quant_mapping={"transformer": DiffusersBnb(**kw), "text_encoder_2": TransformersBnb(**kw)}
    )


def _resolve_device(device: str, torch, adapter: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device: {adapter} was asked for cuda, but torch sees no CUDA device")
    if device not in ("cpu", "cuda"):
        raise AdapterError(f"device: {adapter} runs on auto, cpu or cuda, not {device!r}")
    return device


def _resolve_dtype(dtype: str, device: str, torch, adapter: str):
    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    if dtype not in table:
        raise AdapterError(f"dtype: {adapter} takes auto, bf16, fp16 or fp32, not {dtype!r}")
    return table[dtype]


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
