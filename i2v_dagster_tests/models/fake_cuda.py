"""Load a diffusers adapter as if on a CUDA card with a given free memory, without a GPU or weights.

torch is told CUDA is there (``is_available``, ``mem_get_info``, ``empty_cache``) and the pipeline class's
``from_pretrained`` records its arguments and returns a stand-in pipeline, so a test sees exactly what the
adapter's ``load()`` asks diffusers for (dtype, quantization) and how it places the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from unittest import mock


@dataclass
class FakeLoad:
    adapter: Any
    calls: list[dict[str, Any]] = field(default_factory=list)
    """One entry per ``from_pretrained`` call: ``source`` and the keyword arguments."""

    @property
    def kwargs(self) -> dict[str, Any]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0]

    @property
    def pipe(self) -> mock.MagicMock:
        return self.adapter.pipe

    def quant_mapping(self) -> dict[str, Any]:
        config = self.kwargs.get("quantization_config")
        return {} if config is None else dict(config.quant_mapping)


FAKE_CARD = "Fake CUDA card"


def fake_cuda(
    monkeypatch, *, free_gb: float, capability: tuple[int, int] = (9, 0), triton: bool = False
) -> None:
    """torch says a CUDA card of compute ``capability`` with ``free_gb`` free is there; the speed planner
    sees triton (for ``compile``) only when ``triton`` is True."""
    import torch

    from i2v_dagster.models import speed

    free = int(free_gb * 1e9)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, free + 10**9))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: FAKE_CARD)
    monkeypatch.setattr(speed, "triton_available", lambda: triton)


def load_on_fake_cuda(
    monkeypatch,
    name: str,
    settings: Any,
    *,
    free_gb: float,
    load: bool = True,
    capability: tuple[int, int] = (9, 0),
) -> FakeLoad:
    """Build adapter ``name`` with ``settings`` on a fake CUDA card (compute ``capability``) with
    ``free_gb`` free; load it unless ``load`` is False (the caller loads, e.g. to catch an error)."""
    import diffusers
    import torch
    import transformers

    from i2v_dagster.models.registry import build_adapter, get_adapter_info

    # Import what loading touches while torch still says "no CUDA" (bitsandbytes, imported on the way,
    # picks its CUDA backend when torch says CUDA is there).
    pipeline_cls = getattr(diffusers, get_adapter_info(name).cls.pipeline_class)
    for lib, config in [
        (diffusers, "PipelineQuantizationConfig"),
        *[(lib, c) for lib in (diffusers, transformers) for c in ("TorchAoConfig", "BitsAndBytesConfig")],
    ]:
        getattr(lib, config)
    fake_cuda(monkeypatch, free_gb=free_gb, capability=capability)
    result = FakeLoad(adapter=build_adapter(name, settings))

    def from_pretrained(source, **kwargs):
        result.calls.append({"source": source, **kwargs})
        pipe = mock.MagicMock(name="pipeline")
        pipe.vae.dtype = torch.float32
        return pipe

    monkeypatch.setattr(pipeline_cls, "from_pretrained", from_pretrained)
    if load:
        result.adapter.load()
    return result
