"""Reads of Dagster's storage shared by the assets, the manifest and the report."""

from __future__ import annotations

import dagster as dg


def latest_materialization(instance: dg.DagsterInstance, asset: str | dg.AssetKey, partition: str):
    """The event-log record of the latest materialization of ``asset`` for ``partition``, or None.

    ``record.asset_materialization`` holds the metadata; the record adds run id and timestamp.
    """
    key = asset if isinstance(asset, dg.AssetKey) else dg.AssetKey(asset)
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    )
    return result.records[0] if result.records else None


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    """Every asset check evaluation a run recorded, in order."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    return [r.event_log_entry.dagster_event.event_specific_data for r in records]
