"""The shared contract every real adapter's tests check (diffusers' "config + shared contract" style).

Each adapter test module builds a tiny random pipeline in code, saves it with ``save_pretrained`` into
``tmp_path``, points the adapter's settings at that folder, and calls these helpers.
"""

from __future__ import annotations

import gc
import weakref

import pytest

torch = pytest.importorskip("torch")


def assert_unload_releases(adapter, attr: str) -> None:
    """``unload()`` drops every reference to the loaded model held in ``adapter.<attr>``."""
    assert adapter.is_loaded, "load the adapter before checking unload"
    held = getattr(adapter, attr)
    assert held is not None, f"adapter.{attr} is None while loaded"
    ref = weakref.ref(held)
    del held
    adapter.unload()
    gc.collect()
    assert not adapter.is_loaded
    assert getattr(adapter, attr, None) is None, f"adapter.{attr} still set after unload()"
    assert ref() is None, f"adapter.{attr} is still referenced somewhere after unload()"
    adapter.unload()  # idempotent
