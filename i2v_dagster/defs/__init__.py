"""The Dagster layer: every module that imports Dagster lives here (the code location's entry point is
``i2v_dagster.definitions``). Domain work happens in plain modules (``render``, ``verify``, ``media``,
``models``); these modules wire it into assets, checks, resources and jobs."""
