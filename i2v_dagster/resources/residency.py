"""Model residency: which models are loaded, and the rule that keeps peak VRAM near one large model.

Rules (ARCHITECTURE.md section 5):
- Nothing is loaded in ``setup_for_execution`` (``dagster job execute`` sets resources up and tears them
  down a second time); models load lazily through ``with residency.use(choice) as model:``.
- At most ``max_resident_large`` large models at a time (one by default); with ``vram_budget_gb`` set,
  large models may share the GPU while their ``weights_gb`` add up to no more than the budget. Asking for a
  large model that does not fit unloads the least recently used ones first (FLUX before the video model).
- Every load and unload is logged and recorded (seconds; CUDA peak memory when torch has CUDA).
- Teardown unloads everything.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

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


def _free_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class ModelResidency(dg.ConfigurableResource):
    """Owns loaded models for a run; loads lazily, keeps one large model resident by default."""

    max_resident_large: int = Field(1, ge=1, description="Large models allowed on the GPU at once.")
    vram_budget_gb: float | None = Field(
        None, gt=0, description="If set, large models share the GPU while their sizes add up to at most this."
    )

    _models: dict[str, Adapter] = PrivateAttr(default_factory=dict)
    _last_used: dict[str, float] = PrivateAttr(default_factory=dict)
    _events: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._models = {}
        self._last_used = {}
        self._events = []

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
        if model is None or not model.is_loaded:
            return
        started = time.monotonic()
        model.unload()
        del model
        _free_memory()
        event = {
            "event": "unload",
            "model": key,
            "reason": reason,
            "seconds": round(time.monotonic() - started, 4),
            **_cuda_stats(),
        }
        self._events.append(event)
        self._log().info("residency: unloaded %s (%s) in %.2f s", key, reason, event["seconds"])

    def unload_all(self, *, reason: str) -> None:
        for key in list(self._models):
            self.unload(key, reason=reason)

    @contextlib.contextmanager
    def use(self, adapter: str, settings: Any = None) -> Iterator[Adapter]:
        """Yield adapter ``adapter`` loaded (reusing a resident one with the same settings)."""
        key = self.key_for(adapter, settings)
        model = self._models.get(key)
        if model is None or not model.is_loaded:
            model = build_adapter(adapter, settings, logger=dg.get_dagster_logger(adapter))
            if model.large:
                for other in sorted(self._models, key=lambda k: self._last_used.get(k, 0.0)):
                    if self._fits(model):
                        break
                    if self._models[other].large:
                        self.unload(other, reason=f"to make room for {adapter}")
            _cuda_stats(reset=True)
            started = time.monotonic()
            self._log().info("residency: loading %s (%s)", key, model.model_id)
            model.load()
            event = {
                "event": "load",
                "model": key,
                "model_id": model.model_id,
                "seconds": round(time.monotonic() - started, 4),
                **_cuda_stats(),
            }
            self._events.append(event)
            self._models[key] = model
            self._log().info("residency: loaded %s in %.2f s", key, event["seconds"])
        self._last_used[key] = time.monotonic()
        yield model
        self._last_used[key] = time.monotonic()
