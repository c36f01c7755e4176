"""GPU memory planner: where each GPU stage's weights go, and whether the stage fits the card.

Plain Python (torch and diffusers are imported only to count parameters on the meta device). For one
adapter, its settings, the clip size and the card's free memory, :func:`plan_stage` chooses the settings
left at ``auto`` and estimates the peak:

- **Placement ladder** (fastest first; the first rung that fits with headroom wins):
  1. everything on the GPU in bf16;
  2. the transformer in int8 weight-only (torchao; FLUX: NF4 for the transformer and T5);
  3. the large text encoder quantized too (int8 weight-only; not for FLUX);
  4. model CPU offload (each module on the GPU only while it runs: the text encoder leaves before
     denoising), bf16;
  5. model CPU offload with the transformer quantized;
  6. sequential CPU offload (layers streamed to the GPU: slow, the last resort).

  ``dtype: auto`` is bf16 on CUDA (fp16 for Bark and CLIP) and fp32 on CPU. ``quantization: auto`` lets
  the planner climb the whole ladder (offload included, since ``cpu_offload`` has no ``auto``); an explicit
  ``quantization`` fixes the rung (``int8wo``, ``int8dq`` and ``fp8`` quantize the transformer only; the
  ladder itself never picks ``int8dq`` or ``fp8``, speed settings whose memory is that of ``int8wo``, or
  a little more for fp8's fp32 row scales) and ``cpu_offload: true`` asks for model offload. Explicit
  settings are estimated as given; when they do not fit, ``fix`` names the settings of the first rung that
  does. VAE tiling (``vae_tiling``, on by default) is kept: turning
  it off raises the peak, and ``fix`` says so when it matters.

- **Weights** come from parameter counts: built on the meta device from a folder of configs (a saved
  pipeline's ``model_index.json`` + ``<module>/config.json``, or ``shared/model-configs/<slug>`` with its
  ``components.json``) when :func:`plan_stage` is given one, else from :data:`MEASURED`, the same counts
  measured once from ``shared/model-configs``. Bytes per parameter follow what loading does: bf16 (fp32
  for diffusers' ``_keep_in_fp32_modules`` and for a VAE the adapter keeps in fp32), int8 weight-only =
  1 byte per ``nn.Linear`` weight + one bf16 scale per output row, NF4 = 0.5 byte + one fp32 absmax per 64
  weights; layers the quantizers skip (``_keep_in_fp32_modules`` such as T5's ``wo``, and in transformers
  the last layer and output embeddings such as Llava's ``lm_head``) stay bf16.

- **Activations** are an estimate per model family (:class:`Family`)::

      latent_frames = (frames - 1) // temporal_compression + 1
      cell          = spatial_compression * patch
      tokens        = ceil(latent_frames / patch_t) * (height // cell) * (width // cell) + text_tokens
      activations   = tokens * hidden * 2 bytes * cfg_batch * factor      (+ text-encoder and VAE terms)

  ``cfg_batch`` is 2 where classifier-free guidance runs both branches in one batch (CogVideoX), 1 where
  they run one after the other (Wan) or guidance is embedded (HunyuanVideo-I2V, FLUX.1-schnell).
  ``factor`` is calibrated per family to the figures measured or reported for the real models (with VAE
  tiling on): Wan2.2-TI2V-5B at 1280x704x121 in bf16 peaks at ~31 GB with 24.2 GB of weights;
  HunyuanVideo-I2V at 720x480x65 with an int8 transformer and a bf16 Llava at ~34 GB (30.3 GB of weights);
  CogVideoX1.5-5B-I2V at 1360x768x81 with an int8 transformer at 23-24 GB. These are estimates:
  ``benchmarks/bench_video_adapters.py`` measures the real peak on a GPU next to them.

:func:`plan_video_job` plans every GPU stage of a job (one large model is resident at a time, so each
stage is checked on its own against the card's free memory).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from i2v_dagster.errors import AdapterError

if TYPE_CHECKING:
    from i2v_dagster.models.base import AdapterSettings

GB = 1e9
GIB = 2**30
CUDA_CONTEXT_GB = 0.8
"""What the CUDA context and allocator take before any weights load."""
MIN_HEADROOM_GB = 1.0
HEADROOM_FRACTION = 0.10
"""A stage fits when its peak leaves at least max(MIN_HEADROOM_GB, 10% of free memory) free: the
activation figures are estimates."""
NF4_BYTES = 0.5 + 4 / 64
"""NF4: 4 bits per weight plus one fp32 absmax per block of 64."""
FP8_ROW_BYTES = 4.0
"""torchao float8 with per-row scales: one fp32 scale per output row."""
TEXT_ENCODER_ACTIVATIONS_GB = 0.5
VAE_UNTILED_BYTES_PER_PIXEL = 128
"""Extra decode memory per output pixel (per frame) with VAE tiling off: an estimate."""
SEQUENTIAL_RESIDENT_GB = 1.0
"""With sequential offload only the running layer is on the GPU: about one block."""

STAGES = {
    "script": "script",
    "speech": "narration",
    "image": "keyframes",
    "video": "clips",
    "scorer": "scorer",
}
"""Role -> the stage (asset step) that runs it."""

Offload = Literal["none", "model", "sequential"]


# ----- parameter counts -----


@dataclass(frozen=True)
class ModuleSize:
    """Parameter counts of one module, and how many of them each quantizer converts."""

    params: int
    buffers: int = 0
    """Persistent buffers (stored in the load dtype, e.g. CogVideoX-5B's positional embedding)."""
    fp32_params: int = 0
    """Parameters diffusers keeps in fp32 whatever the dtype (``_keep_in_fp32_modules``)."""
    int8_params: int = 0
    """``nn.Linear`` weights torchao converts (int8 weight-only, int8 dynamic, float8)."""
    int8_rows: int = 0
    """Their output features (one bf16 scale each)."""
    nf4_params: int = 0
    """``nn.Linear`` weights bitsandbytes NF4 converts."""

    def nbytes(self, precision: str) -> float:
        """Bytes resident for ``precision``: ``bf16``, ``fp16``, ``fp32``, ``int8wo``, ``int8dq``, ``fp8``
        or ``nf4``. torchao's int8 (weight-only and dynamic) and float8 store one byte per converted
        ``nn.Linear`` weight plus a scale per output row; the dynamic schemes quantize activations on the
        fly, so their activation memory is the planner's bf16 estimate."""
        if precision == "fp32":
            return 4.0 * (self.params + self.buffers)
        half = 2.0 * (self.params - self.fp32_params + self.buffers) + 4.0 * self.fp32_params
        if precision in ("bf16", "fp16"):
            return half
        if precision in ("int8wo", "int8dq"):
            return half - self.int8_params + 2.0 * self.int8_rows
        if precision == "fp8":
            return half - self.int8_params + FP8_ROW_BYTES * self.int8_rows
        if precision == "nf4":
            return half - (2.0 - NF4_BYTES) * self.nf4_params
        raise ValueError(f"unknown precision {precision!r}")


MEASURED: dict[str, dict[str, ModuleSize]] = {
    "cogvideox-5b-i2v": {
        "transformer": ModuleSize(5570479680, 54607872, 0, 5566824448, 2719808, 5566824448),
        "vae": ModuleSize(215583907, 0, 0, 0, 0, 0),
        "text_encoder": ModuleSize(4762310656, 0, 0, 3623878656, 884736, 3623878656),
    },
    "cogvideox1.5-5b-i2v": {
        "transformer": ModuleSize(5571594880, 0, 0, 5568331776, 2723968, 5568331776),
        "vae": ModuleSize(215583907, 0, 0, 0, 0, 0),
        "text_encoder": ModuleSize(4762310656, 0, 0, 3623878656, 884736, 3623878656),
    },
    "flux.1-schnell": {
        "transformer": ModuleSize(11891178560, 0, 0, 11888099328, 3059776, 11888099328),
        "vae": ModuleSize(83819683, 0, 0, 2097152, 4096, 2097152),
        "text_encoder": ModuleSize(123060480, 0, 0, 84934656, 82944, 84934656),
        "text_encoder_2": ModuleSize(4762310656, 0, 0, 3623878656, 884736, 3623878656),
    },
    "hunyuanvideo-i2v": {
        "transformer": ModuleSize(12821012544, 0, 0, 12817465344, 3302464, 12817465344),
        "vae": ModuleSize(246478803, 0, 0, 2097152, 4096, 2097152),
        "text_encoder": ModuleSize(8355272704, 0, 0, 7302283264, 1605632, 7302283264),
        "text_encoder_2": ModuleSize(123060480, 0, 0, 84934656, 82944, 84934656),
    },
    "wan2.2-ti2v-5b": {
        "transformer": ModuleSize(4999787712, 0, 10973184, 4986568704, 1284288, 4986568704),
        "vae": ModuleSize(704688668, 0, 0, 0, 0, 0),
        "text_encoder": ModuleSize(5680910336, 0, 0, 3623878656, 884736, 3623878656),
    },
}
"""Counts measured on the meta device from ``shared/model-configs`` (diffusers 0.42.1, transformers 5.23.0)
with :func:`count_module`; a test checks them against a fresh count when that folder is present."""


def _skipped(name: str, skip: set[str]) -> bool:
    return bool(skip.intersection(name.split(".")))


def _transformers_skips(model: Any) -> set[str]:
    """What transformers' quantizers leave unconverted: ``_keep_in_fp32_modules``, the module of the last
    parameter and the output embeddings (``lm_head``)."""
    skip = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    *_, (last, _) = model.named_parameters()
    skip.add(last.rsplit(".", 2)[-2] if last.count(".") else last)
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None:
        skip.update(name.rsplit(".", 1)[-1] for name, module in model.named_modules() if module is output)
    return skip


def count_module(library: str, cls_name: str, config: Mapping[str, Any]) -> ModuleSize:
    """Build one module on the meta device (no memory) and count what :class:`ModuleSize` holds."""
    from i2v_dagster.models._compat import ensure_torch_stack

    ensure_torch_stack()
    import diffusers
    import torch
    import transformers

    with torch.device("meta"):
        if library == "diffusers":
            model = getattr(diffusers, cls_name).from_config(dict(config))
            keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
            skip = keep
        else:
            cfg = {k: v for k, v in config.items() if k != "architectures"}
            model = getattr(transformers, cls_name)(transformers.AutoConfig.for_model(**cfg))
            keep = set()  # transformers keeps them in fp32 only for fp16
            skip = _transformers_skips(model)
    state = set(model.state_dict())
    buffers = sum(b.numel() for n, b in model.named_buffers() if n in state)
    params = fp32 = 0
    for name, p in model.named_parameters():
        params += p.numel()
        fp32 += p.numel() if _skipped(name, keep) else 0
    linear = rows = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not _skipped(name, skip):
            linear += module.weight.numel()
            rows += module.out_features
    return ModuleSize(params, buffers, fp32, linear, rows, linear)


def _read_components(folder: Path) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Module -> (library, class, config) of a ``shared/model-configs/<slug>`` folder or a saved pipeline."""
    components = folder / "components.json"
    if components.is_file():
        entries = json.loads(components.read_text())["components"]
        return {
            name: (e["library"], e["class"], json.loads((folder / e["config"]).read_text()))
            for name, e in entries.items()
        }
    index = json.loads((folder / "model_index.json").read_text())
    found = {}
    for name, value in index.items():
        config = folder / name / "config.json"
        if isinstance(value, list) and value[0] in ("diffusers", "transformers") and config.is_file():
            found[name] = (value[0], value[1], json.loads(config.read_text()))
    return found


@cache
def count_folder(folder: str) -> dict[str, ModuleSize]:
    """:func:`count_module` for every module of ``folder`` (cached per folder)."""
    return {
        name: count_module(library, cls, cfg)
        for name, (library, cls, cfg) in _read_components(Path(folder)).items()
    }


def configs_folder(model: str | None) -> Path | None:
    """``model`` when it is a local folder holding configs this module can read, else None."""
    if not model:
        return None
    path = Path(model).expanduser()
    if (path / "components.json").is_file() or (path / "model_index.json").is_file():
        return path
    return None


# ----- model families -----


@dataclass(frozen=True)
class Family:
    """What the planner needs to know about one diffusion model."""

    slug: str
    """Folder under ``shared/model-configs`` and key of :data:`MEASURED`."""
    temporal: int
    """VAE temporal compression (1 for images)."""
    spatial: int
    patch_t: int
    patch: int
    hidden: int
    cfg_batch: int
    factor: float
    """Activation bytes per (token x hidden x 2 bytes), calibrated (see the module docstring)."""
    text_tokens: int
    quantizations: tuple[str, ...] = ("none", "int8wo")
    """Transformer quantizations the ladder tries (besides the explicit settings the adapter accepts)."""
    big_text_encoder: str = "text_encoder"
    vae_fp32: bool = False
    image: bool = False

    def tokens(self, width: int, height: int, frames: int) -> int:
        latent_frames = 1 if self.image else (max(frames, 1) - 1) // self.temporal + 1
        cell = self.spatial * self.patch
        return math.ceil(latent_frames / self.patch_t) * (height // cell) * (width // cell) + self.text_tokens

    def activations_gb(self, width: int, height: int, frames: int) -> float:
        return self.tokens(width, height, frames) * self.hidden * 2 * self.cfg_batch * self.factor / GB

    def untiled_vae_gb(self, width: int, height: int, frames: int) -> float:
        return width * height * max(frames, 1) * VAE_UNTILED_BYTES_PER_PIXEL / GB


FAMILIES: dict[str, Family] = {
    "cogvideox_5b_i2v": Family("cogvideox-5b-i2v", 4, 8, 1, 2, 3072, 2, 14.0, 226),
    "cogvideox15_5b_i2v": Family("cogvideox1.5-5b-i2v", 4, 8, 2, 2, 3072, 2, 14.0, 226),
    "wan22_ti2v_5b": Family("wan2.2-ti2v-5b", 4, 16, 1, 2, 3072, 1, 40.0, 512, vae_fp32=True),
    "hunyuan_i2v": Family("hunyuanvideo-i2v", 4, 8, 1, 2, 3072, 1, 26.0, 256 + 576),
    "flux_schnell": Family(
        "flux.1-schnell",
        1,
        8,
        1,
        2,
        3072,
        1,
        40.0,
        256,
        quantizations=("none", "nf4"),
        big_text_encoder="text_encoder_2",
        image=True,
    ),  # fmt: skip
}
"""Adapter -> family. The 5B CogVideoX models share one factor (calibrated on 1.5 at 1360x768x81)."""

SMALL_MODELS_GB: dict[str, tuple[float, float]] = {
    "bark": (0.81, 1.0),
    "clip": (1.16, 0.5),
}
"""Small adapters: (weights GB at fp16, activations GB). Bark: suno/bark-small, 404 M parameters; CLIP:
open_clip ViT-B-32 (151 M) + ViT-L-14 (428 M)."""

NO_GPU = ("spec", "ollama", "mock_script", "mock_speech", "mock_image", "mock_video")
"""Adapters that put nothing on this process's GPU."""


# ----- plans -----


@dataclass(frozen=True)
class Placement:
    dtype: str = "bf16"
    quantization: str = "none"
    """Of the transformer: ``none``, ``int8wo``, ``int8dq``, ``fp8`` or ``nf4``."""
    text_encoder_quantization: str = "none"
    offload: Offload = "none"
    vae_tiling: bool = True
    has_vae: bool = True
    """False for models without a VAE (Bark, CLIP): no tiling to speak of."""

    @property
    def cpu_offload(self) -> bool:
        return self.offload != "none"

    def text(self, device: str = "cuda") -> str:
        quant = "no quantization"
        if self.quantization != "none":
            quant = f"{self.quantization} transformer"
            if self.text_encoder_quantization != "none":
                quant += " + text encoder"
        offload = {"none": "all on GPU", "model": "model CPU offload", "sequential": "sequential CPU offload"}
        tiling = [("VAE tiling" if self.vae_tiling else "no VAE tiling")] if self.has_vae else []
        where = [] if device != "cuda" else [offload[self.offload]]
        return ", ".join([self.dtype, quant, *where, *tiling])


@dataclass(frozen=True, kw_only=True)
class StagePlan:
    """Where one stage's model goes and whether it fits (all sizes in GB = 1e9 bytes)."""

    stage: str
    adapter: str
    device: str = "cuda"
    placement: Placement = field(default_factory=Placement)
    weights_gb: float = 0.0
    """Weights resident at the peak (all modules, or the largest one with offload)."""
    activations_gb: float = 0.0
    peak_gb: float = 0.0
    free_gb: float = 0.0
    headroom_gb: float = 0.0
    """``free_gb - peak_gb``."""
    fits: bool = True
    fix: str | None = None
    note: str = ""

    @property
    def dtype(self) -> str:
        return self.placement.dtype

    @property
    def quantization(self) -> str:
        return self.placement.quantization

    @property
    def cpu_offload(self) -> bool:
        return self.placement.cpu_offload

    @property
    def vae_tiling(self) -> bool:
        return self.placement.vae_tiling

    def describe(self) -> str:
        """One line: placement, estimated peak, the card's free memory, fits or not (and the fix)."""
        head = f"{self.stage}: {self.adapter}"
        if self.device != "cuda":
            placement = self.placement.text(self.device)
            return f"{head} on {self.device}: {placement} ({self.note or 'no GPU memory used'})"
        if self.note and not self.peak_gb:
            return f"{head}: {self.note}"
        verdict = "fits" if self.fits else "does NOT fit"
        line = (
            f"{head}: {self.placement.text()}; est. peak {self.peak_gb:.1f} GB "
            f"(weights {self.weights_gb:.1f} + activations {self.activations_gb:.1f}) "
            f"of {self.free_gb:.1f} GB free: {verdict}"
        )
        if self.fix:
            line += f"; fix: {self.fix}"
        elif self.fits and self.placement.offload == "sequential":
            line += " (but slowly: sequential offload streams every layer from the CPU at every step)"
        return line


def free_gb_for_card(card_gb: float) -> float:
    """Free memory (GB) on an idle card sold as ``card_gb`` GB (GiB in fact) once CUDA has started."""
    return card_gb * GIB / GB - CUDA_CONTEXT_GB


def required_headroom_gb(free_gb: float) -> float:
    return max(MIN_HEADROOM_GB, HEADROOM_FRACTION * free_gb)


def free_gb_needed(peak_gb: float) -> float:
    """The least free memory (GB, rounded up) on which a stage peaking at ``peak_gb`` fits."""
    return float(math.ceil(max(peak_gb + MIN_HEADROOM_GB, peak_gb / (1 - HEADROOM_FRACTION))))


def cuda_free_gb(device: Any = None) -> float:
    """Free memory of the CUDA device now (``torch.cuda.mem_get_info``), in GB."""
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    return free / GB


def _sizes(
    adapter: str, family: Family, model: str | None, configs: str | Path | None
) -> dict[str, ModuleSize]:
    folder = Path(configs) if configs is not None else configs_folder(model)
    if folder is not None:
        counted = count_folder(str(folder.resolve()))
        if counted:
            return counted
    if family.slug not in MEASURED:
        raise AdapterError(f"model: no parameter counts for {adapter}")
    return MEASURED[family.slug]


def _module_precision(name: str, placement: Placement, family: Family) -> str:
    if name == "transformer" and placement.quantization != "none":
        return placement.quantization
    if name == family.big_text_encoder and placement.text_encoder_quantization != "none":
        return placement.text_encoder_quantization
    if name == "vae" and family.vae_fp32:
        return "fp32"
    return placement.dtype


def _estimate(
    family: Family,
    sizes: Mapping[str, ModuleSize],
    placement: Placement,
    width: int,
    height: int,
    frames: int,
) -> tuple[float, float]:
    """(weights GB resident at the peak, activations GB at the peak) for ``placement``."""
    weights = {
        name: size.nbytes(_module_precision(name, placement, family)) / GB for name, size in sizes.items()
    }
    denoise = family.activations_gb(width, height, frames)
    decode = 0.0 if placement.vae_tiling else family.untiled_vae_gb(width, height, frames)
    if placement.offload == "none":
        return sum(weights.values()), max(denoise, decode, TEXT_ENCODER_ACTIVATIONS_GB)
    if placement.offload == "sequential":
        return SEQUENTIAL_RESIDENT_GB, max(denoise, decode)
    phases = [(weights.get("transformer", 0.0), denoise), (weights.get("vae", 0.0), max(decode, 0.5))]
    phases += [(w, TEXT_ENCODER_ACTIVATIONS_GB) for n, w in weights.items() if n.startswith("text_encoder")]
    return max(phases, key=lambda p: p[0] + p[1])


def _ladder(family: Family, dtype: str) -> list[Placement]:
    quant = family.quantizations[-1]
    te_quant = "nf4" if quant == "nf4" else "int8wo"
    rungs = [Placement(dtype=dtype), Placement(dtype=dtype, quantization=quant)]
    if quant == "nf4":  # FLUX: the NF4 config quantizes the transformer and T5 together
        rungs[1] = replace(rungs[1], text_encoder_quantization=te_quant)
    else:
        rungs.append(Placement(dtype=dtype, quantization=quant, text_encoder_quantization=te_quant))
    rungs += [
        Placement(dtype=dtype, offload="model"),
        replace(rungs[-1], offload="model"),
        Placement(dtype=dtype, offload="sequential"),
    ]
    return rungs


def _role_key(adapter: str) -> str:
    from i2v_dagster.models.registry import adapter_role

    return f"models.{adapter_role(adapter)}"


def _explicit_placement(adapter: str, family: Family, settings: AdapterSettings, dtype: str) -> Placement:
    quant = settings.quantization
    allowed = {
        "none",
        "int8dq",
        "fp8",
        *family.quantizations[1:],
        *(("int8wo", "nf4") if not family.image else ()),
    }
    if quant not in allowed:
        raise AdapterError(f"quantization: {adapter} takes auto, {', '.join(sorted(allowed))}, got {quant!r}")
    te = "nf4" if family.image and quant == "nf4" else "none"
    offload: Offload = "model" if settings.cpu_offload else "none"
    return Placement(dtype, quant, te, offload, settings.vae_tiling)


def _fix_text(adapter: str, family: Family, asked: Placement, chosen: Placement) -> str:
    """The settings that turn ``asked`` into ``chosen`` (the first rung that fits)."""
    key = _role_key(adapter)
    settable = chosen.offload != "sequential" and (
        family.image or chosen.text_encoder_quantization == "none"
    )  # an explicit quantization quantizes the transformer only (FLUX's nf4: with T5)
    if not settable:
        return f"set {key}.quantization: auto (the planner then picks {chosen.text()})"
    changes = []
    if chosen.quantization != asked.quantization:
        changes.append(f"{key}.quantization: {chosen.quantization}")
    if chosen.offload == "model" and asked.offload != "model":
        changes.append(f"{key}.cpu_offload: true")
    if chosen.vae_tiling and not asked.vae_tiling:
        changes.append(f"{key}.vae_tiling: true")
    return "set " + ", ".join(changes)


def _resolve_dtype(adapter: str, asked: str, device: str, auto_cuda: str) -> str:
    if asked == "auto":
        return auto_cuda if device == "cuda" else "fp32"
    if asked not in ("bf16", "fp16", "fp32"):
        raise AdapterError(f"dtype: {adapter} takes auto, bf16, fp16 or fp32, got {asked!r}")
    return asked


def plan_stage(
    adapter: str,
    settings: AdapterSettings,
    *,
    width: int,
    height: int,
    frames: int = 1,
    free_gb: float,
    device: str = "cuda",
    configs: str | Path | None = None,
    stage: str | None = None,
) -> StagePlan:
    """The placement of ``adapter`` under ``settings`` for a clip of ``width`` x ``height`` x ``frames``
    (frames as asked: rounded up to what the model generates) and the estimate against ``free_gb``.

    ``configs``: a folder of the model's configs to count parameters from (default: ``settings.model``
    when it is a local folder, else :data:`MEASURED`). On ``device`` ``cpu`` nothing is estimated:
    ``auto`` is fp32 without quantization, as the adapters load there."""
    from i2v_dagster.models.registry import adapter_role, get_adapter_info

    role = adapter_role(adapter)
    stage = stage or STAGES.get(role, role)
    device = "cuda" if device.startswith("cuda") else device
    if adapter in NO_GPU:
        note = (
            "no GPU memory in this process"
            if adapter != "ollama"
            else ("the Ollama server's own GPU memory, freed once the script is written (keep_alive 0)")
        )
        return StagePlan(stage=stage, adapter=adapter, device=device, free_gb=free_gb, note=note)
    if adapter in SMALL_MODELS_GB:
        return _plan_small(adapter, settings, stage=stage, free_gb=free_gb, device=device)
    family = FAMILIES[adapter]
    if not family.image:
        frames = get_adapter_info(adapter).constraints_for(settings).generation_frames(frames)
    dtype = _resolve_dtype(adapter, settings.dtype, device, "bf16")
    if device != "cuda":
        quant = "none" if settings.quantization in ("auto", "nf4") else settings.quantization
        placement = Placement(dtype, quant, "none", "none", settings.vae_tiling)
        return StagePlan(stage=stage, adapter=adapter, device=device, placement=placement, free_gb=free_gb)
    sizes = _sizes(adapter, family, settings.model, configs)

    def evaluate(placement: Placement) -> StagePlan:
        weights, activations = _estimate(family, sizes, placement, width, height, frames)
        peak = weights + activations
        headroom = free_gb - peak
        return StagePlan(
            stage=stage, adapter=adapter, device=device, placement=placement, weights_gb=weights,
            activations_gb=activations, peak_gb=peak, free_gb=free_gb, headroom_gb=headroom,
            fits=headroom >= required_headroom_gb(free_gb),
        )  # fmt: skip

    ladder = [replace(p, vae_tiling=True) for p in _ladder(family, dtype)]
    if settings.quantization == "auto":
        if settings.cpu_offload:
            ladder = [p for p in ladder if p.offload != "none"]
        if not settings.vae_tiling:
            ladder = [replace(p, vae_tiling=False) for p in ladder] + ladder
        plans = [evaluate(p) for p in ladder]
        chosen = next((p for p in plans if p.fits), None)
        if chosen is not None:
            return chosen
        smallest = min(plans, key=lambda p: p.peak_gb)
        need = free_gb_needed(smallest.peak_gb)
        return replace(
            smallest,
            fix=f"needs a card with >= {need:.0f} GB free, or a smaller width/height/max_clip_frames",
        )
    asked = _explicit_placement(adapter, family, settings, dtype)
    plan = evaluate(asked)
    if plan.fits:
        return plan
    better = next((p for p in map(evaluate, ladder) if p.fits), None)
    if better is None:
        need = free_gb_needed(min(evaluate(p).peak_gb for p in ladder))
        return replace(plan, fix=f"needs a card with >= {need:.0f} GB free, or a smaller width/height/frames")
    return replace(plan, fix=_fix_text(adapter, family, asked, better.placement))


def _plan_small(
    adapter: str, settings: AdapterSettings, *, stage: str, free_gb: float, device: str
) -> StagePlan:
    dtype = _resolve_dtype(adapter, settings.dtype, device, "fp16")
    offload: Offload = "model" if settings.cpu_offload else "none"
    placement = Placement(dtype=dtype, vae_tiling=False, offload=offload, has_vae=False)
    if device != "cuda":
        return StagePlan(stage=stage, adapter=adapter, device=device, placement=placement, free_gb=free_gb)
    weights, activations = SMALL_MODELS_GB[adapter]
    weights *= 2 if dtype == "fp32" else 1
    peak = weights + activations
    fits = free_gb - peak >= required_headroom_gb(free_gb)
    return StagePlan(
        stage=stage, adapter=adapter, device=device, placement=placement, weights_gb=weights,
        activations_gb=activations, peak_gb=peak, free_gb=free_gb, headroom_gb=free_gb - peak, fits=fits,
        fix=None if fits else f"needs a card with >= {free_gb_needed(peak):.0f} GB free",
    )  # fmt: skip


def plan_video_job(
    models: Mapping[str, tuple[str, AdapterSettings]],
    *,
    width: int,
    height: int,
    frames: int,
    free_gb: float,
    device: str = "cuda",
) -> list[StagePlan]:
    """One :class:`StagePlan` per role of ``models`` (role -> (adapter, settings)), in pipeline order.

    Keyframes are planned at ``width`` x ``height``; clips at that size and ``frames`` per clip (the
    spec's ``max_clip_frames``). Each stage is checked on its own: one large model is resident at a time."""
    order = [r for r in STAGES if r in models] + [r for r in models if r not in STAGES]
    plans = []
    for role in order:
        adapter, settings = models[role]
        plans.append(
            plan_stage(
                adapter,
                settings,
                width=width,
                height=height,
                frames=frames if role == "video" else 1,
                free_gb=free_gb,
                device=device,
                stage=STAGES.get(role, role),
            )  # fmt: skip
        )
    return plans


def weights_gb(adapter: str, placement: Placement | None = None) -> float:
    """Weights (GB) of ``adapter``'s whole pipeline under ``placement`` (default: bf16, unquantized),
    from :data:`MEASURED` (VAE in fp32 where the adapter keeps it so)."""
    family = FAMILIES[adapter]
    placement = placement or Placement()
    sizes = MEASURED[family.slug]
    return sum(size.nbytes(_module_precision(name, placement, family)) for name, size in sizes.items()) / GB
