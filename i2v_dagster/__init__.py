"""i2v-dagster: image-to-video generation and test pipeline as a Dagster asset graph."""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):  # `dagster ... -m i2v_dagster` finds `defs` here, loaded lazily
    if name == "defs":
        from i2v_dagster.definitions import defs

        return defs
    raise AttributeError(name)
