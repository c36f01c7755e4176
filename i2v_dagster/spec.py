"""The job spec: one video, as plain pydantic models (no Dagster; imports in milliseconds).

The same models serve every entry point: a YAML/JSON file (``i2v validate``, the files in ``jobs/``, which
are Dagster run config with the spec under ``ops.script.config``), ``--set key=value`` overrides, and the
Dagster Launchpad (``i2v_dagster.defs.config`` turns these models into Dagster config, so every field's
description shows there and the closed sets below are enums the Launchpad checks before launch).

Every model refuses unknown keys and takes types strictly (no ``true`` for a number, no inf or NaN).
Rules that need more than one field or a look at the adapters (sizes, frame counts, files) live in
:mod:`i2v_dagster.specfile` and :mod:`i2v_dagster.models.registry`; loading files and ``--set`` overrides
live in :mod:`i2v_dagster.specfile` too.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_SEED = 2**32 - 1
NONE = "none"
MAX_SCENES = 200
MAX_TEXT = 2_000
"""Characters in one narration or prompt (a 1 MB narration would allocate gigabytes of audio)."""
MAX_PROMPT = 1_000

ScriptAdapter = Literal["spec", "ollama", "mock_script"]
SpeechAdapter = Literal["mock_speech", "bark", "none"]
ImageAdapter = Literal["mock_image", "flux_schnell"]
VideoAdapter = Literal["mock_video", "cogvideox_5b_i2v", "cogvideox15_5b_i2v", "wan22_ti2v_5b", "hunyuan_i2v"]
ScorerAdapter = Literal["clip", "none"]
ADAPTERS_BY_ROLE: dict[str, Any] = {
    "script": ScriptAdapter,
    "speech": SpeechAdapter,
    "image": ImageAdapter,
    "video": VideoAdapter,
    "scorer": ScorerAdapter,
}
"""Role -> the closed set of adapter names the spec accepts (the registry maps each name to a class)."""

Preset = Literal[
    "auto", "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]


class SpecModel(BaseModel):
    """Base of every spec model: unknown keys refused, strict types, finite numbers, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Scene(SpecModel):
    """One scene: what is said, what is seen, how it moves."""

    narration: str = Field(
        "", max_length=MAX_TEXT, description="Text spoken over the scene (audio first: decides its length)."
    )
    visual_prompt: str = Field(
        ..., min_length=1, max_length=MAX_PROMPT, description="What the scene's keyframe shows."
    )
    motion_prompt: str = Field(
        "", max_length=MAX_PROMPT, description="How the scene moves (the video model's prompt)."
    )
    duration_s: float | None = Field(
        None, gt=0, le=600, description="Length in seconds when there is no narration (silent scenes)."
    )


class Script(SpecModel):
    """A script: what a script writer returns, and what a hand-written spec holds."""

    subject: str = Field(
        ..., min_length=1, max_length=MAX_PROMPT, description="Who or what the video is about."
    )
    scenes: list[Scene] = Field(..., min_length=1, max_length=MAX_SCENES, description="The scenes, in order.")


class ModelChoice(SpecModel):
    """Which adapter plays a role, and how it is loaded."""

    adapter: str = Field(..., description="Adapter name (see `i2v adapters`).")
    model: str | None = Field(
        None,
        max_length=1_000,
        description="Hugging Face repo id or a local folder; empty means the adapter's default.",
    )
    revision: str | None = Field(
        None, max_length=200, description="Hub revision (commit, tag or branch) to pin."
    )
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="Weight dtype.")
    quantization: Literal["auto", "none", "int8wo", "int8dq", "fp8", "nf4"] = Field(
        "auto",
        description="auto: chosen by the memory planner for the card's free memory (bf16 where it fits, "
        "else int8 weight-only, then CPU offload; plain weights on CPU); int8wo: torchao int8 weight-only; "
        "int8dq: torchao int8 dynamic activations + int8 weights; fp8: torchao float8 (cards with fp8, "
        "compute capability 8.9+); nf4: bitsandbytes 4-bit (CUDA only); none: full precision.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present.")
    cpu_offload: bool = Field(False, description="Model CPU offload (needs an accelerator).")
    vae_tiling: bool = Field(True, description="Decode the VAE in tiles (less memory).")
    vae_slicing: bool = Field(False, description="Decode the VAE one sample at a time.")
    num_inference_steps: int | None = Field(None, gt=0, le=500, description="Denoising steps.")
    guidance_scale: float | None = Field(None, ge=0, le=100, description="Classifier-free guidance scale.")
    cache_dir: str | None = Field(None, max_length=1_000, description="Hugging Face cache folder override.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Adapter-specific options (checked by the adapter's own model)."
    )


class ScriptChoice(ModelChoice):
    adapter: ScriptAdapter = Field(
        "spec", description="Script writer: `spec` (the scenes below), `ollama`, `mock_script`."
    )


class SpeechChoice(ModelChoice):
    adapter: SpeechAdapter = Field(
        "mock_speech",
        description="Narration: `mock_speech`, `bark`; `none` for a silent video (scene durations apply).",
    )


class ImageChoice(ModelChoice):
    adapter: ImageAdapter = Field("mock_image", description="Keyframes: `mock_image`, `flux_schnell`.")


class VideoChoice(ModelChoice):
    adapter: VideoAdapter = Field(
        "mock_video",
        description="Clips: `mock_video`, `cogvideox_5b_i2v`, `cogvideox15_5b_i2v`, `wan22_ti2v_5b`, "
        "`hunyuan_i2v`.",
    )


class ScorerChoice(ModelChoice):
    adapter: ScorerAdapter = Field(
        "none", description="Prompt-fidelity scorer: `clip` (open_clip ViT-B-32 and ViT-L-14); `none`."
    )


class Models(SpecModel):
    """Adapter per role. ``none`` turns narration (a silent video) or scoring off."""

    script: ScriptChoice = Field(default_factory=ScriptChoice, description="Who writes the scenes.")
    speech: SpeechChoice = Field(default_factory=SpeechChoice, description="Who speaks the narration.")
    image: ImageChoice = Field(default_factory=ImageChoice, description="Who draws the keyframes.")
    video: VideoChoice = Field(default_factory=VideoChoice, description="Who makes the clips.")
    scorer: ScorerChoice = Field(default_factory=ScorerChoice, description="Who scores prompt fidelity.")


class Checks(SpecModel):
    """Thresholds of the asset checks (see the README's verification section)."""

    min_motion: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Motion score at least: median over frame pairs of the fraction of pixels that change.",
    )
    max_seam_ratio: float = Field(
        3.0, gt=0, le=1000, description="Seam difference / typical in-clip frame difference, at most."
    )
    max_color_drift: float = Field(
        12.0, gt=0, le=1000, description="Lab colour-statistics shift from keyframe 0."
    )
    max_frozen_frames: int = Field(
        6, ge=1, le=10_000, description="Longest run of identical consecutive frames allowed inside a clip."
    )
    min_clip_score: float = Field(0.2, ge=-1, le=1, description="CLIP cosine similarity, at least.")
    clip_score_severity: Literal["WARN", "ERROR"] = Field("WARN", description="Severity of the CLIP check.")
    sampled_frames: int = Field(3, ge=1, le=64, description="Frames per clip the scorer samples.")


class Encoder(SpecModel):
    """How clips are encoded (H.264). Stitching copies the clips' streams, so this decides the final too."""

    preset: Preset = Field(
        "auto",
        description="x264 preset; auto: `ultrafast` for the mock video model (the encoder is most of its "
        "cost), `medium` for real models (encoding is seconds against minutes of GPU).",
    )
    crf: int | None = Field(
        None, ge=0, le=51, description="x264 quality (lower is better); empty: 18 for the mock, 16 for real."
    )


class JobSpec(SpecModel):
    """One video: scenes, prompts, seed, models, limits."""

    name: str = Field(
        ...,
        max_length=64,
        description="The video key (a folder name and the `videos` partition): " + NAME_PATTERN,
    )
    brief: str = Field(
        "",
        max_length=MAX_TEXT,
        description="What the video is about (for a script writer that writes scenes).",
    )
    subject: str = Field(
        "",
        max_length=MAX_PROMPT,
        description="Who or what the video is about (goes into every keyframe prompt).",
    )
    scenes: list[Scene] = Field(
        default_factory=list,
        max_length=MAX_SCENES,
        description=f"The scenes (empty: the script writer writes them); at most {MAX_SCENES}.",
    )
    num_scenes: int = Field(3, ge=1, le=100, description="Scenes to ask a script writer for.")
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="One seed for every keyframe; clip seeds derive from it."
    )
    fps: int = Field(24, gt=0, le=120, description="Frames per second of the video.")
    width: int = Field(720, gt=0, le=4096, description="Frame width in pixels.")
    height: int = Field(480, gt=0, le=4096, description="Frame height in pixels.")
    max_clip_frames: int | None = Field(
        None,
        gt=0,
        le=1000,
        description="Most frames per clip (a longer scene becomes several chained clips).",
    )
    chain_mode: Literal["last_frame", "keyframe"] = Field(
        "last_frame",
        description="last_frame: clip i starts from clip i-1's last frame; "
        "keyframe: each scene starts from its keyframe.",
    )
    initial_image: str | None = Field(
        None, max_length=4096, description="Image that starts the first clip instead of keyframe 0."
    )
    clip_time_limit_s: float = Field(
        600.0, gt=0, le=86_400, description="Seconds one clip may take (the step fails after)."
    )
    outputs_root: str | None = Field(
        None, max_length=4096, description="Folder for outputs (default: the `outputs` resource's)."
    )
    target_gpu_gb: float | None = Field(
        None,
        gt=0,
        le=1024,
        description="GPU memory (GB) of the card this job is written for; `i2v plan` checks each stage "
        "fits it when no GPU is present.",
    )
    visual_style: str = Field(
        "cinematic lighting, 35mm photograph", max_length=MAX_PROMPT, description="Keyframe prompt style."
    )
    texture_suffix: str = Field(
        "fine film grain, detailed textures",
        max_length=MAX_PROMPT,
        description="Appended to keyframe prompts.",
    )
    motion_style: str = Field(
        "smooth slow camera motion", max_length=MAX_PROMPT, description="Appended to motion prompts."
    )
    color_correction: bool = Field(
        False, description="Match each clip's colours to the first clip's reference."
    )
    max_attempts: int = Field(
        2,
        ge=1,
        le=10,
        description="Tries per clip: a clip whose blocking checks (broken frames, motion, seam) fail is made "
        "again with the next derived seed, up to this many times; the run fails when they run out.",
    )
    dry_run: bool = Field(
        False,
        description="Validate and plan with the adapters named here, then render with the mock adapters "
        "(no model loads): a quick rehearsal of a real job.",
    )
    encoder: Encoder = Field(default_factory=Encoder, description="H.264 settings of the clips.")
    models: Models = Field(default_factory=Models, description="Adapter per role.")
    checks: Checks = Field(default_factory=Checks, description="Asset check thresholds.")

    @field_validator("name")
    @classmethod
    def _name_safe(cls, value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            raise ValueError(
                f"name must match {NAME_PATTERN} (lowercase letters, digits, '-' and '_'; "
                "no '/', '..' or spaces)"
            )
        return value

    # ---- derived values -------------------------------------------------------------------
    @property
    def silent(self) -> bool:
        return self.models.speech.adapter == NONE

    @property
    def scorer(self) -> ScorerChoice | None:
        return None if self.models.scorer.adapter == NONE else self.models.scorer

    def clip_seed(self, index: int) -> int:
        """Per-clip seed, derived deterministically from the spec's seed."""
        return derive_seed(self.seed, f"clip:{index}")

    def keyframe_prompt(self, scene: Scene, subject: str | None = None) -> str:
        subj = subject if subject is not None else self.subject
        parts = [p for p in (subj, scene.visual_prompt, self.visual_style) if p]
        prompt = ", ".join(parts)
        return f"{prompt}, {self.texture_suffix}" if self.texture_suffix else prompt

    def motion_prompt(self, scene: Scene) -> str:
        base = scene.motion_prompt or scene.visual_prompt
        return f"{base}, {self.motion_style}" if self.motion_style else base


def derive_seed(seed: int, purpose: str) -> int:
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "big")
