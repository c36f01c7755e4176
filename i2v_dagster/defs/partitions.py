"""Partitions: one `videos` key per job spec, and `clip` partitions = video x clip id ("000", "001", ...)."""

from __future__ import annotations

import warnings

import dagster as dg

from i2v_dagster.planning import clip_id

VIDEOS = dg.DynamicPartitionsDefinition(name="videos")
CLIP_IDS = dg.DynamicPartitionsDefinition(name="clip_ids")
CLIP_PARTITIONS = dg.MultiPartitionsDefinition({"video": VIDEOS, "clip": CLIP_IDS})


def clip_key(video: str, index: int) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"video": video, "clip": clip_id(index)})


def ensure_clip_ids(instance: dg.DagsterInstance, count: int) -> None:
    """Register clip ids 000..count-1 (shared by every video) where missing."""
    keys = [clip_id(i) for i in range(count)]
    missing = [k for k in keys if not instance.has_dynamic_partition(CLIP_IDS.name, k)]
    if missing:
        instance.add_dynamic_partitions(CLIP_IDS.name, missing)


def by_video() -> dg.MultiToSingleDimensionPartitionMapping:
    """Map a `clip` partition (video x clip) to its video, and a video to all of its clips."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="video")
