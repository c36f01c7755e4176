"""Image-to-video adapters on diffusers pipelines: CogVideoX-5B-I2V, CogVideoX1.5-5B-I2V, Wan2.2-TI2V-5B and
HunyuanVideo-I2V.

:class:`DiffusersVideoModel` does the work once: it loads a pipeline (dtype, device, quantization, VAE
tiling, offload), runs it with per-step progress and deadline checks, and turns its output into uint8
frames. Each model class only names its pipeline, repo, defaults and constraints, and adds the call
arguments its pipeline needs.

Loading (dtype, device, quantization, offload, the memory plan) is :class:`DiffusersAdapter`'s; see
:mod:`i2v_dagster.models.diffusers_base`. Per model:

- ``dtype``: CogVideoX refuses ``fp16`` (the 5B models overflow in fp16 and make NaN frames). Wan keeps
  its VAE in fp32, as its model card does.
- ``quantization``: ``auto`` is the memory planner's choice on CUDA (bf16 when it fits the card, then the
  transformer in int8 weight-only, then the text encoder too, then CPU offload) and ``none`` on CPU;
  ``describe()["quantization_used"]`` reports it. ``int8wo`` is torchao int8 weight-only on the
  transformer (CPU and CUDA); ``nf4`` is bitsandbytes 4-bit on the transformer, CUDA only.
- ``num_inference_steps`` / ``guidance_scale``: per-model defaults when None.

Options (``settings.options``; :class:`CogVideoXOptions`, :class:`WanOptions`, :class:`VideoOptions`):

- ``trim_frames``: frames kept per clip (1..the model's ``max_frames``); CogVideoX-5B keeps 40 of its 49
  by default. :meth:`DiffusersVideoModel.constraints_for` gives the constraints with it applied.
- ``any_size`` (Wan, HunyuanVideo; default False): accept any size the pipeline can run (sides a multiple
  of 32 / 16) instead of the sizes the model was trained for (small test models, experiments).
- ``negative_prompt`` (CogVideoX, Wan): text for classifier-free guidance's negative branch; Wan's
  default is the standard negative prompt of its examples (:data:`WAN_NEGATIVE_PROMPT`).
- ``use_dynamic_cfg`` (CogVideoX, default False, as on the model cards): the cosine guidance schedule that
  CogVideoX's demo pairs with its DPM scheduler.
- ``plan_size``: ``[width, height, frames]`` the memory plan is made for (default: the model's native
  size and frame count).
- ``compile``, ``cache``, ``cache_threshold``, ``cache_interval``, ``attention_backend``: the speed
  settings (:mod:`i2v_dagster.models.speed`). Each model names the transformer blocks ``compile`` compiles;
  CogVideoX's attention takes torch's native kernel only; HunyuanVideo-I2V masks its text padding (the
  backends' variable-length kernels) and its pipeline sets no cache context (the adapter sets one).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from i2v_dagster.errors import AdapterError
from i2v_dagster.models import memory
from i2v_dagster.models.base import (
    AdapterSettings,
    ClipFrames,
    ClipRequest,
    StepProgress,
    VideoModel,
    parse_options,
)
from i2v_dagster.models.constraints import SizeRule, VideoConstraints
from i2v_dagster.models.diffusers_base import DiffusersAdapter, DiffusersOptions

if TYPE_CHECKING:
    from PIL import Image

    from i2v_dagster.guardrails import Deadline
    from i2v_dagster.models.base import ProgressCallback

WAN_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
    "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still "
    "picture, messy background, three legs, many people in the background, walking backwards"
)
"""The negative prompt of diffusers' Wan examples (``pipeline_wan_i2v.py``), the English of Wan's own."""
MAX_PROMPT = 2_000


class VideoOptions(DiffusersOptions):
    """``models.video.options`` of the diffusers video adapters (plus the speed settings of
    :class:`~i2v_dagster.models.diffusers_base.DiffusersOptions`)."""

    trim_frames: int | None = Field(
        None,
        ge=1,
        le=161,
        description="Frames kept per clip (1..the model's most frames per clip); CogVideoX-5B keeps 40 of "
        "its 49 by default.",
    )
    any_size: bool = Field(
        False,
        description="Wan and HunyuanVideo: accept any size the pipeline can run (sides a multiple of 32 / "
        "16) instead of the sizes the model was trained for.",
    )


class CogVideoXOptions(VideoOptions):
    fixed_attention = (
        "CogVideoX's attention processor calls torch's scaled_dot_product_attention itself, not diffusers' "
        "dispatcher"
    )

    negative_prompt: str | None = Field(
        None, max_length=MAX_PROMPT, description="Text for classifier-free guidance's negative branch."
    )
    use_dynamic_cfg: bool = Field(
        False, description="The cosine guidance schedule CogVideoX's demo pairs with its DPM scheduler."
    )


class WanOptions(VideoOptions):
    negative_prompt: str | None = Field(
        WAN_NEGATIVE_PROMPT,
        max_length=MAX_PROMPT,
        description="Text for classifier-free guidance's negative branch (default: the standard negative "
        "prompt of Wan's examples; null for none).",
    )


def _repo_files(
    models: tuple[str, ...], tokenizers: dict[str, tuple[str, ...]], processors: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """``allow_patterns`` for a diffusers-format repo: JSON (configs, shard indexes) and safetensors of each
    module, each tokenizer folder's files as given (a ``spiece.model`` only where there is no
    ``tokenizer.json``), the scheduler config. Leaves out ``.bin`` duplicates and anything outside those
    folders (original checkpoints, assets)."""
    patterns = ["model_index.json", "scheduler/scheduler_config.json"]
    for module in models:
        patterns += [f"{module}/*.json", f"{module}/*.safetensors"]
    for folder, files in tokenizers.items():
        patterns += [f"{folder}/{name}" for name in files]
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


class DiffusersVideoModel(DiffusersAdapter, VideoModel):
    """A diffusers image-to-video pipeline behind the :class:`VideoModel` contract, held in ``self.pipe``."""

    constraints: ClassVar[VideoConstraints] = VideoConstraints()
    any_size_rule: ClassVar[SizeRule | None] = None
    """What the pipeline can run at all (``options.any_size``); None where only the trained size works."""
    default_steps: ClassVar[int] = 50
    default_guidance: ClassVar[float] = 5.0

    # ----- constraints -----

    @classmethod
    def constraints_for(cls, settings: AdapterSettings | None) -> VideoConstraints:
        """The class constraints with the ``trim_frames`` and ``any_size`` options of ``settings`` applied."""
        options = parse_options(cls.Options, cls.name, settings.options if settings is not None else {})
        constraints = cls.constraints
        if options.any_size:
            if cls.any_size_rule is None:
                raise AdapterError(
                    f"options.any_size: {cls.name} makes only the sizes it was trained for (learned "
                    "positional embeddings or a fixed size rule); leave it false"
                )
            constraints = dataclasses.replace(constraints, size=cls.any_size_rule)
        trim = options.trim_frames
        if trim is None:
            return constraints
        most = constraints.max_frames
        if trim > most:
            raise AdapterError(
                f"options.trim_frames: {cls.name} keeps 1..{most} frames per clip, got {trim!r}"
            )
        return dataclasses.replace(constraints, max_clip_frames=trim)

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
            return self._call_pipeline(**kwargs, callback_on_step_end=reporter)
        except BaseException:
            self.pipe.maybe_free_model_hooks()  # an interrupted call leaves offloaded modules on the GPU
            raise
        finally:
            hook.remove()


class _CogVideoX(DiffusersVideoModel):
    """CogVideoX image-to-video: T5 text encoder (a ``spiece.model`` tokenizer), prompts up to the
    transformer's ``max_text_seq_length``."""

    pipeline_class = "CogVideoXImageToVideoPipeline"
    default_guidance = 6.0
    fp16_ok = False
    spiece_tokenizer = True
    allow_patterns = _repo_files(("transformer", "vae", "text_encoder"), {"tokenizer": ("*.json", "*.model")})
    Options = CogVideoXOptions
    compile_blocks = ("CogVideoXBlock",)

    def _model_kwargs(self) -> dict[str, Any]:
        opts: CogVideoXOptions = self.options
        return {
            "max_sequence_length": int(self.pipe.transformer.config.max_text_seq_length),
            "use_dynamic_cfg": opts.use_dynamic_cfg,
            "negative_prompt": opts.negative_prompt,
        }


class CogVideoX5bI2V(_CogVideoX):
    """CogVideoX-5B-I2V: 720x480 only (learned positional embeddings), 49 frames at 8 fps, 40 kept per clip
    by default (option ``trim_frames``, at most 49)."""

    name = "cogvideox_5b_i2v"
    weights_gb = round(memory.weights_gb("cogvideox_5b_i2v"), 1)
    default_repo = "THUDM/CogVideoX-5b-I2V"
    default_plan_size = (720, 480, 49)
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
    weights_gb = round(memory.weights_gb("cogvideox15_5b_i2v"), 1)
    default_repo = "zai-org/CogVideoX1.5-5B-I2V"
    default_plan_size = (1360, 768, 81)
    constraints = VideoConstraints(
        size=SizeRule(multiple_of=16, min_side=768, max_side=1360),
        frame_step=16,
        native_frames=(81, 161),
        max_frames=161,
        fps=(16,),
    )


class Wan22TI2V5B(DiffusersVideoModel):
    """Wan2.2-TI2V-5B through ``WanImageToVideoPipeline`` (``expand_timesteps``): trained for 1280x704 and
    704x1280 (720p; other multiples of 32 run but are outside its training), 4N+1 frames up to 121,
    24 fps. The VAE stays fp32 (22.8 GB bf16 + 1.4 GB). Classifier-free guidance runs against
    :data:`WAN_NEGATIVE_PROMPT` unless ``options.negative_prompt`` says otherwise."""

    name = "wan22_ti2v_5b"
    weights_gb = round(memory.weights_gb("wan22_ti2v_5b"), 1)
    default_repo = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    pipeline_class = "WanImageToVideoPipeline"
    allow_patterns = _repo_files(("transformer", "vae", "text_encoder"), {"tokenizer": ("*.json",)})
    default_guidance = 5.0
    vae_fp32 = True
    accepts_pipelines = ("WanPipeline",)  # the repo is saved as the text-to-video class (same modules)
    default_plan_size = (1280, 704, 121)
    constraints = VideoConstraints(
        size=SizeRule(sizes=((1280, 704), (704, 1280))),
        frame_step=4,
        max_frames=121,
        fps=(24,),
    )
    any_size_rule = SizeRule(multiple_of=32, min_side=32, max_side=1280)  # VAE 16x times patch 2
    Options = WanOptions
    compile_blocks = ("WanTransformerBlock",)

    def _model_kwargs(self) -> dict[str, Any]:
        return {"negative_prompt": self.options.negative_prompt}


class HunyuanI2V(DiffusersVideoModel):
    """HunyuanVideo-I2V (16-channel, ``token_replace``): 720p, 1280x720 or 720x1280 (the size diffusers'
    pipeline defaults to and the model card's I2V resolution), 4N+1 frames up to 129 (the pipeline's
    default: 5.4 s at 24 fps), embedded guidance 6.0 (no classifier-free guidance)."""

    name = "hunyuan_i2v"
    weights_gb = round(memory.weights_gb("hunyuan_i2v"), 1)
    default_repo = "hunyuanvideo-community/HunyuanVideo-I2V"
    pipeline_class = "HunyuanVideoImageToVideoPipeline"
    allow_patterns = _repo_files(
        ("transformer", "vae", "text_encoder", "text_encoder_2"),
        {"tokenizer": ("*.json",), "tokenizer_2": ("*.json", "*.txt")},
        ("image_processor",),
    )
    default_guidance = 6.0
    default_plan_size = (1280, 720, 129)
    constraints = VideoConstraints(
        size=SizeRule(sizes=((1280, 720), (720, 1280))),
        frame_step=4,
        max_frames=129,
        fps=(24,),
    )
    any_size_rule = SizeRule(multiple_of=16, min_side=16, max_side=1280)  # VAE 8x times patch 2
    Options = VideoOptions
    compile_blocks = (
        "HunyuanVideoTokenReplaceTransformerBlock",
        "HunyuanVideoTokenReplaceSingleTransformerBlock",
        "HunyuanVideoTransformerBlock",
        "HunyuanVideoSingleTransformerBlock",
    )
    """The token-replace blocks the I2V model runs (diffusers' ``_repeated_blocks`` lists only the plain
    ones) and the plain ones of a ``latent_concat`` checkpoint."""
    attention_masked = True
    sets_cache_context = False
