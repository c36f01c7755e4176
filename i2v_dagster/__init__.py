"""i2v-dagster: image-to-video generation and test pipeline as a Dagster asset graph.

``dagster ... -m i2v_dagster`` finds the code location's ``defs`` here.
"""

from __future__ import annotations

__version__ = "0.1.0"

from i2v_dagster.definitions import defs  # noqa: E402

__all__ = ["defs", "__version__"]
