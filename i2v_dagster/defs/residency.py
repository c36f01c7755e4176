"""Model residency: which models are loaded, and the rule that a step's models leave the GPU when it ends.

Rules:
- Nothing is loaded in ``setup_for_execution`` (``dagster job execute`` sets resources up and tears them
  down a second time); models load lazily through ``with residency.use(adapter, settings) as model:``.
- A model is unloaded when the outermost ``use`` of it ends, so a step's models are gone when the step ends:
  a `gpu` pool slot then stands for the GPU's memory (a run that kept its models after its GPU step would
  let the next run's step load beside them). Within one ``use`` (a whole `clips` step) the model stays
  loaded across clips.
- At most ``max_resident_large`` large models at a time (one by default); with ``vram_budget_gb`` set,
  large models may share the GPU while their ``weights_gb`` add up to no more than the budget. Asking for a
  large model that does not fit unloads the least recently used ones first.
- A step that fails inside ``use`` drops the failing call's frames (a traceback keeps every local of the
  pipeline call alive, the model's tensors included, until the error is dropped) before unloading.
- Every load and unload is logged and recorded (seconds; CUDA peak memory when torch has CUDA).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from i2v_dagster.errors import ModelLoadError
from i2v_dagster.models._torch import free_memory
from i2v_dagster.models.base import Adapter
from i2v_dagster.models.registry import build_adapter


def _cuda_stats(reset: bool = False) -> dict[str, float]:
    torch = sys.modules.get("torch")  # only when something already imported torch
    if torch is None or not torch.cuda.is_available():
        return {}
    stats = {
        "cuda_peak_gb": torch.cuda.max_memory_allocated() / 1e9,
        "cuda_allocated_gb": torch.cuda.memory_allocated() / 1e9,
    }
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return stats


def release_frames(exc: BaseException) -> None:
    """Clear the locals of every finished frame in ``exc``'s traceback and in its causes' (the frames still
    running, the caller's, are left alone)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


class ModelResidency(dg.ConfigurableResource):
    """Owns loaded models for a run; loads lazily, unloads at the end of each use."""

    max_resident_large: int = Field(1, ge=1, description="Large models allowed on the GPU at once.")
    vram_budget_gb: float | None = Field(
        None, gt=0, description="If set, large models share the GPU while their sizes add up to at most this."
    )

    _models: dict[str, Adapter] = PrivateAttr(default_factory=dict)
    _users: dict[str, int] = PrivateAttr(default_factory=dict)
    _last_used: dict[str, float] = PrivateAttr(default_factory=dict)
    _events: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._models, self._users, self._last_used, self._events = {}, {}, {}, []

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.unload_all(reason="teardown")

    # ---------------------------------------------------------------------------------------
    @staticmethod
    def key_for(adapter: str, settings: Any) -> str:
        blob = json.dumps({"adapter": adapter, "settings": repr(settings)}, sort_keys=True)
        return f"{adapter}#{hashlib.sha1(blob.encode()).hexdigest()[:8]}"

    @property
    def resident(self) -> list[str]:
        return [k for k, m in self._models.items() if m.is_loaded]

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    def _log(self) -> logging.Logger:
        return dg.get_dagster_logger("residency")

    def _fits(self, incoming: Adapter) -> bool:
        large = [m for m in self._models.values() if m.is_loaded and m.large]
        if self.vram_budget_gb is None:
            return len(large) < self.max_resident_large
        used = sum(m.weights_gb for m in large)
        return len(large) < self.max_resident_large or used + incoming.weights_gb <= self.vram_budget_gb

    def unload(self, key: str, *, reason: str) -> None:
        model = self._models.pop(key, None)
        self._last_used.pop(key, None)
        self._users.pop(key, None)
        if model is None or not model.is_loaded:
            return
        started = time.monotonic()
        holds_weights, large = model.holds_weights, model.large
        model.unload()
        del model
        if holds_weights:
            free_memory()
        event = {
            "event": "unload",
            "model": key,
            "large": large,
            "reason": reason,
            "seconds": round(time.monotonic() - started, 4),
            **_cuda_stats(),
        }
        self._events.append(event)
        if holds_weights or large:
            self._log().info("residency: unloaded model %s (%s) in %.2f s", key, reason, event["seconds"])

    def unload_all(self, *, reason: str) -> None:
        for key in list(self._models):
            self.unload(key, reason=reason)

    def _load(self, key: str, adapter: str, settings: Any) -> Adapter:
        model = build_adapter(adapter, settings, logger=dg.get_dagster_logger(adapter))
        if model.large:
            for other in sorted(self._models, key=lambda k: self._last_used.get(k, 0.0)):
                if self._fits(model):
                    break
                if self._models[other].large and not self._users.get(other):
                    self.unload(other, reason=f"to make room for {adapter}")
            if not self._fits(model):
                busy = ", ".join(k for k, m in self._models.items() if m.is_loaded and m.large)
                raise ModelLoadError(
                    f"model {key}: cannot load beside {busy}, which are in use "
                    f"(max_resident_large {self.max_resident_large}, vram_budget_gb {self.vram_budget_gb})"
                )
        _cuda_stats(reset=True)
        started = time.monotonic()
        quiet = not (model.holds_weights or model.large)  # the `spec` writer is no model: not logged
        if not quiet:
            self._log().info("residency: loading model %s (%s)", key, model.model_id)
        model.load()
        event = {
            "event": "load",
            "model": key,
            "model_id": model.model_id,
            "large": model.large,
            "seconds": round(time.monotonic() - started, 4),
            **_cuda_stats(),
        }
        self._events.append(event)
        self._models[key] = model
        if not quiet:
            self._log().info("residency: loaded model %s in %.2f s", key, event["seconds"])
        return model

    def lazy(self, stack: contextlib.ExitStack, adapter: str, settings: Any = None) -> LazyModel:
        """A handle that loads the model on first ``get()`` (a step that reuses everything loads nothing);
        the model is unloaded when ``stack`` closes."""
        return LazyModel(self, stack, adapter, settings)

    @contextlib.contextmanager
    def use(self, adapter: str, settings: Any = None) -> Iterator[Adapter]:
        """Yield adapter ``adapter`` loaded (reusing one already loaded with the same settings); unload it
        when the outermost use ends, whether the body succeeded or failed."""
        key = self.key_for(adapter, settings)
        model = self._models.get(key)
        if model is None or not model.is_loaded:
            model = self._load(key, adapter, settings)
        self._users[key] = self._users.get(key, 0) + 1
        self._last_used[key] = time.monotonic()
        failed: BaseException | None = None
        try:
            yield model
        except BaseException as exc:
            failed = exc
            release_frames(exc)
            raise
        finally:
            del model
            self._users[key] = self._users.get(key, 1) - 1
            self._last_used[key] = time.monotonic()
            if self._users[key] <= 0:
                self.unload(key, reason="its step failed" if failed is not None else "its step is done")


class LazyModel:
    """See :meth:`ModelResidency.lazy`."""

    def __init__(self, residency: ModelResidency, stack: contextlib.ExitStack, adapter: str, settings: Any):
        self._residency, self._stack, self._adapter, self._settings = residency, stack, adapter, settings
        self._model: Adapter | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> Adapter:
        if self._model is None:
            self._model = self._stack.enter_context(self._residency.use(self._adapter, self._settings))
        return self._model
