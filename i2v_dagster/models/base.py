"""Adapter contracts: one small base class per role, and the dataclasses they return.

Plain Python, no Dagster. Heavy imports (torch, diffusers, transformers) happen inside ``load()`` so
that this module and the mock adapters import on a machine without them.

Every adapter:
- is built from an :class:`AdapterSettings` (``Adapter(settings, logger=...)``),
- loads lazily with ``load()`` and frees everything with ``unload()`` (idempotent both),
- has one generate method for its role, returning a dataclass.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from i2v_dagster.errors import AdapterError

if TYPE_CHECKING:
    from PIL import Image

    from i2v_dagster.guardrails import Deadline
    from i2v_dagster.spec import JobSpec, Script


@dataclass(frozen=True, kw_only=True)
class AdapterSettings:
    """How to build one adapter. Mirrors the spec's per-role ``ModelChoice``."""

    model: str | None = None
    """Hugging Face repo id or a local folder (a saved pipeline); None means the registry's default."""
    revision: str | None = None
    dtype: str = "auto"
    """``auto`` | ``bf16`` | ``fp16`` | ``fp32``; ``auto``: the adapter's preferred dtype for the device."""
    quantization: str = "auto"
    """``auto`` (the adapter's choice for the device) | ``none`` | ``int8wo`` (torchao int8 weight-only) |
    ``int8dq`` (torchao int8 dynamic activations + int8 weights) | ``fp8`` (torchao float8 dynamic
    activations + float8 weights; CUDA compute capability 8.9+) | ``nf4`` (bitsandbytes 4-bit)."""
    device: str = "auto"
    """``auto`` (CUDA when present, else CPU) | ``cpu`` | ``cuda``."""
    cpu_offload: bool = False
    vae_tiling: bool = True
    vae_slicing: bool = False
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    cache_dir: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """Adapter-specific options, validated by the adapter class's :attr:`Adapter.Options` model."""


class AdapterOptions(BaseModel):
    """Base of every adapter's ``Options`` model (``models.<role>.options`` of the spec).

    Unknown keys are refused, types are taken strictly (no ``"1"`` for a number, no ``true`` for a
    number), numbers must be finite. Subclasses give every field a description and bounds. The model
    without fields (this class) takes no options at all."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def option_problems(
    model: type[AdapterOptions], name: str, options: Mapping[str, Any], where: str, *, named: bool = False
) -> list[str]:
    """One line per problem of ``options`` against ``model``, each naming ``<where>.<key>`` (and, with
    ``named``, the adapter ``name`` after it)."""
    try:
        model.model_validate(dict(options))
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            at = f"{where}.{loc}" if loc else where
            if err["type"] == "extra_forbidden":
                known = ", ".join(model.model_fields) or "none"
                out.append(f"{at}: unknown option of {name} (options: {known})")
            else:
                who = f"{name}: " if named else ""
                out.append(f"{at}: {who}{err['msg']} (got {err.get('input')!r})")
        return out
    return []


def parse_options(model: type[AdapterOptions], name: str, options: Mapping[str, Any]) -> Any:
    """``options`` validated by ``model``; an :class:`AdapterError` naming each bad ``options.<key>``."""
    problems = option_problems(model, name, options, "options", named=True)
    if problems:
        raise AdapterError("; ".join(problems))
    return model.model_validate(dict(options))


@dataclass(frozen=True)
class StepProgress:
    """One denoising (or generation) step finished."""

    step: int
    total: int
    seconds: float
    """Seconds this step took."""


ProgressCallback = Callable[[StepProgress], None]


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray
    """float32, mono, in [-1, 1]."""
    sample_rate: int
    model_id: str = ""

    @property
    def duration_s(self) -> float:
        return float(len(self.samples)) / float(self.sample_rate)


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    prompt: str
    seed: int
    model_id: str


@dataclass(frozen=True)
class ClipRequest:
    image: Image.Image
    """The conditioning image (RGB, already at ``width`` x ``height``)."""
    prompt: str
    num_frames: int
    """Frames wanted in the output; the adapter may generate more and trim."""
    width: int
    height: int
    fps: int
    seed: int
    deadline: Deadline | None = None
    on_step: ProgressCallback | None = None
    attempt: int = 1
    """Which try at this clip (the quality gate re-makes a rejected clip with the next seed)."""


@dataclass(frozen=True)
class ClipFrames:
    frames: np.ndarray
    """uint8 array of shape (T, H, W, 3)."""
    fps: int
    seed: int
    model_id: str
    generated_frames: int = 0
    """Frames the model made before trimming to the requested count."""
    nan_frames: tuple[int, ...] = ()
    """Indices of frames whose raw output held NaN/inf (made black); the broken-frame check reports them."""

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class Scores:
    """Cosine similarity of each image to its prompt, per CLIP model name."""

    per_model: dict[str, list[float]]


class Adapter(ABC):
    """Common lifecycle of every adapter."""

    name: ClassVar[str] = ""
    role: ClassVar[str] = ""
    large: ClassVar[bool] = False
    """Large models take GPU memory; the residency resource keeps one resident at a time."""
    weights_gb: ClassVar[float] = 0.0
    """Resident size (GB) at the default precision, for the residency resource's VRAM budget."""
    holds_weights: ClassVar[bool] = True
    """False for adapters with nothing to free (mocks): unloading them skips the garbage collection."""
    default_repo: ClassVar[str | None] = None
    default_revision: ClassVar[str | None] = None
    allow_patterns: ClassVar[tuple[str, ...]] = ()
    """Files a pipeline needs from its repo (prefetch downloads only these)."""
    Options: ClassVar[type[AdapterOptions]] = AdapterOptions
    """The pydantic model of ``settings.options`` (no options unless a subclass says otherwise); the
    spec's validation checks ``models.<role>.options`` against it before any work."""

    def __init__(self, settings: AdapterSettings | None = None, *, logger: logging.Logger | None = None):
        self.settings = settings or AdapterSettings()
        self.log = logger or logging.getLogger(f"{__name__}.{self.name or type(self).__name__}")
        self._loaded = False
        self._options: Any = None

    @property
    def options(self) -> Any:
        """``settings.options`` validated by :attr:`Options` (an :class:`AdapterError` when they are not)."""
        if self._options is None:
            self._options = parse_options(
                self.Options, self.name or type(self).__name__, self.settings.options
            )
        return self._options

    @property
    def model_id(self) -> str:
        from i2v_dagster.models.registry import get_adapter_info

        return self.settings.model or get_adapter_info(self.name).repo_id or self.name

    @property
    def is_loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        if not self._loaded:
            self._load()
            self._loaded = True

    def unload(self) -> None:
        if self._loaded:
            self._unload()
            self._loaded = False

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def _unload(self) -> None: ...

    def describe(self) -> dict[str, Any]:
        """What a run records about this adapter (no secrets)."""
        s = self.settings
        return {
            "adapter": self.name,
            "model_id": self.model_id,
            "revision": s.revision,
            "dtype": s.dtype,
            "quantization": s.quantization,
        }


class ScriptWriter(Adapter):
    role = "script"

    @abstractmethod
    def write(self, spec: JobSpec) -> Script:
        """Write the script (subject + scenes) for ``spec``, validated by :class:`i2v_dagster.spec.Script`.

        Writers that compose scenes use ``spec.brief``, ``spec.subject``, ``spec.num_scenes`` and
        ``spec.seed``; the ``spec`` writer returns the spec's own scenes.
        """


class SpeechModel(Adapter):
    role = "speech"

    @abstractmethod
    def synthesize(self, text: str, *, seed: int) -> Audio: ...


class ImageModel(Adapter):
    role = "image"

    @abstractmethod
    def generate(self, prompt: str, *, width: int, height: int, seed: int) -> GeneratedImage: ...


class VideoModel(Adapter):
    role = "video"

    @abstractmethod
    def generate(self, request: ClipRequest) -> ClipFrames: ...


class Scorer(Adapter):
    role = "scorer"

    @abstractmethod
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> Scores:
        """Cosine similarity per (image, prompt) pair; raises ScorerUnavailableError without weights."""
