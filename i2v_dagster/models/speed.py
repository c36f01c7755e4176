"""Speed settings of the diffusers adapters: regional compilation, a caching hook, the attention backend, and
the card checks of the low-precision quantizations.

:func:`plan_speed` turns an adapter's options (``compile``, ``cache``, ``cache_threshold``,
``cache_interval``, ``attention_backend``) into a :class:`SpeedPlan` for the device it loads on, before any
weights load: an explicit setting the card or the installed packages cannot honour is an
:class:`~i2v_dagster.errors.AdapterError` naming the setting and the reason; an ``auto`` setting falls back
and says so in :attr:`SpeedPlan.notes` (the adapter logs each note). :func:`apply_speed` then applies the
plan to a loaded pipeline, and :func:`run_context` wraps each pipeline call (attention backend, cache
context).

- ``compile`` (``auto`` | ``on`` | ``off``): regional compilation, ``torch.compile`` of each repeated
  transformer block (``nn.Module.compile``, what diffusers' ``compile_repeated_blocks`` does, with the block
  classes named per adapter: CogVideoX's transformer lists none, and HunyuanVideo-I2V's list misses its
  token-replace blocks). Nothing is compiled at load: the **first clip pays** the trace and the Inductor
  build, once per distinct block class (its first denoising step is that much longer; the benchmark reports
  it as "1st step s"), and a clip of another shape (frame count, size) compiles again; later clips of the
  same loaded pipeline reuse the compiled blocks, and Inductor's on-disk cache shortens the build in a later
  process. ``auto`` compiles on CUDA when triton is importable, the weights are not streamed by
  sequential offload and not in bitsandbytes' nf4 (whose layers break the graphs); never on CPU (a CPU
  build costs more than the clip).
- ``cache`` (``auto`` | ``none`` | ``first_block`` | ``pab`` | ``taylorseer``): one of diffusers' caching
  hooks on the transformer, reusing work across denoising steps at a small quality cost: First Block Cache
  (the remaining blocks are skipped while the first block's residual changes by less than
  ``cache_threshold``, default 0.05), Pyramid Attention Broadcast (spatial attention recomputed every
  ``cache_interval`` steps, default 2, between timesteps 100 and 800), TaylorSeer (lite mode: the blocks are
  skipped and the output projection predicted by a first-order Taylor step; a full step every
  ``cache_interval`` steps, default 5, after 3 full steps). ``auto`` is ``none``: no threshold has been
  measured against quality for these models yet. FasterCache (needs per-model guidance settings) and
  MagCache (needs per-checkpoint calibrated ratios; diffusers ships FLUX's only) are not offered.
- ``attention_backend`` (``auto`` | ``native`` | ``flash`` | ``flash3`` | ``sage``): diffusers' attention
  dispatcher for the transformer's attention: ``native`` is torch's scaled-dot-product attention (on CUDA it
  picks its own fused kernel), ``flash`` FlashAttention-2 (``flash-attn`` >= 2.6.3, compute capability
  8.0+), ``flash3`` FlashAttention-3 (``flash_attn_interface`` built from the FA3 sources, Hopper: 9.x),
  ``sage`` SageAttention (``sageattention`` >= 2.1.1, 8.0+; quantizes Q/K to int8, so it is lossy). All but
  ``native`` need CUDA and bf16/fp16. HunyuanVideo masks its text padding, so it gets the variable-length
  kernels of each family. CogVideoX's attention calls torch directly: only ``native`` reaches it. ``auto``
  is ``flash3`` on a Hopper card where it is installed (exact attention, faster than torch's kernels there),
  else ``native``; it never picks ``sage`` (lossy) or ``flash`` (no faster than torch's own FlashAttention-2
  kernel).
- ``quantization: fp8`` (torchao float8 dynamic activations and weights, per-row scales) needs CUDA compute
  capability 8.9+ (Ada, Hopper): asked for on anything else it is refused (:func:`check_quantization`).
  ``int8dq`` (torchao int8 dynamic activations + int8 weights) runs anywhere; both pay off with
  ``compile`` (a note says so when compile is off).

torch and diffusers are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from i2v_dagster.errors import AdapterError, ModelLoadError


def _switch_word(value: Any) -> Any:
    """YAML 1.1 reads a bare ``on``/``off`` (and ``true``/``false``) as a bool: take it as the word."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


CompileSetting = Annotated[Literal["auto", "on", "off"], BeforeValidator(_switch_word)]
CacheSetting = Literal["auto", "none", "first_block", "pab", "taylorseer"]
AttentionSetting = Literal["auto", "native", "flash", "flash3", "sage"]

FIRST_BLOCK_THRESHOLD = 0.05
"""diffusers' ``FirstBlockCacheConfig`` default."""
PAB_INTERVAL = 2
"""Spatial attention recomputed every 2nd step (diffusers' CogVideoX example)."""
PAB_TIMESTEPS = (100, 800)
TAYLORSEER_INTERVAL = 5
TAYLORSEER_WARMUP = 3
"""diffusers' ``TaylorSeerCacheConfig`` defaults: a full step every 5, caching from the 4th step."""
CACHE_INTERVALS = {"pab": PAB_INTERVAL, "taylorseer": TAYLORSEER_INTERVAL}

FP8_CAPABILITY = (8, 9)
"""float8 matmuls (torchao's dynamic float8) need compute capability 8.9 (Ada) or newer."""


@dataclass(frozen=True)
class Backend:
    """One ``attention_backend`` value: diffusers' backend names and what the card must have."""

    dense: str
    """diffusers' name of the kernel for attention without a mask."""
    masked: str
    """diffusers' name of the kernel that takes a key-padding mask (the variable-length one)."""
    min_capability: tuple[int, int]
    max_capability: tuple[int, int] | None = None
    """Exclusive upper bound (FlashAttention-3 is built for Hopper only)."""
    package: str = ""


BACKENDS: dict[str, Backend] = {
    "flash": Backend("flash", "flash_varlen", (8, 0), package="flash-attn>=2.6.3"),
    "flash3": Backend("_flash_3", "_flash_varlen_3", (9, 0), (10, 0), package="FlashAttention-3"),
    "sage": Backend("sage", "sage_varlen", (8, 0), package="sageattention>=2.1.1"),  # lossy: int8 Q/K
}
AUTO_BACKENDS = ("flash3",)
"""What ``attention_backend: auto`` tries on CUDA, fastest first, before ``native``: exact kernels only."""


@dataclass(frozen=True)
class Card:
    """The device an adapter loads on."""

    type: str
    """``cuda`` or ``cpu``."""
    name: str = ""
    capability: tuple[int, int] | None = None

    @property
    def text(self) -> str:
        if self.type != "cuda":
            return self.type
        major, minor = self.capability or (0, 0)
        return f"{self.name or 'CUDA device'} (compute capability {major}.{minor})"


def card_of(device: Any) -> Card:
    """The :class:`Card` of a ``torch.device``."""
    if device.type != "cuda":
        return Card(device.type)
    import torch

    return Card(
        "cuda",
        name=str(torch.cuda.get_device_name(device)),
        capability=tuple(torch.cuda.get_device_capability(device)),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class SpeedPlan:
    """The speed settings one loaded pipeline runs with."""

    compile: bool = False
    cache: str = "none"
    cache_threshold: float | None = None
    cache_interval: int | None = None
    attention: str = "native"
    """The ``attention_backend`` value in effect (never ``auto``)."""
    attention_backend: str | None = None
    """diffusers' backend name, None for native."""
    notes: tuple[str, ...] = field(default=(), compare=False)
    """What ``auto`` chose and why (one log line each)."""

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "compile": self.compile,
            "cache": self.cache,
            "attention_backend": self.attention,
        }
        if self.cache == "first_block":
            out["cache_threshold"] = self.cache_threshold
        elif self.cache != "none":
            out["cache_interval"] = self.cache_interval
        return out

    def text(self) -> str:
        cache = self.cache
        if self.cache == "first_block":
            cache += f" (threshold {self.cache_threshold:g})"
        elif self.cache != "none":
            cache += f" (interval {self.cache_interval})"
        return f"compile {'on' if self.compile else 'off'}, cache {cache}, attention {self.attention}"


# ----- probes (module functions, so tests can stand in for a card's software) -----


def triton_available() -> bool:
    """Whether torch.compile can build GPU kernels here (triton importable, as CUDA torch wheels ship it)."""
    try:
        from torch.utils._triton import has_triton
    except ImportError:
        return False
    return bool(has_triton())


def cpp_compiler() -> str | None:
    """The C++ compiler Inductor builds CPU kernels with (``CXX``, else g++ or clang++ on PATH)."""
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")


def backend_problem(name: str) -> str | None:
    """Why diffusers cannot use attention backend ``name`` (its diffusers name) here, or None."""
    try:
        from diffusers.models.attention_dispatch import (
            AttentionBackendName,
            _check_attention_backend_requirements,
        )
    except ImportError as exc:  # pragma: no cover - diffusers is part of the models extra
        return f"diffusers' attention dispatcher is not importable ({exc})"
    try:
        _check_attention_backend_requirements(AttentionBackendName(name))
    except (RuntimeError, ValueError) as exc:
        return str(exc)
    return None


# ----- planning -----


def check_quantization(adapter: str, quantization: str, card: Card) -> None:
    """Refuse ``fp8`` on a device without float8 matmuls (before any weights load)."""
    if quantization != "fp8":
        return
    if card.type != "cuda":
        raise AdapterError(
            f"quantization: fp8 needs a CUDA card with compute capability "
            f"{FP8_CAPABILITY[0]}.{FP8_CAPABILITY[1]}+ (Ada, Hopper); {adapter} runs on {card.type} here "
            "(int8dq runs anywhere)"
        )
    if card.capability is None or card.capability < FP8_CAPABILITY:
        raise AdapterError(
            f"quantization: fp8 needs compute capability {FP8_CAPABILITY[0]}.{FP8_CAPABILITY[1]}+ "
            f"(Ada, Hopper); {card.text} has no float8 matmuls (use int8dq or bf16)"
        )


def plan_speed(
    adapter: str,
    options: Any,
    *,
    card: Card,
    dtype: str,
    offload: str = "none",
    quantization: str = "none",
    attention_masked: bool = False,
    fixed_attention: str | None = None,
) -> SpeedPlan:
    """The :class:`SpeedPlan` of ``options`` (an adapter's ``Options``: ``compile``, ``cache``,
    ``cache_threshold``, ``cache_interval``, ``attention_backend``) on ``card`` with weights in ``dtype``
    (``bf16``, ``fp16``, ``fp32``), placed with ``offload`` and transformer ``quantization``.

    ``attention_masked``: the transformer passes a key-padding mask (variable-length kernels).
    ``fixed_attention``: why only ``native`` reaches the transformer's attention (None when diffusers'
    dispatcher does). Raises :class:`AdapterError` for an explicit setting that cannot run here."""
    notes: list[str] = []
    compiled = _plan_compile(adapter, options.compile, card, offload, quantization, notes)
    cache, threshold, interval = _plan_cache(adapter, options, notes)
    attention, backend = _plan_attention(
        adapter, options.attention_backend, card, dtype, attention_masked, fixed_attention, notes
    )
    if quantization in ("int8dq", "fp8") and not compiled and card.type == "cuda":
        notes.append(
            f"{adapter}: quantization {quantization} without compile: torchao's dynamic quantization is "
            "slower than bf16 in eager mode (set compile: on or auto)"
        )
    return SpeedPlan(
        compile=compiled, cache=cache, cache_threshold=threshold, cache_interval=interval,
        attention=attention, attention_backend=backend, notes=tuple(notes),
    )  # fmt: skip


def _plan_compile(
    adapter: str, asked: str, card: Card, offload: str, quantization: str, notes: list[str]
) -> bool:
    if asked == "off":
        return False
    if card.type == "cuda":
        problem = None
        if offload == "sequential":
            problem = "sequential CPU offload streams every layer from the CPU at each call"
        elif not triton_available():
            problem = "triton is not importable (torch.compile builds its CUDA kernels with it)"
        elif quantization == "nf4" and asked == "auto":
            notes.append(
                f"{adapter}: compile auto -> off: bitsandbytes' nf4 layers break torch.compile's graphs "
                "(set compile: on to try it)"
            )
            return False
        if problem is None:
            if asked == "auto":
                notes.append(f"{adapter}: compile auto -> on (CUDA; the first clip pays the build)")
            return True
        if asked == "on":
            raise AdapterError(f"compile: on cannot run for {adapter}: {problem}")
        notes.append(f"{adapter}: compile auto -> off: {problem}")
        return False
    if asked == "auto":
        notes.append(
            f"{adapter}: compile auto -> off on {card.type} (compiling costs more than it saves there)"
        )
        return False
    if cpp_compiler() is None:
        raise AdapterError(
            f"compile: on needs a C++ compiler for torch.compile on {card.type} (set CXX, or install g++ "
            f"or clang++); none found for {adapter}"
        )
    return True


def _plan_cache(adapter: str, options: Any, notes: list[str]) -> tuple[str, float | None, int | None]:
    cache = options.cache
    if cache == "auto":
        notes.append(
            f"{adapter}: cache auto -> none (no cache threshold has been measured against quality for this "
            "model yet; set cache: first_block, pab or taylorseer to trade quality for speed)"
        )
        return "none", None, None
    if cache == "none":
        return "none", None, None
    if cache == "first_block":
        threshold = options.cache_threshold if options.cache_threshold is not None else FIRST_BLOCK_THRESHOLD
        return cache, threshold, None
    interval = options.cache_interval if options.cache_interval is not None else CACHE_INTERVALS[cache]
    return cache, None, interval


def _plan_attention(
    adapter: str,
    asked: str,
    card: Card,
    dtype: str,
    masked: bool,
    fixed: str | None,
    notes: list[str],
) -> tuple[str, str | None]:
    if asked == "native":
        return "native", None
    if fixed is not None:
        if asked != "auto":  # the options model refuses this first; kept for direct callers
            raise AdapterError(f"attention_backend: {asked} does not reach {adapter}: {fixed}")
        notes.append(f"{adapter}: attention_backend auto -> native ({fixed})")
        return "native", None
    if asked != "auto":
        problem = _backend_problem(asked, card, dtype, masked)
        if problem is not None:
            raise AdapterError(f"attention_backend: {asked} cannot run for {adapter}: {problem}")
        backend = BACKENDS[asked]
        return asked, backend.masked if masked else backend.dense
    skipped = []
    for name in AUTO_BACKENDS:
        problem = _backend_problem(name, card, dtype, masked)
        if problem is None:
            backend = BACKENDS[name]
            notes.append(f"{adapter}: attention_backend auto -> {name} on {card.text}")
            return name, backend.masked if masked else backend.dense
        skipped.append(f"{name}: {problem}")
    why = "; ".join(skipped) if card.type == "cuda" else f"on {card.type}"
    notes.append(f"{adapter}: attention_backend auto -> native ({why})")
    return "native", None


def _backend_problem(name: str, card: Card, dtype: str, masked: bool) -> str | None:
    backend = BACKENDS[name]
    if card.type != "cuda":
        return f"runs on CUDA only, not {card.type}"
    capability = card.capability or (0, 0)
    low = f"{backend.min_capability[0]}.{backend.min_capability[1]}"
    if capability < backend.min_capability or (
        backend.max_capability is not None and capability >= backend.max_capability
    ):
        span = f"{low}+" if backend.max_capability is None else f"{low} (Hopper) only"
        return f"needs compute capability {span}; {card.text}"
    if dtype not in ("bf16", "fp16"):
        return f"takes bf16 or fp16 only, the weights here are {dtype}"
    problem = backend_problem(backend.masked if masked else backend.dense)
    if problem is not None:
        return f"not installed ({backend.package}): {problem}"
    return None


def taylorseer_full_steps(steps: int, interval: int, warmup: int = TAYLORSEER_WARMUP) -> list[bool]:
    """Which of ``steps`` denoising steps TaylorSeer computes in full (the others it predicts): diffusers'
    rule, the first ``warmup`` steps, then every ``interval``-th from step ``warmup + 1``."""
    return [i < warmup or (i - warmup - 1) % interval == 0 for i in range(steps)]


# ----- applying -----


def cache_config(plan: SpeedPlan, pipe: Any) -> Any:
    """The diffusers cache config of ``plan`` for ``pipe`` (None for ``none``)."""
    if plan.cache == "none":
        return None
    import diffusers
    import torch

    if plan.cache == "first_block":
        return diffusers.FirstBlockCacheConfig(threshold=plan.cache_threshold)
    if plan.cache == "pab":
        return diffusers.PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=plan.cache_interval,
            spatial_attention_timestep_skip_range=PAB_TIMESTEPS,
            current_timestep_callback=lambda: pipe.current_timestep,
        )
    return diffusers.TaylorSeerCacheConfig(
        cache_interval=plan.cache_interval,
        disable_cache_before_step=TAYLORSEER_WARMUP,
        taylor_factors_dtype=torch.float32,
        use_lite_mode=True,
    )


def transformer_blocks(transformer: Any) -> int:
    """Blocks First Block Cache sees: the entries of the transformer's block lists."""
    import torch
    from diffusers.hooks._common import _ALL_TRANSFORMER_BLOCK_IDENTIFIERS

    return sum(
        len(child)
        for name, child in transformer.named_children()
        if name in _ALL_TRANSFORMER_BLOCK_IDENTIFIERS and isinstance(child, torch.nn.ModuleList)
    )


def apply_speed(
    adapter: str, pipe: Any, plan: SpeedPlan, *, compile_blocks: tuple[str, ...], log: Any = None
) -> int:
    """Enable ``plan``'s cache on ``pipe.transformer`` and mark its repeated blocks for compilation;
    returns how many blocks were marked (compiled on their first call)."""
    transformer = pipe.transformer
    config = cache_config(plan, pipe)
    if config is not None:
        if plan.cache == "first_block" and transformer_blocks(transformer) < 2:
            raise AdapterError(
                f"cache: first_block needs at least two transformer blocks (the first decides, the last "
                f"keeps the residual); {adapter}'s transformer has {transformer_blocks(transformer)}"
            )
        transformer.enable_cache(config)
    if not plan.compile:
        return 0
    count = compile_regions(transformer, compile_blocks)
    if count == 0:
        raise ModelLoadError(
            f"compile: {adapter}'s transformer ({type(transformer).__name__}) holds none of the blocks to "
            f"compile ({', '.join(compile_blocks)})"
        )
    if log is not None:
        log.info(
            "%s: compile on: %d transformer blocks marked; the first clip pays the build (its first step)",
            adapter,
            count,
        )
    return count


COMPILE_OPTIONS: dict[str, Any] = {}
"""Keyword arguments for every block's ``torch.compile`` (Inductor, default mode, graphs may break at the
cache hooks' decisions)."""


def compile_regions(transformer: Any, blocks: tuple[str, ...]) -> int:
    """``nn.Module.compile()`` on every submodule whose class is named in ``blocks`` (regional
    compilation: one compiled graph serves every block of a class); returns how many."""
    count = 0
    for module in transformer.modules():
        if type(module).__name__ in blocks:
            module.compile(**COMPILE_OPTIONS)
            count += 1
    return count


@contextlib.contextmanager
def run_context(pipe: Any, plan: SpeedPlan, *, sets_cache_context: bool = True) -> Iterator[None]:
    """Around one pipeline call: the plan's attention backend (scoped to the call, so no other model in
    the process inherits it), and a cache context for pipelines that set none themselves."""
    with contextlib.ExitStack() as stack:
        if plan.attention_backend is not None:
            import diffusers

            stack.enter_context(diffusers.attention_backend(plan.attention_backend))
        if plan.cache in ("first_block", "taylorseer") and not sets_cache_context:
            stack.enter_context(pipe.transformer.cache_context("cond"))
        yield


def log_notes(log: Any, plan: SpeedPlan) -> None:
    for note in plan.notes:
        log.info("%s", note)
