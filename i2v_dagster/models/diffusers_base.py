"""One loading path for every diffusers pipeline adapter (FLUX.1-schnell and the video models).

:class:`DiffusersAdapter` resolves the device, asks the memory planner (:mod:`i2v_dagster.models.memory`)
where the weights go, loads the pipeline with ``from_pretrained`` (dtype, quantization) from a hub id or a
local folder, sets VAE tiling/slicing and places it (on the device, or model/sequential CPU offload).
Subclasses name their pipeline class and what differs (fp16 allowed, VAE kept in fp32, the size to plan
for) and add their generate method.

On CUDA the ``auto`` settings are the planner's choice for the card's free memory
(``torch.cuda.mem_get_info``) and the clip size to plan for (option ``plan_size: [width, height, frames]``,
else the model's native size); the chosen placement is logged as one line before any weights load, and a
stage that cannot fit is refused (:class:`ModelLoadError` with the estimate and the fix). On CPU ``auto``
is fp32 without quantization; ``nf4`` falls back to plain weights with a warning (bitsandbytes needs CUDA)
and ``cpu_offload`` is ignored with a log line.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from i2v_dagster.errors import AdapterError, ModelLoadError
from i2v_dagster.models._torch import (
    check_pipeline_folder,
    check_sentencepiece,
    configure_vae,
    dtype_name,
    free_memory,
    guard_cpu_offload,
    hub_kwargs,
    load_errors,
    resolve_device,
    resolve_dtype,
    weights_source,
)
from i2v_dagster.models.base import Adapter, AdapterSettings
from i2v_dagster.models.memory import StagePlan, cuda_free_gb, plan_stage

if TYPE_CHECKING:
    import logging

QUANTIZATIONS = ("auto", "none", "int8wo", "nf4")


class DiffusersAdapter(Adapter):
    """A diffusers pipeline behind an adapter, held in ``self.pipe``; ``self.plan`` is the placement used."""

    large = True
    pipeline_class: ClassVar[str] = ""
    accepts_pipelines: ClassVar[tuple[str, ...]] = ()
    """Other ``_class_name`` values of a saved folder's ``model_index.json`` this adapter loads."""
    quantizations: ClassVar[tuple[str, ...]] = QUANTIZATIONS
    fp16_ok: ClassVar[bool] = True
    """False where fp16 overflows (CogVideoX-5B): asking for it is an :class:`AdapterError`."""
    vae_fp32: ClassVar[bool] = False
    """Keep the VAE in fp32 whatever the pipeline's dtype (the model card's advice)."""
    text_encoder_module: ClassVar[str] = "text_encoder"
    """The large text encoder the planner may quantize."""
    spiece_tokenizer: ClassVar[bool] = False
    """The repo's ``tokenizer/`` is a ``spiece.model`` without ``tokenizer.json``: transformers reads it
    through sentencepiece's protobuf module, which is checked before any weights load."""
    default_plan_size: ClassVar[tuple[int, int, int]] = (1024, 1024, 1)
    """(width, height, frames) planned for when ``options.plan_size`` is not given."""

    def __init__(self, settings: AdapterSettings | None = None, *, logger: logging.Logger | None = None):
        super().__init__(settings, logger=logger)
        self.pipe: Any = None
        self.plan: StagePlan | None = None
        self._used: dict[str, Any] = {}

    # ----- planning -----

    @property
    def plan_size(self) -> tuple[int, int, int]:
        """(width, height, frames) the memory plan is made for: ``options.plan_size`` or the default."""
        raw = self.settings.options.get("plan_size")
        if raw is None:
            return self.default_plan_size
        ok = isinstance(raw, list | tuple) and len(raw) in (2, 3) and all(isinstance(v, int) for v in raw)
        if not ok or not all(v > 0 for v in raw):
            raise AdapterError(
                f"options.plan_size: {self.name} takes [width, height] or [width, height, frames] "
                f"(positive integers), got {raw!r}"
            )
        width, height, *frames = raw
        return width, height, frames[0] if frames else 1

    def _plan(self, device) -> StagePlan:
        """The placement for ``device``: the planner's choice on CUDA, the settings (``auto`` = fp32, no
        quantization) elsewhere."""
        s = self.settings
        if s.quantization not in self.quantizations:
            allowed = ", ".join(self.quantizations)
            raise AdapterError(f"quantization: {self.name} takes {allowed}, got {s.quantization!r}")
        resolve_dtype(self.name, s.dtype, device, allow_fp16=self.fp16_ok)  # validates the setting
        width, height, frames = self.plan_size
        if device.type != "cuda":
            if s.quantization == "nf4":
                self.log.warning(
                    "%s: nf4 needs bitsandbytes on CUDA; loading unquantized on %s", self.name, device.type
                )
            guard_cpu_offload(self.log, self.name, s.cpu_offload, device)
            plan = plan_stage(
                self.name, s, width=width, height=height, frames=frames, free_gb=0.0, device=device.type
            )
            if s.quantization == "auto":
                self.log.info("%s: quantization auto -> none on %s", self.name, device.type)
            if s.dtype == "auto":
                self.log.info("%s: dtype auto -> %s on %s", self.name, plan.dtype, device.type)
            return plan
        plan = plan_stage(
            self.name, s, width=width, height=height, frames=frames, free_gb=cuda_free_gb(device)
        )
        self.log.info("%s: memory plan for %dx%dx%d: %s", self.name, width, height, frames, plan.describe())
        if not plan.fits:
            if s.quantization == "auto":
                raise ModelLoadError(f"{self.name} cannot fit this GPU: {plan.describe()}")
            self.log.warning("%s: the settings as given may not fit: %s", self.name, plan.fix)
        return plan

    # ----- loading -----

    def _load(self) -> None:
        from i2v_dagster.models._compat import ensure_torch_stack

        ensure_torch_stack()
        import diffusers
        import torch

        device = resolve_device(self.name, self.settings.device)
        plan = self._plan(device)
        dtype = resolve_dtype(self.name, plan.dtype, device, allow_fp16=self.fp16_ok)
        started = time.monotonic()
        pipe = self._from_pretrained(getattr(diffusers, self.pipeline_class), plan, dtype, torch)
        configure_vae(pipe, tiling=plan.vae_tiling, slicing=self.settings.vae_slicing)
        self._place(pipe, device, plan)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.plan = plan
        self._used = {
            "dtype": dtype_name(dtype),
            "vae_dtype": dtype_name(pipe.vae.dtype),
            "device": str(device),
            "quantization_used": plan.quantization,
            "text_encoder_quantization": plan.placement.text_encoder_quantization,
            "cpu_offload": plan.placement.offload if device.type == "cuda" else False,
            "pipeline": type(pipe).__name__,
            "memory_plan": plan.describe(),
        }
        self.log.info(
            "%s: loaded %s in %.1f s (%s)", self.name, self.model_id, time.monotonic() - started, self._used
        )

    def _quantization_config(self, plan: StagePlan, dtype) -> Any:
        """``PipelineQuantizationConfig`` for the plan's transformer and text encoder, or None."""
        placement = plan.placement
        mapping: dict[str, Any] = {}
        if placement.quantization != "none":
            mapping["transformer"] = _backend("diffusers", placement.quantization, dtype)
        if placement.text_encoder_quantization != "none":
            mapping[self.text_encoder_module] = _backend(
                "transformers", placement.text_encoder_quantization, dtype
            )
        if not mapping:
            return None
        import diffusers

        return diffusers.PipelineQuantizationConfig(quant_mapping=mapping)

    def _from_pretrained(self, pipeline_cls, plan: StagePlan, dtype, torch):
        source, local = weights_source(self.name, self.model_id)
        if local:
            check_pipeline_folder(self.name, Path(source), (self.pipeline_class, *self.accepts_pipelines))
        if self.spiece_tokenizer and not (local and (Path(source) / "tokenizer" / "tokenizer.json").exists()):
            check_sentencepiece(self.name)
        kwargs: dict[str, Any] = {
            "dtype": {"default": dtype, "vae": torch.float32} if self.vae_fp32 else dtype,
            **hub_kwargs(self.settings, local=local, default_revision=self.default_revision),
        }
        quantization = self._quantization_config(plan, dtype)
        if quantization is not None:
            kwargs["quantization_config"] = quantization
        with load_errors(self.name, self.pipeline_class, source):
            return pipeline_cls.from_pretrained(source, **kwargs)

    def _place(self, pipe: Any, device, plan: StagePlan) -> None:
        offload = plan.placement.offload if device.type == "cuda" else "none"
        if offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe.to(device)

    @classmethod
    def from_pipeline(
        cls, pipe: Any, settings: AdapterSettings | None = None, *, logger: logging.Logger | None = None
    ) -> Self:
        """An adapter around a pipeline built in memory (benchmarks), loaded: the settings' VAE
        tiling/slicing apply; dtype, device and quantization are the pipeline's own."""
        adapter = cls(settings, logger=logger)
        configure_vae(pipe, tiling=adapter.settings.vae_tiling, slicing=adapter.settings.vae_slicing)
        pipe.set_progress_bar_config(disable=True)
        adapter.pipe = pipe
        adapter._used = {"source": "in-memory", "dtype": dtype_name(pipe.dtype)}
        adapter._loaded = True
        return adapter

    def _unload(self) -> None:
        self.pipe = None
        self.plan = None
        self._used = {}
        free_memory()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self._used}


def _backend(library: str, quantization: str, dtype) -> Any:
    """The quantization config of ``library`` (``diffusers`` or ``transformers``) for one module."""
    import importlib

    lib = importlib.import_module(library)
    if quantization == "int8wo":
        from torchao.quantization import Int8WeightOnlyConfig

        return lib.TorchAoConfig(Int8WeightOnlyConfig())
    return lib.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
