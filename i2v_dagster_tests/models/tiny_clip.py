"""Tiny open_clip models with random weights, saved to files, for the CLIP scorer's tests.

:func:`save_tiny_clip` writes an architecture config (``configs/<name>.json``, the format of open_clip's
own ``model_configs``) and random weights (``<name>.safetensors``) per model, and returns the settings
that make :class:`~i2v_dagster.models.clip_scorer.ClipScorer` register the config and load the weights
file offline, the same way it loads a downloaded checkpoint (``pretrained=<file>``). The text tower uses
open_clip's bundled tokenizer, so no download happens anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from i2v_dagster.models.base import AdapterSettings

TINY_NAMES = ("tiny-clip-a", "tiny-clip-b")


def tiny_clip_config() -> dict[str, Any]:
    """A small CLIP: 32 px images in 8 px patches, 2-layer towers, 32-d embeddings."""
    return {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }


def save_clip_weights(model: Any, path: str | Path) -> Path:
    """Save an open_clip model's weights as safetensors (what ``pretrained=<file>`` loads)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(path))
    return path


def save_tiny_clip(
    folder: str | Path, *, names: tuple[str, ...] = TINY_NAMES, seed: int = 0
) -> AdapterSettings:
    """Write a tiny config and random weights per name under ``folder``; return the scorer's settings."""
    from i2v_dagster.models._compat import ensure_torch_stack

    ensure_torch_stack()
    import open_clip
    import torch

    folder = Path(folder)
    configs = folder / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    weights: dict[str, str] = {}
    for i, name in enumerate(names):
        config_file = configs / f"{name}.json"
        config_file.write_text(json.dumps(tiny_clip_config(), indent=2), encoding="utf-8")
        if open_clip.get_model_config(name) != tiny_clip_config():
            open_clip.add_model_config(config_file)
        torch.manual_seed(seed * 1000 + i)
        model = open_clip.create_model(name, pretrained=None)
        weights[name] = str(save_clip_weights(model, folder / f"{name}.safetensors"))
    return AdapterSettings(
        device="cpu",
        dtype="fp32",
        options={"models": list(names), "pretrained": weights, "model_configs": [str(configs)]},
    )
