"""Adapter name -> class. Constraints, default repos and prefetch patterns live on each class.

Classes are imported by dotted path on first use; adapter modules import torch/diffusers only inside
``load()``, so looking an adapter up (e.g. to validate a spec) is cheap and needs no GPU stack.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from i2v_dagster.errors import AdapterError
from i2v_dagster.extras import missing, missing_extra_message

if TYPE_CHECKING:
    from i2v_dagster.models.base import Adapter, AdapterSettings

ROLES = ("script", "speech", "image", "video", "scorer")

# name -> (role, "module:Class")
_ADAPTERS: dict[str, tuple[str, str]] = {
    # mocks: deterministic, no GPU, seconds
    "mock_script": ("script", "i2v_dagster.models.mock:MockScriptWriter"),
    "mock_speech": ("speech", "i2v_dagster.models.mock:MockSpeech"),
    "mock_image": ("image", "i2v_dagster.models.mock:MockImage"),
    "mock_video": ("video", "i2v_dagster.models.mock:MockVideo"),
    # real models
    "spec": ("script", "i2v_dagster.models.mock:SpecScriptWriter"),
    "ollama": ("script", "i2v_dagster.models.ollama_writer:OllamaScriptWriter"),
    "bark": ("speech", "i2v_dagster.models.bark:BarkSpeech"),
    "flux_schnell": ("image", "i2v_dagster.models.flux:FluxSchnell"),
    "cogvideox_5b_i2v": ("video", "i2v_dagster.models.video_diffusers:CogVideoX5bI2V"),
    "cogvideox15_5b_i2v": ("video", "i2v_dagster.models.video_diffusers:CogVideoX15I2V"),
    "wan22_ti2v_5b": ("video", "i2v_dagster.models.video_diffusers:Wan22TI2V5B"),
    "hunyuan_i2v": ("video", "i2v_dagster.models.video_diffusers:HunyuanI2V"),
    "clip": ("scorer", "i2v_dagster.models.clip_scorer:ClipScorer"),
}


_TORCH_STACK = ("torch", "diffusers", "transformers")
REQUIRES: dict[str, tuple[str, ...]] = {
    "ollama": ("ollama",),
    "bark": ("torch", "transformers"),
    "flux_schnell": _TORCH_STACK,
    "cogvideox_5b_i2v": (*_TORCH_STACK, "sentencepiece"),
    "cogvideox15_5b_i2v": (*_TORCH_STACK, "sentencepiece"),
    "wan22_ti2v_5b": _TORCH_STACK,
    "hunyuan_i2v": _TORCH_STACK,
    "clip": ("torch", "open_clip"),
}
"""Packages each real adapter needs (all in the ``[models]`` extra); the mocks need none."""


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    role: str
    cls: type[Adapter]

    @property
    def repo_id(self) -> str | None:
        return getattr(self.cls, "default_repo", None)

    @property
    def revision(self) -> str | None:
        return getattr(self.cls, "default_revision", None)

    @property
    def allow_patterns(self) -> tuple[str, ...]:
        return tuple(getattr(self.cls, "allow_patterns", ()))

    @property
    def constraints(self):
        return getattr(self.cls, "constraints", None)

    def constraints_for(self, settings=None):
        """The constraints under ``settings`` (e.g. a ``trim_frames`` option), where the class has them."""
        rule = getattr(self.cls, "constraints_for", None)
        return rule(settings) if rule is not None and settings is not None else self.constraints

    @property
    def large(self) -> bool:
        return bool(getattr(self.cls, "large", False))


def adapter_names(role: str | None = None) -> list[str]:
    return sorted(n for n, (r, _) in _ADAPTERS.items() if role is None or r == role)


@cache
def get_adapter_info(name: str) -> AdapterInfo:
    if name not in _ADAPTERS:
        raise AdapterError(f"unknown adapter {name!r}; known: {', '.join(adapter_names())}")
    role, target = _ADAPTERS[name]
    module_name, _, cls_name = target.partition(":")
    module = importlib.import_module(module_name)
    return AdapterInfo(name=name, role=role, cls=getattr(module, cls_name))


def adapter_role(name: str) -> str:
    if name not in _ADAPTERS:
        raise AdapterError(f"unknown adapter {name!r}; known: {', '.join(adapter_names())}")
    return _ADAPTERS[name][0]


def build_adapter(name: str, settings=None, *, logger=None) -> Adapter:
    """Instantiate adapter ``name`` (not loaded)."""
    return get_adapter_info(name).cls(settings, logger=logger)


def settings_for(choice, *, plan_size: tuple[int, ...] | None = None) -> AdapterSettings:
    """The :class:`AdapterSettings` of a spec's per-role choice (``spec.models.<role>``). ``plan_size``
    (width, height, frames): the clip size the memory planner plans for, given to adapters that plan."""
    from i2v_dagster.models.base import AdapterSettings

    data = choice.model_dump()
    adapter = data.pop("adapter")
    if plan_size is not None and adapter != "none" and plans_memory(adapter):
        data["options"] = {"plan_size": list(plan_size), **data["options"]}
    return AdapterSettings(**data)


def plans_memory(name: str) -> bool:
    """Whether the adapter asks the memory planner where its weights go (the diffusers pipelines)."""
    return getattr(get_adapter_info(name).cls, "default_plan_size", None) is not None


def stage_settings(spec, role: str) -> AdapterSettings:
    """The settings a pipeline step builds ``role``'s adapter with (keyframes and clips planned at the
    spec's size; clips at their longest generation)."""
    choice = getattr(spec.models, role)
    size = None
    if role == "image":
        size = (spec.width, spec.height, 1)
    elif role == "video":
        size = (spec.width, spec.height, max_clip_frames(spec))
    return settings_for(choice, plan_size=size)


def options_problems(field: str, name: str, options: dict) -> list[str]:
    """``options`` against the adapter's ``Options`` model (every adapter class has one: an empty model
    for adapters that take no options), one line per problem naming ``<field>.<key>``."""
    from i2v_dagster.models.base import option_problems

    return option_problems(get_adapter_info(name).cls.Options, name, options, field)


def spec_problems(spec, *, check_extras: bool = True) -> list[str]:
    """The adapters' rules on a :class:`~i2v_dagster.spec.JobSpec`: roles, options, sizes, frame counts,
    frame rates. Each message names the field, the rule and the value."""
    errors: list[str] = []
    needs: dict[str, tuple[str, ...]] = {}
    for role in ROLES:
        choice = getattr(spec.models, role)
        if choice.adapter == "none":
            continue
        if adapter_role(choice.adapter) != role:  # the spec's enums make this a registry/spec mismatch
            errors.append(f"models.{role}.adapter: {choice.adapter!r} is not a {role} adapter")
            continue
        errors += options_problems(f"models.{role}.options", choice.adapter, choice.options)
        needs[f"models.{role}.adapter"] = REQUIRES.get(choice.adapter, ())
    if errors:
        return errors
    if check_extras and not spec.dry_run:  # a dry run renders on the mocks; one line for what is missing
        wanted = tuple(dict.fromkeys(m for modules in needs.values() for m in modules))
        fields = ", ".join(f for f, modules in needs.items() if set(missing(modules)))
        absent = missing_extra_message(f"{fields}: these adapters", wanted, verb="need") if fields else None
        errors += [absent] if absent else []  # the sizes and frames below are checked all the same
    image = get_adapter_info(spec.models.image.adapter)
    if image.constraints is not None:
        errors += image.constraints.check(image.name, width=spec.width, height=spec.height)
    video = get_adapter_info(spec.models.video.adapter)
    try:
        constraints = video.constraints_for(settings_for(spec.models.video))
    except AdapterError as exc:
        return [*errors, f"models.video.{exc}"]
    if constraints is not None:
        errors += constraints.check(
            video.name, width=spec.width, height=spec.height, fps=spec.fps, clip_frames=spec.max_clip_frames
        )
    return errors


def max_clip_frames(spec) -> int:
    """Frames per clip: the spec's ``max_clip_frames``, else what the video adapter keeps per clip."""
    if spec.max_clip_frames:
        return spec.max_clip_frames
    video = get_adapter_info(spec.models.video.adapter)
    return video.constraints_for(settings_for(spec.models.video)).usable_frames
