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

``quantization`` ``int8dq`` and ``fp8`` are torchao's dynamic int8 and float8 (per-row) schemes on the
transformer; ``fp8`` asked for on a device without compute capability 8.9 is refused before the plan.

The speed settings (options ``compile``, ``cache``, ``cache_threshold``, ``cache_interval``,
``attention_backend``; :class:`DiffusersOptions`) are planned by :mod:`i2v_dagster.models.speed` for the
device before any weights load (an explicit setting the device cannot honour is an :class:`AdapterError`
naming it; ``auto`` choices are logged), applied once the pipeline is placed (cache hooks, blocks marked for
compilation), and every pipeline call runs under them (:meth:`DiffusersAdapter._call_pipeline`). With
``compile`` on, the first clip after a load pays the build (logged with its length); the compiled blocks
serve every later clip of the loaded pipeline.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from i2v_dagster.errors import AdapterError, ModelLoadError
from i2v_dagster.models import speed
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
from i2v_dagster.models.base import Adapter, AdapterOptions, AdapterSettings
from i2v_dagster.models.memory import StagePlan, cuda_free_gb, plan_stage

if TYPE_CHECKING:
    import logging

QUANTIZATIONS = ("auto", "none", "int8wo", "int8dq", "fp8", "nf4")

Side = Annotated[int, Field(gt=0, le=16384)]


class DiffusersOptions(AdapterOptions):
    """Options every diffusers pipeline adapter takes: the size its memory plan is made for, and the speed
    settings (see :mod:`i2v_dagster.models.speed` for what each does and what ``auto`` picks)."""

    fixed_attention: ClassVar[str | None] = None
    """Why only torch's native attention reaches this model (None: diffusers' dispatcher does)."""

    plan_size: list[Side] | None = Field(
        None,
        min_length=2,
        max_length=3,
        description="[width, height] or [width, height, frames] the memory plan is made for (default: the "
        "model's native size; the pipeline sets the spec's size).",
    )
    compile: speed.CompileSetting = Field(
        "auto",
        description="Regional torch.compile of the transformer's repeated blocks, kept for every clip of the "
        "loaded pipeline; the first clip pays the build. auto: on with CUDA (and triton), off on CPU.",
    )
    cache: speed.CacheSetting = Field(
        "auto",
        description="Reuse transformer work across denoising steps (diffusers' hooks): first_block (First "
        "Block Cache), pab (Pyramid Attention Broadcast), taylorseer (TaylorSeer, lite); none. auto: none "
        "(no threshold measured against quality yet).",
    )
    cache_threshold: float | None = Field(
        None,
        gt=0,
        le=1,
        description="first_block only: skip the other blocks while the first block's residual changes by "
        "less than this (relative mean); default 0.05. Higher is faster and less faithful.",
    )
    cache_interval: int | None = Field(
        None,
        ge=2,
        le=20,
        description="pab and taylorseer only: a full computation every this many steps (default pab 2, "
        "taylorseer 5).",
    )
    attention_backend: speed.AttentionSetting = Field(
        "auto",
        description="Attention kernel: native (torch SDPA), flash (flash-attn 2), flash3 (FlashAttention-3, "
        "Hopper), sage (SageAttention, lossy). auto: flash3 where installed on a Hopper card, else native.",
    )

    @field_validator("cache_threshold")
    @classmethod
    def _threshold_with_first_block(cls, value: float | None, info: ValidationInfo) -> float | None:
        cache = info.data.get("cache")
        if value is not None and cache is not None and cache != "first_block":
            raise PydanticCustomError(
                "cache_option", "applies to cache first_block only, not {cache}", {"cache": cache}
            )
        return value

    @field_validator("cache_interval")
    @classmethod
    def _interval_with_pab_or_taylorseer(cls, value: int | None, info: ValidationInfo) -> int | None:
        cache = info.data.get("cache")
        if value is not None and cache is not None and cache not in ("pab", "taylorseer"):
            raise PydanticCustomError(
                "cache_option", "applies to cache pab or taylorseer only, not {cache}", {"cache": cache}
            )
        return value

    @field_validator("attention_backend")
    @classmethod
    def _backend_reaches_the_model(cls, value: str) -> str:
        if cls.fixed_attention is not None and value not in ("auto", "native"):
            raise PydanticCustomError(
                "attention_backend",
                "only auto or native reach this model: {why}",
                {"why": cls.fixed_attention},
            )
        return value


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
    Options: ClassVar[type[DiffusersOptions]] = DiffusersOptions
    compile_blocks: ClassVar[tuple[str, ...]] = ()
    """Classes of the transformer's repeated blocks that ``compile`` compiles (regional compilation)."""
    attention_masked: ClassVar[bool] = False
    """The transformer masks keys (text padding): attention backends use their variable-length kernels."""
    sets_cache_context: ClassVar[bool] = True
    """The pipeline wraps each transformer call in ``cache_context`` (the stateful cache hooks need one)."""

    def __init__(self, settings: AdapterSettings | None = None, *, logger: logging.Logger | None = None):
        super().__init__(settings, logger=logger)
        self.pipe: Any = None
        self.plan: StagePlan | None = None
        self.speed: speed.SpeedPlan = speed.SpeedPlan()
        self._used: dict[str, Any] = {}
        self._calls = 0

    # ----- planning -----

    @property
    def plan_size(self) -> tuple[int, int, int]:
        """(width, height, frames) the memory plan is made for: ``options.plan_size`` or the default."""
        raw = self.options.plan_size
        if raw is None:
            return self.default_plan_size
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
        card = speed.card_of(device)
        speed.check_quantization(self.name, self.settings.quantization, card)
        plan = self._plan(device)
        dtype = resolve_dtype(self.name, plan.dtype, device, allow_fp16=self.fp16_ok)
        fast = self._plan_speed(card, plan)
        started = time.monotonic()
        pipe = self._from_pretrained(getattr(diffusers, self.pipeline_class), plan, dtype, torch)
        configure_vae(pipe, tiling=plan.vae_tiling, slicing=self.settings.vae_slicing)
        self._place(pipe, device, plan)
        speed.apply_speed(self.name, pipe, fast, compile_blocks=self.compile_blocks, log=self.log)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.plan = plan
        self.speed = fast
        self._calls = 0
        self._used = {
            "dtype": dtype_name(dtype),
            "vae_dtype": dtype_name(pipe.vae.dtype),
            "device": str(device),
            "quantization_used": plan.quantization,
            "text_encoder_quantization": plan.placement.text_encoder_quantization,
            "cpu_offload": plan.placement.offload if device.type == "cuda" else False,
            "pipeline": type(pipe).__name__,
            "memory_plan": plan.describe(),
            **fast.describe(),
        }
        self.log.info(
            "%s: loaded %s in %.1f s (%s)", self.name, self.model_id, time.monotonic() - started, self._used
        )

    def _plan_speed(self, card: speed.Card, plan: StagePlan) -> speed.SpeedPlan:
        """The speed settings for ``card`` (refusals before any weights load; ``auto`` choices logged)."""
        offload = plan.placement.offload if card.type == "cuda" else "none"
        fast = speed.plan_speed(
            self.name, self.options, card=card, dtype=plan.dtype, offload=offload,
            quantization=plan.quantization, attention_masked=self.attention_masked,
            fixed_attention=self.Options.fixed_attention,
        )  # fmt: skip
        speed.log_notes(self.log, fast)
        self.log.info("%s: speed: %s", self.name, fast.text())
        return fast

    def _call_pipeline(self, **kwargs: Any) -> Any:
        """``self.pipe(**kwargs)`` under the speed plan (attention backend, cache context); the first call
        after a load with ``compile`` on is logged with its length (it includes the build)."""
        started = time.monotonic()
        with speed.run_context(self.pipe, self.speed, sets_cache_context=self.sets_cache_context):
            output = self.pipe(**kwargs)
        self._calls += 1
        if self.speed.compile and self._calls == 1:
            self.log.info(
                "%s: first call with compiled blocks took %.1f s (includes the build; later calls reuse it)",
                self.name,
                time.monotonic() - started,
            )
        return output

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

    def apply_speed(self, fast: speed.SpeedPlan) -> None:
        """Apply ``fast`` to the pipeline built in memory (:meth:`from_pipeline`; benchmarks)."""
        speed.apply_speed(self.name, self.pipe, fast, compile_blocks=self.compile_blocks, log=self.log)
        self.speed = fast
        self._calls = 0
        self._used.update(fast.describe())

    def _unload(self) -> None:
        # Compiled blocks keep no reference to the weights (torch.compile takes module parameters as graph
        # inputs), so dropping the pipeline frees them; dynamo keeps its compiled code for a later load.
        self.pipe = None
        self.plan = None
        self.speed = speed.SpeedPlan()
        self._used = {}
        free_memory()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self._used}


def torchao_config(quantization: str) -> Any:
    """torchao's config for ``int8wo``, ``int8dq`` or ``fp8`` (what ``TorchAoConfig`` wraps)."""
    from torchao import quantization as ao

    if quantization == "int8wo":
        return ao.Int8WeightOnlyConfig()
    if quantization == "int8dq":
        return ao.Int8DynamicActivationInt8WeightConfig()
    if quantization == "fp8":
        return ao.Float8DynamicActivationFloat8WeightConfig(granularity=ao.PerRow())
    raise ValueError(f"no torchao config for quantization {quantization!r}")


def _backend(library: str, quantization: str, dtype) -> Any:
    """The quantization config of ``library`` (``diffusers`` or ``transformers``) for one module."""
    import importlib

    lib = importlib.import_module(library)
    if quantization != "nf4":
        return lib.TorchAoConfig(torchao_config(quantization))
    return lib.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
