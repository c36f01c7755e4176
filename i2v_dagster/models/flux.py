"""FLUX.1-schnell keyframes through diffusers' ``FluxPipeline``.

Schnell is timestep-distilled: 4 steps, no guidance (``guidance_scale`` 0), T5 prompts of at most 256
tokens. Loading is :class:`~i2v_dagster.models.diffusers_base.DiffusersAdapter`'s. Settings:

- ``quantization``: ``nf4`` loads the transformer and the T5 encoder (``text_encoder_2``) in bitsandbytes
  4-bit NF4 with bf16 compute: 11.4 GB of weights instead of 33.7 GB in bf16 (T5's ``wo`` layers stay
  bf16: transformers keeps ``_keep_in_fp32_modules`` out of quantization). bitsandbytes quantizes on CUDA
  only: without CUDA the adapter logs a warning and loads unquantized. ``auto`` is the memory planner's
  choice on CUDA (bf16 when the card holds it, else NF4, else CPU offload) and ``none`` on CPU. ``none``
  is taken at its word. ``int8dq`` and ``fp8`` (torchao, the transformer only; fp8 on compute capability
  8.9+) are speed settings, best with ``compile``. ``int8wo`` is not offered for FLUX (``AdapterError``).
- ``dtype``: ``auto`` is bf16 on CUDA and fp32 on CPU.
- ``cpu_offload``: model CPU offload, on CUDA only (ignored with a log line on CPU).
- ``num_inference_steps`` (default 4) and ``guidance_scale`` (default 0.0) override schnell's values.
- ``options`` (:class:`~i2v_dagster.models.diffusers_base.DiffusersOptions`): ``plan_size``
  (``[width, height]`` the memory plan is made for, default 1024x1024) and the speed settings ``compile``,
  ``cache``, ``cache_threshold``, ``cache_interval``, ``attention_backend``
  (:mod:`i2v_dagster.models.speed`). With 4 steps a cache has little to reuse: ``auto`` leaves it off.

Every keyframe is drawn from a CPU ``torch.Generator`` seeded with the given seed, so a seed gives the
same latents on any device; using one seed for every keyframe of a video is the caller's choice.
"""

from __future__ import annotations

from typing import Any, ClassVar

from i2v_dagster.errors import AdapterError
from i2v_dagster.models import memory
from i2v_dagster.models.base import GeneratedImage, ImageModel
from i2v_dagster.models.constraints import ImageConstraints, SizeRule
from i2v_dagster.models.diffusers_base import DiffusersAdapter

DEFAULT_STEPS = 4
DEFAULT_GUIDANCE = 0.0
MAX_SEQUENCE_LENGTH = 256
"""T5 prompt tokens: schnell was distilled with 256 (dev uses 512)."""

NF4 = memory.Placement(quantization="nf4", text_encoder_quantization="nf4")


class FluxSchnell(DiffusersAdapter, ImageModel):
    """Text-to-image keyframes with FLUX.1-schnell (``FluxPipeline``); the pipeline lives in ``self.pipe``."""

    name = "flux_schnell"
    weights_gb = round(memory.weights_gb("flux_schnell", NF4), 1)
    """NF4 (what a 24 GB card gets): transformer 6.69 + T5-XXL 4.32 (its 24 ``wo`` layers stay bf16) +
    CLIP-L 0.25 + VAE 0.17 GB, from the meta-device counts in :data:`~i2v_dagster.models.memory.MEASURED`."""
    weights_gb_bf16: ClassVar[float] = round(memory.weights_gb("flux_schnell"), 1)
    """All four modules in bf16 (transformer 23.8 + T5-XXL 9.5 + CLIP-L 0.25 + VAE 0.17 GB)."""
    default_repo = "black-forest-labs/FLUX.1-schnell"
    pipeline_class = "FluxPipeline"
    quantizations = ("auto", "none", "nf4", "int8dq", "fp8")
    text_encoder_module = "text_encoder_2"
    compile_blocks = ("FluxTransformerBlock", "FluxSingleTransformerBlock")
    default_plan_size = (1024, 1024, 1)
    allow_patterns = (
        "model_index.json",
        "scheduler/*.json",
        "tokenizer/*",
        "tokenizer_2/*.json",
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
    same transformer again) nor ``ae.safetensors``; T5's ``tokenizer.json``, not its duplicate
    ``spiece.model``."""
    constraints = ImageConstraints(size=SizeRule(multiple_of=16, min_side=64, max_side=2048))
    """Latents are 8x smaller and packed in 2x2 patches: sides multiple of 16. Native 720x480 works."""

    @property
    def quantized(self) -> bool:
        """Whether the loaded pipeline holds NF4 modules."""
        return self.plan is not None and self.plan.quantization == "nf4"

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
            out = self._call_pipeline(
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
        return {**super().describe(), "quantized_nf4": self.quantized}
