"""Device, dtype, memory and weights-location helpers shared by the torch-based adapters.

torch is imported inside the functions that need it, so importing this module stays cheap. Every error
names the setting it is about (``device``, ``dtype``, ``model``) and the adapter.
"""

from __future__ import annotations

import gc
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from i2v_dagster.errors import AdapterError, ModelLoadError

if TYPE_CHECKING:
    import logging

    import torch

    from i2v_dagster.models.base import AdapterSettings

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
"""Setting value -> ``torch`` attribute."""
_CUDA = re.compile(r"cuda(:\d+)?")
_TRUE = {"1", "true", "yes", "on"}


def resolve_device(adapter_name: str, asked: str) -> torch.device:
    """``auto`` -> CUDA when torch sees it, else CPU; ``cpu``; ``cuda`` or ``cuda:N`` (needs CUDA)."""
    import torch

    has_cuda = torch.cuda.is_available()
    if asked == "auto":
        return torch.device("cuda" if has_cuda else "cpu")
    if asked != "cpu" and not _CUDA.fullmatch(asked):
        raise AdapterError(f"device: {adapter_name} runs on auto, cpu or cuda, got {asked!r}")
    if asked != "cpu" and not has_cuda:
        raise AdapterError(f"device: {asked} was asked for {adapter_name}, but torch sees no CUDA device")
    return torch.device(asked)


def resolve_dtype(
    adapter_name: str,
    asked: str,
    device: torch.device,
    *,
    auto_cuda: str = "bf16",
    allow_fp16: bool = True,
    log: logging.Logger | None = None,
) -> torch.dtype:
    """The dtype for the ``dtype`` setting: ``auto`` is ``auto_cuda`` on CUDA and fp32 elsewhere (logged
    when ``log`` is given); ``allow_fp16=False`` refuses fp16."""
    import torch

    if asked == "auto":
        chosen = auto_cuda if device.type == "cuda" else "fp32"
        if log is not None:
            log.info("%s: dtype auto -> %s on %s", adapter_name, chosen, device.type)
    elif asked in DTYPES:
        chosen = asked
    else:
        raise AdapterError(f"dtype: {adapter_name} takes auto, bf16, fp16 or fp32, got {asked!r}")
    if chosen == "fp16" and not allow_fp16:
        raise AdapterError(f"dtype: {adapter_name} overflows in fp16 (NaN frames); use bf16 (or fp32 on CPU)")
    return getattr(torch, DTYPES[chosen])


def dtype_setting(dtype: Any) -> str:
    """``torch.bfloat16`` -> ``"bf16"``: the setting's name of a dtype it can give."""
    return {name: setting for setting, name in DTYPES.items()}[dtype_name(dtype)]


def dtype_name(dtype: Any) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (for logs and ``describe()``)."""
    return str(dtype).removeprefix("torch.")


def auto_quantization(
    log: logging.Logger, adapter_name: str, asked: str, device: torch.device, *, on_cuda: str
) -> str:
    """``asked``, or for ``auto`` ``on_cuda`` on CUDA and ``none`` elsewhere (logged)."""
    if asked != "auto":
        return asked
    chosen = on_cuda if device.type == "cuda" else "none"
    log.info("%s: quantization auto -> %s on %s", adapter_name, chosen, device.type)
    return chosen


def guard_cpu_offload(log: logging.Logger, adapter_name: str, asked: bool, device: torch.device) -> bool:
    """Whether to offload: ``asked`` on CUDA. Asked elsewhere, it is ignored with a log line."""
    if not asked:
        return False
    if device.type == "cuda":
        return True
    log.info("%s: cpu_offload needs an accelerator; ignored on %s", adapter_name, device.type)
    return False


def place_pipeline(
    log: logging.Logger, adapter_name: str, pipe: Any, device: torch.device, *, cpu_offload: bool
) -> bool:
    """Move a diffusers pipeline to ``device``, or turn on model CPU offload (CUDA only, see
    :func:`guard_cpu_offload`); returns whether offload is on."""
    if guard_cpu_offload(log, adapter_name, cpu_offload, device):
        pipe.enable_model_cpu_offload(device=device)
        return True
    pipe.to(device)
    return False


def configure_vae(pipe: Any, settings: AdapterSettings) -> None:
    """The settings' ``vae_tiling`` and ``vae_slicing`` on a diffusers pipeline's VAE."""
    if settings.vae_tiling:
        pipe.vae.enable_tiling()
    if settings.vae_slicing:
        pipe.vae.enable_slicing()


def free_memory() -> None:
    """Collect garbage, then give cached CUDA memory back to the driver (when CUDA is there)."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----- where the weights are -----


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set (read now: tests and runs change it after import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def weights_source(adapter_name: str, model_id: str) -> tuple[str, bool]:
    """(what to pass to ``from_pretrained``, whether it is a local folder). Something that can only be a
    path (absolute, ``./``, ``~``, not ``org/name``) but is no folder raises :class:`ModelLoadError`."""
    path = Path(model_id).expanduser()
    if path.is_dir():
        return str(path), True
    looks_like_path = path.is_absolute() or model_id.startswith((".", "~")) or model_id.count("/") != 1
    if looks_like_path or path.exists():
        raise ModelLoadError(
            f"model: {adapter_name} weights folder {model_id} does not exist (or is not a folder)"
        )
    return model_id, False


def hub_kwargs(settings: AdapterSettings, *, local: bool, default_revision: str | None = None) -> dict:
    """``revision`` (hub ids only) and ``cache_dir`` (when set) for ``from_pretrained``."""
    kwargs: dict[str, Any] = {}
    if not local:
        kwargs["revision"] = settings.revision or default_revision
    if settings.cache_dir:
        kwargs["cache_dir"] = settings.cache_dir
    return kwargs


def check_pipeline_folder(adapter_name: str, folder: Path, accepted: tuple[str, ...]) -> None:
    """``folder`` holds a saved diffusers pipeline of one of the ``accepted`` classes (a wrong folder
    otherwise fails deep inside diffusers)."""
    index = folder / "model_index.json"
    try:
        saved = json.loads(index.read_text()).get("_class_name")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model: {adapter_name} found no readable {index} (not a saved pipeline)"
        ) from exc
    if saved not in accepted:
        raise ModelLoadError(
            f"model: {adapter_name} loads {' or '.join(accepted)}, but {index} holds a {saved}"
        )


@contextmanager
def load_errors(adapter_name: str, what: str, source: str) -> Iterator[None]:
    """Turn the ``OSError``/``ValueError`` of a ``from_pretrained`` call into a :class:`ModelLoadError`
    naming the adapter, the class and the source (with a hint when the hub is offline)."""
    try:
        yield
    except (OSError, ValueError) as exc:
        hint = " (HF_HUB_OFFLINE is set: prefetch the weights first)" if hub_offline() else ""
        raise ModelLoadError(
            f"model: {adapter_name} could not load {what} from {source!r}{hint}: {exc}"
        ) from exc
