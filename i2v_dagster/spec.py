"""The job spec: one video, validated by pydantic before any work.

The same model serves every entry point: a YAML/JSON file (`i2v validate`, the files in ``jobs/``,
which are Dagster run config with the spec under ``ops.script.config``), ``--set key=value`` overrides,
and the Dagster Launchpad (the model is a ``dagster.Config``, so its field descriptions show there).
Every error names the field and the offending value.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from i2v_dagster.errors import AdapterError, SpecError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_SEED = 2**32 - 1
NONE = "none"
OPTIONAL_ROLES = ("speech", "scorer")


class Scene(dg.Config):
    """One scene: what is said, what is seen, how it moves."""

    narration: str = Field("", description="Text spoken over the scene (audio first: decides its length).")
    visual_prompt: str = Field(..., min_length=1, description="What the scene's keyframe shows.")
    motion_prompt: str = Field("", description="How the scene moves (the video model's prompt).")
    duration_s: float | None = Field(
        None, gt=0, le=600, description="Length in seconds when there is no narration (silent scenes)."
    )


class Script(dg.Config):
    """A script: what a script writer returns, and what a hand-written spec holds."""

    subject: str = Field(..., min_length=1, description="Who or what the video is about.")
    scenes: list[Scene] = Field(..., min_length=1, description="The scenes, in order.")


class ModelChoice(dg.Config):
    """Which adapter plays a role, and how it is loaded."""

    adapter: str = Field(..., description="Adapter name (see `i2v adapters`).")
    model: str | None = Field(
        None, description="Hugging Face repo id or a local folder; empty means the adapter's default."
    )
    revision: str | None = Field(None, description="Hub revision (commit, tag or branch) to pin.")
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="Weight dtype.")
    quantization: Literal["auto", "none", "int8wo", "nf4"] = Field(
        "auto",
        description="auto: the adapter's choice (NF4 for FLUX, int8wo for video transformers on CUDA; "
        "none on CPU); int8wo: torchao int8 weight-only; nf4: bitsandbytes 4-bit (CUDA only); "
        "none: full precision.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present.")
    cpu_offload: bool = Field(False, description="Model CPU offload (needs an accelerator).")
    vae_tiling: bool = Field(True, description="Decode the VAE in tiles (less memory).")
    vae_slicing: bool = Field(False, description="Decode the VAE one sample at a time.")
    num_inference_steps: int | None = Field(None, gt=0, le=500, description="Denoising steps.")
    guidance_scale: float | None = Field(None, ge=0, description="Classifier-free guidance scale.")
    cache_dir: str | None = Field(None, description="Hugging Face cache folder override.")
    options: dict[str, Any] = Field(default_factory=dict, description="Adapter-specific options.")

    def settings(self):
        from i2v_dagster.models.base import AdapterSettings

        data = self.model_dump()
        data.pop("adapter")
        return AdapterSettings(**data)


class Models(dg.Config):
    """Adapter per role. ``none`` turns narration (a silent video) or scoring off."""

    script: ModelChoice = Field(
        default=ModelChoice(adapter="spec"),
        description="Script writer: `spec` (the scenes below), `ollama`, `mock_script`.",
    )
    speech: ModelChoice = Field(
        default=ModelChoice(adapter="mock_speech"),
        description="Narration: `mock_speech`, `bark`; `none` for a silent video (scene durations apply).",
    )
    image: ModelChoice = Field(
        default=ModelChoice(adapter="mock_image"), description="Keyframes: `mock_image`, `flux_schnell`."
    )
    video: ModelChoice = Field(
        default=ModelChoice(adapter="mock_video"),
        description="Clips: `mock_video`, `cogvideox_5b_i2v`, `cogvideox15_5b_i2v`, `wan22_ti2v_5b`, "
        "`hunyuan_i2v`.",
    )
    scorer: ModelChoice = Field(
        default=ModelChoice(adapter="none"),
        description="Prompt-fidelity scorer: `clip` (open_clip ViT-B-32 and ViT-L-14); `none`: no scoring.",
    )


class Checks(dg.Config):
    """Thresholds of the asset checks (see the README's verification section)."""

    min_motion: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Motion score at least: median over frame pairs of the fraction of pixels that change.",
    )
    max_seam_ratio: float = Field(
        3.0, gt=0, description="Seam difference / typical in-clip frame difference, at most."
    )
    max_color_drift: float = Field(12.0, gt=0, description="Lab colour-statistics shift from keyframe 0.")
    max_frozen_frames: int = Field(
        6, ge=1, description="Longest run of identical consecutive frames allowed inside a clip."
    )
    min_clip_score: float = Field(0.2, ge=-1, le=1, description="CLIP cosine similarity, at least.")
    clip_score_severity: Literal["WARN", "ERROR"] = Field("WARN", description="Severity of the CLIP check.")
    sampled_frames: int = Field(3, ge=1, le=64, description="Frames per clip the scorer samples.")


class JobSpec(dg.Config):
    """One video: scenes, prompts, seed, models, limits."""

    name: str = Field(
        ..., description="The video key (a folder name and the `videos` partition): " + NAME_PATTERN
    )
    brief: str = Field("", description="What the video is about (for a script writer that writes scenes).")
    subject: str = Field("", description="Who or what the video is about (goes into every keyframe prompt).")
    scenes: list[Scene] = Field(
        default_factory=list, description="The scenes (empty: the script writer writes them)."
    )
    num_scenes: int = Field(3, ge=1, le=100, description="Scenes to ask a script writer for.")
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="One seed for every keyframe; clip seeds derive from it."
    )
    fps: int = Field(24, gt=0, le=120, description="Frames per second of the video.")
    width: int = Field(720, gt=0, le=4096, description="Frame width in pixels.")
    height: int = Field(480, gt=0, le=4096, description="Frame height in pixels.")
    max_clip_frames: int | None = Field(
        None, gt=0, description="Most frames per clip (a longer scene becomes several chained clips)."
    )
    chain_mode: Literal["last_frame", "keyframe"] = Field(
        "last_frame",
        description="last_frame: clip i starts from clip i-1's last frame; "
        "keyframe: each scene starts from its keyframe.",
    )
    initial_image: str | None = Field(
        None, description="Image that starts the first clip instead of keyframe 0."
    )
    clip_time_limit_s: float = Field(
        600.0, gt=0, description="Seconds one clip may take (the step fails after)."
    )
    outputs_root: str | None = Field(
        None, description="Folder for outputs (default: the `outputs` resource's)."
    )
    visual_style: str = Field("cinematic lighting, 35mm photograph", description="Keyframe prompt style.")
    texture_suffix: str = Field(
        "fine film grain, detailed textures", description="Appended to keyframe prompts."
    )
    motion_style: str = Field("smooth slow camera motion", description="Appended to motion prompts.")
    color_correction: bool = Field(
        False, description="Match each clip's colours to the first clip's reference."
    )
    models: Models = Field(default=Models(), description="Adapter per role.")
    checks: Checks = Field(default=Checks(), description="Asset check thresholds.")

    @field_validator("name")
    @classmethod
    def _name_safe(cls, value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            raise ValueError(
                f"name must match {NAME_PATTERN} (lowercase letters, digits, '-' and '_'; "
                "no '/', '..' or spaces)"
            )
        return value

    @model_validator(mode="after")
    def _check_models(self) -> JobSpec:
        errors = spec_problems(self)
        if errors:
            raise ValueError("\n".join(errors))
        return self

    # ---- derived values -------------------------------------------------------------------
    @property
    def silent(self) -> bool:
        return self.models.speech.adapter == NONE

    @property
    def scorer(self) -> ModelChoice | None:
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


def spec_problems(spec: JobSpec) -> list[str]:
    """Adapter and file checks that need more than one field; each message names its field."""
    from i2v_dagster.models.registry import adapter_role, get_adapter_info

    errors: list[str] = []
    roles = spec.models.model_dump()
    for role, choice in roles.items():
        field = f"models.{role}.adapter"
        if choice["adapter"] == NONE:
            if role not in OPTIONAL_ROLES:
                errors.append(f"{field}: 'none' is allowed for {' and '.join(OPTIONAL_ROLES)} only")
            continue
        try:
            actual = adapter_role(choice["adapter"])
        except AdapterError as exc:
            errors.append(f"{field}: {exc}")
            continue
        if actual != role:
            errors.append(f"{field}: {choice['adapter']!r} is a {actual} adapter, not a {role} adapter")
    if errors:
        return errors
    if spec.models.script.adapter == "spec" and not spec.scenes:
        errors.append("scenes: empty, and models.script.adapter is 'spec' (the scenes must be in the spec)")
    if spec.silent:
        missing = [i for i, s in enumerate(spec.scenes) if s.duration_s is None]
        if missing:
            errors.append(
                f"scenes.{missing[0]}.duration_s: required when models.speech.adapter is 'none' "
                "(silent video)"
            )
    image = get_adapter_info(spec.models.image.adapter)
    if image.constraints is not None:
        errors += image.constraints.check(image.name, width=spec.width, height=spec.height)
    video = get_adapter_info(spec.models.video.adapter)
    constraints = video.constraints_for(spec.models.video.settings())
    if constraints is not None:
        errors += constraints.check(
            video.name, width=spec.width, height=spec.height, fps=spec.fps, clip_frames=spec.max_clip_frames
        )
    if spec.initial_image is not None:
        path = Path(spec.initial_image).expanduser()
        if not path.is_file():
            errors.append(f"initial_image: file not found: {path.resolve()}")
    return errors


# ---- loading -------------------------------------------------------------------------------


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "spec"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "value_error" and not err["loc"]:
            lines.extend(msg.split("\n"))
            continue
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
        lines.append(f"{loc}: {msg}{shown}")
    return "invalid job spec:\n  " + "\n  ".join(lines)


def extract_spec_dict(data: Any, *, source: str = "spec") -> dict[str, Any]:
    """Accept a bare spec, or Dagster run config holding it under ``ops.script.config``."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    ops = data.get("ops")
    if isinstance(ops, dict) and "script" in ops:
        try:
            inner = ops["script"]["config"]
        except (KeyError, TypeError) as exc:
            raise SpecError(f"{source}: ops.script.config is missing") from exc
        if not isinstance(inner, dict):
            raise SpecError(f"{source}: ops.script.config must be a mapping")
        return inner
    return data


def read_spec_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"spec file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {exc}") from exc
    return extract_spec_dict(data, source=str(p))


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML scalars/collections)."""
    out = copy.deepcopy(data)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {item!r}: expected key=value")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise SpecError(f"--set {key}: cannot parse value {raw!r}: {exc}") from exc
        target: Any = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if isinstance(target, list):
                target = target[_list_index(key, part, target)]
                continue
            target = target.setdefault(part, {})
            if target is None:
                raise SpecError(f"--set {key}: {part} is null")
        last = parts[-1]
        if isinstance(target, list):
            target[_list_index(key, last, target)] = value
        else:
            target[last] = value
    return out


def _list_index(key: str, part: str, seq: list) -> int:
    if not part.isdigit() or int(part) >= len(seq):
        raise SpecError(f"--set {key}: {part!r} is not an index of a list of {len(seq)}")
    return int(part)


def parse_spec(data: dict[str, Any], overrides: list[str] | None = None) -> JobSpec:
    base = data
    if overrides:
        try:  # overrides of nested fields land on the full spec, defaults filled in
            base = JobSpec(**data).model_dump()
        except (ValidationError, TypeError):
            base = data
    merged = apply_overrides(base, overrides)
    try:
        return JobSpec(**merged)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc)) from exc
    except TypeError as exc:
        raise SpecError(f"invalid job spec: {exc}") from exc


def load_spec(path: str | Path, overrides: list[str] | None = None) -> JobSpec:
    return parse_spec(read_spec_file(path), overrides)
