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

import logging
from pathlib import Path
from typing import Any, ClassVar

from i2v_dagster.errors import AdapterError
from i2v_dagster.models._torch import (
    auto_quantization,
    check_pipeline_folder,
    configure_vae,
    dtype_name,
    free_memory,
    hub_kwargs,
    load_errors,
    place_pipeline,
    resolve_device,
    resolve_dtype,
    weights_source,
)
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
        from diffusers import FluxPipeline

        s = self.settings
        device = resolve_device(self.name, s.device)
        dtype = resolve_dtype(self.name, s.dtype, device, log=self.log)
        quantization = self._effective_quantization(device, dtype)
        source, local = weights_source(self.name, self.model_id)
        if local:
            check_pipeline_folder(self.name, Path(source), ("FluxPipeline",))
        hub = hub_kwargs(s, local=local, default_revision=self.default_revision)
        kwargs: dict[str, Any] = {"dtype": dtype, **hub}
        if quantization == "nf4":
            kwargs["quantization_config"] = _nf4_config()
        self.log.info(
            "loading %s from %s (revision %s, %s, quantization %s, %s)",
            self.name,
            self.model_id,
            s.revision,
            dtype_name(dtype),
            quantization,
            device,
        )
        with load_errors(self.name, "FluxPipeline", source):
            pipe = FluxPipeline.from_pretrained(source, **kwargs)
        self.device = str(device)
        self.quantized = quantization == "nf4"
        place_pipeline(self.log, self.name, pipe, device, cpu_offload=s.cpu_offload)
        configure_vae(pipe, s)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe

    def _effective_quantization(self, device, dtype) -> str:
        """The quantization to load with on ``device``: ``auto`` is nf4 on CUDA; nf4 falls back off CUDA."""
        asked = self.settings.quantization
        if asked not in ("none", "nf4", "auto"):
            raise AdapterError(f"quantization: {self.name} supports none, nf4 or auto, not {asked!r}")
        chosen = auto_quantization(self.log, self.name, asked, device, on_cuda="nf4")
        if chosen == "nf4" and device.type != "cuda":
            self.log.warning(NF4_FALLBACK_MESSAGE, self.name, dtype_name(dtype), device.type)
            return "none"
        return chosen

    def _unload(self) -> None:
        self.pipe = None
        self.quantized = False
        free_memory()

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
        info["quantization_used"] = "nf4" if self.quantized else "none"
        return info


def _nf4_config():
    """NF4 with bf16 compute for the transformer (diffusers' bitsandbytes config) and the T5 encoder
    (transformers')."""
    import torch
    from diffusers import BitsAndBytesConfig as DiffusersBnb
    from diffusers import PipelineQuantizationConfig
    from transformers import BitsAndBytesConfig as TransformersBnb

    kw = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": torch.bfloat16}
    return PipelineQuantizationConfig(
        quant_mapping={"transformer": DiffusersBnb(**kw), "text_encoder_2": TransformersBnb(**kw)}
    )
