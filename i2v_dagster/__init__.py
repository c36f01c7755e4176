"""i2v-dagster: image-to-video generation and test pipeline as a Dagster asset graph.

The package root imports nothing: the code location is ``i2v_dagster.definitions`` (``dagster ... -m
i2v_dagster.definitions``), and only ``i2v_dagster.definitions`` and ``i2v_dagster.defs`` import Dagster.
"""

__version__ = "0.1.0"
