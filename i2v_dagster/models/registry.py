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

if TYPE_CHECKING:
    from i2v_dagster.models.base import Adapter

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
