"""Image-to-video adapters on diffusers pipelines: CogVideoX-5B-I2V, CogVideoX1.5-5B-I2V, Wan2.2-TI2V-5B and
HunyuanVideo-I2V.

:class:`DiffusersVideoModel` does the work once: it loads a pipeline (dtype, device, quantization, VAE
tiling, offload), runs it with per-step progress and deadline checks, and turns its output into uint8
frames. Each model class only names its pipeline, repo, defaults and constraints, and adds the call
arguments its pipeline needs.

Settings (:class:`~i2v_dagster.models.base.AdapterSettings`):

- ``dtype``: ``auto`` is bf16 on CUDA and fp32 on CPU. CogVideoX refuses ``fp16`` (the 5B models overflow
  in fp16 and make NaN frames). Wan keeps its VAE in fp32, as its model card does.
- ``device``: ``auto`` is CUDA when present, else CPU; ``cuda`` without CUDA is an :class:`AdapterError`.
- ``quantization``: ``auto`` (the default) is ``int8wo`` on CUDA, for the large transformer, and ``none``
  on CPU; the choice is logged and ``describe()["quantization_used"]`` reports it. ``int8wo`` is torchao
  int8 weight-only on the transformer (CPU and CUDA). ``nf4`` is bitsandbytes 4-bit on the transformer,
  CUDA only: without CUDA the adapter logs a warning and loads the transformer unquantized
  (``quantization_used: none``).
- ``cpu_offload``: ``enable_model_cpu_offload`` on CUDA (each module, the text encoders included, sits on
  the GPU only while it runs); ignored on CPU, with a log line.
- ``vae_tiling`` / ``vae_slicing``: on the pipeline's VAE.
- ``num_inference_steps`` / ``guidance_scale``: per-model defaults when None.

Options (``settings.options``):

- ``trim_frames``: frames kept per clip (1..the model's ``max_frames``); CogVideoX-5B keeps 40 of its 49
  by default. :meth:`DiffusersVideoModel.constraints_for` gives the constraints with it applied.
- ``negative_prompt`` (CogVideoX, Wan): text for classifier-free guidance's negative branch.
- ``use_dynamic_cfg`` (CogVideoX, default False, as on the model cards): the cosine guidance schedule that
  CogVideoX's demo pairs with its DPM scheduler.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

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
from i2v_dagster.models.base import AdapterSettings, ClipFrames, ClipRequest, StepProgress, VideoModel
from i2v_dagster.models.constraints import SizeRule, VideoConstraints

if TYPE_CHECKING:
    import logging

    from PIL import Image

    from i2v_dagster.guardrails import Deadline
    from i2v_dagster.models.base import ProgressCallback

_QUANTIZATIONS = ("auto", "none", "int8wo", "nf4")


def _repo_files(models: tuple[str, ...], tokenizers: tuple[str, ...], processors: tuple[str, ...] = ()):
    """``allow_patterns`` for a diffusers-format repo: JSON (configs, shard indexes) and safetensors of each
    module, tokenizer files, the scheduler config. Leaves out ``.bin`` duplicates and anything outside those
    folders (original checkpoints, assets)."""
    patterns = ["model_index.json", "scheduler/scheduler_config.json"]
    for module in models:
        patterns += [f"{module}/*.json", f"{module}/*.safetensors"]
    for tok in tokenizers:
        patterns += [f"{tok}/*.json", f"{tok}/*.model", f"{tok}/*.txt"]
    patterns += [f"{proc}/preprocessor_config.json" for proc in processors]
    return tuple(patterns)


def to_uint8_frames(video: Any, keep: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Float frames in [0, 1] (T, H, W, 3) -> uint8, first ``keep`` frames, and the indices of kept frames
    that held NaN/inf (those pixels become 0)."""
    arr = np.asarray(video, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {arr.shape}")
    arr = arr[:keep]
    bad = ~np.isfinite(arr)
    nan_frames = tuple(int(i) for i in np.flatnonzero(bad.reshape(len(arr), -1).any(axis=1)))
    arr = np.where(bad, 0.0, arr)
    return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8), nan_frames


class _StepReporter:
    """``callback_on_step_end``: reports each finished step, then checks the deadline.

    A forward pre-hook on the transformer marks when each step's first forward starts, so a step's seconds
    exclude prompt encoding (before step 1) and the callback's own work.
    """

    def __init__(self, total: int, on_step: ProgressCallback | None, deadline: Deadline | None) -> None:
        self.total = total
        self.on_step = on_step
        self.deadline = deadline
        self._step_started: float | None = None

    def mark_start(self, module, args) -> None:  # noqa: ARG002 - forward pre-hook signature
        if self._step_started is None:
            self._step_started = time.monotonic()

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:  # noqa: ARG002
        now = time.monotonic()
        seconds = now - (self._step_started if self._step_started is not None else now)
        self._step_started = None
        if self.on_step is not None:
            total = int(getattr(pipe, "num_timesteps", None) or self.total)
            self.on_step(StepProgress(step=step + 1, total=total, seconds=seconds))
        if self.deadline is not None:
            self.deadline.check()
        return callback_kwargs


class DiffusersVideoModel(VideoModel):
    """A diffusers image-to-video pipeline behind the :class:`VideoModel` contract, held in ``self.pipe``."""

    large = True
    pipeline_class: ClassVar[str] = ""
    constraints: ClassVar[VideoConstraints] = VideoConstraints()
    default_steps: ClassVar[int] = 50
    default_guidance: ClassVar[float] = 5.0
    fp16_ok: ClassVar[bool] = True
    """False where fp16 overflows (CogVideoX-5B): asking for it is an :class:`AdapterError`."""
    vae_fp32: ClassVar[bool] = False
    """Keep the VAE in fp32 whatever the pipeline's dtype (the model card's advice)."""
    accepts_pipelines: ClassVar[tuple[str, ...]] = ()
    """Other ``_class_name`` values of a saved folder's ``model_index.json`` this adapter loads."""

    def __init__(self, settings: AdapterSettings | None = None, *, logger: logging.Logger | None = None):
        super().__init__(settings, logger=logger)
        self.pipe: Any = None
        self._used: dict[str, Any] = {}

    # ----- constraints -----

    @classmethod
    def constraints_for(cls, settings: AdapterSettings | None) -> VideoConstraints:
        """The class constraints with the ``trim_frames`` option of ``settings`` applied."""
        options = settings.options if settings is not None else {}
        trim = options.get("trim_frames")
        if trim is None:
            return cls.constraints
        most = cls.constraints.max_frames
        if isinstance(trim, bool) or not isinstance(trim, int) or not 1 <= trim <= most:
            raise AdapterError(
                f"options.trim_frames: {cls.name} keeps 1..{most} frames per clip, got {trim!r}"
            )
        return dataclasses.replace(cls.constraints, max_clip_frames=trim)

    # ----- loading -----

    @classmethod
    def from_pipeline(
        cls, pipe: Any, settings: AdapterSettings | None = None, *, logger: logging.Logger | None = None
    ) -> Self:
        """An adapter around a pipeline built in memory (benchmarks, module placement), loaded: the settings'
        VAE tiling/slicing apply; dtype, device and quantization are the pipeline's own."""
        adapter = cls(settings, logger=logger)
        configure_vae(pipe, adapter.settings)
        pipe.set_progress_bar_config(disable=True)
        adapter.pipe = pipe
        adapter._used = {
            "source": "in-memory",
            "dtype": dtype_name(pipe.dtype),
        }
        adapter._loaded = True
        return adapter

    def _load(self) -> None:
        from i2v_dagster.models._compat import ensure_torch_stack

        ensure_torch_stack()
        import diffusers
        import torch

        s = self.settings
        device = resolve_device(self.name, s.device)
        dtype = resolve_dtype(self.name, s.dtype, device, allow_fp16=self.fp16_ok, log=self.log)
        quantization, quant_name = self._quantization_config(device, dtype)
        started = time.monotonic()
        pipe = self._from_pretrained(getattr(diffusers, self.pipeline_class), dtype, quantization, torch)
        configure_vae(pipe, s)
        offloaded = place_pipeline(self.log, self.name, pipe, device, cpu_offload=s.cpu_offload)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self._used = {
            "dtype": dtype_name(dtype),
            "vae_dtype": dtype_name(pipe.vae.dtype),
            "device": str(device),
            "quantization_used": quant_name,
            "cpu_offload": offloaded,
            "pipeline": type(pipe).__name__,
        }
        self.log.info(
            "%s: loaded %s in %.1f s (%s)", self.name, self.model_id, time.monotonic() - started, self._used
        )

    def _quantization_config(self, device, dtype):
        """(``PipelineQuantizationConfig`` for the transformer, or None; the quantization actually used).

        ``auto`` is ``int8wo`` on CUDA (the transformer is the large module) and ``none`` elsewhere."""
        asked = self.settings.quantization
        if asked not in _QUANTIZATIONS:
            raise AdapterError(
                f"quantization: {self.name} takes none, int8wo or nf4 (or auto), got {asked!r}"
            )
        chosen = auto_quantization(self.log, self.name, asked, device, on_cuda="int8wo")
        if chosen == "none":
            return None, "none"
        import diffusers

        if chosen == "int8wo":
            from torchao.quantization import Int8WeightOnlyConfig

            backend = diffusers.TorchAoConfig(Int8WeightOnlyConfig())
        elif device.type != "cuda":
            self.log.warning(
                "%s: nf4 needs bitsandbytes on CUDA; loading the transformer unquantized on %s",
                self.name,
                device,
            )
            return None, "none"
        else:
            backend = diffusers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype
            )
        return diffusers.PipelineQuantizationConfig(quant_mapping={"transformer": backend}), chosen

    def _from_pretrained(self, pipeline_cls, dtype, quantization, torch):
        source, local = weights_source(self.name, self.model_id)
        if local:
            check_pipeline_folder(self.name, Path(source), (self.pipeline_class, *self.accepts_pipelines))
        kwargs: dict[str, Any] = {
            "dtype": {"default": dtype, "vae": torch.float32} if self.vae_fp32 else dtype,
            **hub_kwargs(self.settings, local=local, default_revision=self.default_revision),
        }
        if quantization is not None:
            kwargs["quantization_config"] = quantization
        with load_errors(self.name, self.pipeline_class, source):
            return pipeline_cls.from_pretrained(source, **kwargs)

    def _unload(self) -> None:
        self.pipe = None
        self._used = {}
        free_memory()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self._used}

    # ----- generation -----

    def generate(self, request: ClipRequest) -> ClipFrames:
        self.load()
        constraints = self.constraints_for(self.settings)
        self._check_request(request, constraints)
        num_frames = constraints.generation_frames(request.num_frames)
        kwargs = self._pipeline_kwargs(request, num_frames)
        output = self._run(kwargs, request)
        frames, nan_frames = to_uint8_frames(output.frames[0], request.num_frames)
        if nan_frames:
            self.log.warning(
                "%s: %d frames held NaN/inf (set to black): %s", self.name, len(nan_frames), nan_frames
            )
        return ClipFrames(
            frames=frames,
            fps=request.fps,
            seed=request.seed,
            model_id=self.model_id,
            generated_frames=int(output.frames[0].shape[0]),
            nan_frames=nan_frames,
        )

    def _check_request(self, request: ClipRequest, constraints: VideoConstraints) -> None:
        usable = constraints.usable_frames
        if not 1 <= request.num_frames <= usable:
            raise AdapterError(
                f"num_frames: {self.name} keeps 1..{usable} frames per clip ({constraints.rule_text()}), "
                f"got {request.num_frames}"
            )
        problems = constraints.check(self.name, width=request.width, height=request.height, fps=request.fps)
        if problems:
            self.log.warning(
                "%s: request outside what the model was trained for: %s", self.name, "; ".join(problems)
            )

    def _conditioning_image(self, request: ClipRequest) -> Image.Image:
        from PIL import Image

        image = request.image.convert("RGB")
        if image.size != (request.width, request.height):
            image = image.resize((request.width, request.height), Image.Resampling.LANCZOS)
        return image

    def _pipeline_kwargs(self, request: ClipRequest, num_frames: int) -> dict[str, Any]:
        """Everything the pipeline call takes for ``request`` but the step callback."""
        import torch

        s = self.settings
        return {
            "image": self._conditioning_image(request),
            "prompt": request.prompt,
            "height": request.height,
            "width": request.width,
            "num_frames": num_frames,
            "num_inference_steps": s.num_inference_steps or self.default_steps,
            "guidance_scale": self.default_guidance if s.guidance_scale is None else s.guidance_scale,
            "generator": torch.Generator("cpu").manual_seed(request.seed),
            "output_type": "np",
            **self._model_kwargs(),
        }

    def _model_kwargs(self) -> dict[str, Any]:
        """Call arguments only this model's pipeline takes."""
        return {}

    def _run(self, kwargs: dict[str, Any], request: ClipRequest):
        reporter = _StepReporter(kwargs["num_inference_steps"], request.on_step, request.deadline)
        hook = self.pipe.transformer.register_forward_pre_hook(reporter.mark_start)
        try:
            return self.pipe(**kwargs, callback_on_step_end=reporter)
        except BaseException:
            self.pipe.maybe_free_model_hooks()  # an interrupted call leaves offloaded modules on the GPU
            raise
        finally:
            hook.remove()


class _CogVideoX(DiffusersVideoModel):
    """CogVideoX image-to-video: T5 text encoder, prompts up to the transformer's ``max_text_seq_length``."""

    pipeline_class = "CogVideoXImageToVideoPipeline"
    default_guidance = 6.0
    fp16_ok = False
    allow_patterns = _repo_files(("transformer", "vae", "text_encoder"), ("tokenizer",))

    def _model_kwargs(self) -> dict[str, Any]:
        opts = self.settings.options
        return {
            "max_sequence_length": int(self.pipe.transformer.config.max_text_seq_length),
            "use_dynamic_cfg": bool(opts.get("use_dynamic_cfg", False)),
            "negative_prompt": opts.get("negative_prompt"),
        }


class CogVideoX5bI2V(_CogVideoX):
    """CogVideoX-5B-I2V: 720x480 only (learned positional embeddings), 49 frames at 8 fps, 40 kept per clip
    by default (option ``trim_frames``, at most 49)."""

    name = "cogvideox_5b_i2v"
    weights_gb = 21.2
    default_repo = "THUDM/CogVideoX-5b-I2V"
    constraints = VideoConstraints(
        size=SizeRule(sizes=((720, 480),)),
        frame_step=8,
        native_frames=(49,),
        max_frames=49,
        max_clip_frames=40,
        fps=(8,),
    )


class CogVideoX15I2V(_CogVideoX):
    """CogVideoX1.5-5B-I2V: 81 or 161 frames at 16 fps.

    Size: diffusers needs sides divisible by 16 (VAE 8x times patch 2) and within the RoPE grid
    (``sample_height/width`` 300 latents = 2400 px); the model card's trained range is 768..1360 px
    (shorter side 768), which the rule below enforces apart from "shorter side exactly 768".
    """

    name = "cogvideox15_5b_i2v"
    weights_gb = 21.1
    default_repo = "zai-org/CogVideoX1.5-5B-I2V"
    constraints = VideoConstraints(
        size=SizeRule(multiple_of=16, min_side=768, max_side=1360),
        frame_step=16,
        native_frames=(81, 161),
        max_frames=161,
        fps=(16,),
    )


class Wan22TI2V5B(DiffusersVideoModel):
    """Wan2.2-TI2V-5B through ``WanImageToVideoPipeline`` (``expand_timesteps``): sides a multiple of 32
    (VAE 16x times patch 2), 4N+1 frames up to 121, 24 fps. The VAE stays fp32 (22.8 GB bf16 + 1.4 GB)."""

    name = "wan22_ti2v_5b"
    weights_gb = 24.2
    default_repo = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    pipeline_class = "WanImageToVideoPipeline"
    allow_patterns = _repo_files(("transformer", "vae", "text_encoder"), ("tokenizer",))
    default_guidance = 5.0
    vae_fp32 = True
    accepts_pipelines = ("WanPipeline",)  # the text-to-video class holds the same modules
    constraints = VideoConstraints(
        size=SizeRule(multiple_of=32, min_side=32, max_side=1280),
        frame_step=4,
        max_frames=121,
        fps=(24,),
    )

    def _model_kwargs(self) -> dict[str, Any]:
        return {"negative_prompt": self.settings.options.get("negative_prompt")}


class HunyuanI2V(DiffusersVideoModel):
    """HunyuanVideo-I2V (16-channel, ``token_replace``): sides a multiple of 16 (VAE 8x times patch 2), 4N+1
    frames up to 129 (the pipeline's default: 5.4 s at HunyuanVideo's 24 fps), embedded
    guidance 6.0 (no classifier-free guidance)."""

    name = "hunyuan_i2v"
    weights_gb = 43.1
    default_repo = "hunyuanvideo-community/HunyuanVideo-I2V"
    pipeline_class = "HunyuanVideoImageToVideoPipeline"
    allow_patterns = _repo_files(
        ("transformer", "vae", "text_encoder", "text_encoder_2"),
        ("tokenizer", "tokenizer_2"),
        ("image_processor",),
    )
    default_guidance = 6.0
    constraints = VideoConstraints(
        size=SizeRule(multiple_of=16, min_side=16, max_side=1280),
        frame_step=4,
        max_frames=129,
        fps=(24,),
    )
