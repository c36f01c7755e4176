"""Partitions: one `videos` key per job spec, and `clip` partitions = video x clip id ("000", "001", ...)."""

from __future__ import annotations

import warnings

import dagster as dg

VIDEOS = dg.DynamicPartitionsDefinition(name="videos")
CLIP_IDS = dg.DynamicPartitionsDefinition(name="clip_ids")
CLIP_PARTITIONS = dg.MultiPartitionsDefinition({"video": VIDEOS, "clip": CLIP_IDS})


def clip_key(video: str, index: int) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"video": video, "clip": f"{index:03d}"})


def by_video() -> dg.MultiToSingleDimensionPartitionMapping:
    """Map a `clip` partition (video x clip) to its video, and a video to all of its clips."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="video")
