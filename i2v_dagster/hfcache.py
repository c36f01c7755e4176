"""Where the Hugging Face cache is: the one place that answers it for the adapters, prefetch, the manifest
and ``i2v doctor``.

huggingface_hub resolves the same variables into constants when it is first imported; this reads them when
asked (a run or test may set them later) and needs no huggingface_hub (the quickstart install has none).
Order: an explicit folder, ``HF_HUB_CACHE``, ``HF_HOME``/hub, ``XDG_CACHE_HOME``/huggingface/hub,
``~/.cache/huggingface/hub``.
"""

from __future__ import annotations

import os
from pathlib import Path


def hf_home() -> Path:
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path("~/.cache").expanduser()) / "huggingface"


def hub_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The hub cache folder: ``cache_dir`` when given, else the environment's."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return hf_home() / "hub"


def user_path(path: str | os.PathLike[str]) -> str:
    """``path`` with the user's home folder written ``~`` (for records that leave the machine)."""
    text = str(path)
    home = str(Path("~").expanduser())
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text
