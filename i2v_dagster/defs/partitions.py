"""Partitions: one `videos` key per job spec, and one `video_clips` key per clip a video's plan holds.

A clip's key is ``<clip id>|<video>`` (``001|demo``), registered when the video's narration plans its clips
and removed when an edit takes a clip out of the plan: the `clip` asset's partition picker then offers the
clips that exist, video by video, and a clip id beyond a video's plan cannot be launched at all (a cross
product of videos and clip ids would offer every clip number for every video).
"""

from __future__ import annotations

import dagster as dg

from i2v_dagster.planning import clip_id

VIDEOS = dg.DynamicPartitionsDefinition(name="videos")
VIDEO_CLIPS = dg.DynamicPartitionsDefinition(name="video_clips")
SEPARATOR = "|"


def clip_key(video: str, index: int) -> str:
    return f"{clip_id(index)}{SEPARATOR}{video}"


def split_clip_key(key: str) -> tuple[str, int]:
    """``"001|demo"`` -> ``("demo", 1)``; a key of another shape is a one-line error."""
    index, sep, video = key.partition(SEPARATOR)
    if not sep or not index.isdigit() or not video:
        raise ValueError(f"clip partition {key!r}: expected <clip id>|<video>, e.g. 001|demo")
    return video, int(index)


def register_clips(instance: dg.DagsterInstance, video: str, count: int) -> list[str]:
    """Register the keys of the video's ``count`` planned clips; returns the keys of its clips beyond the
    plan (still registered: the caller reports them, then :func:`unregister_clips`)."""
    existing = set(instance.get_dynamic_partitions(VIDEO_CLIPS.name))
    wanted = [clip_key(video, i) for i in range(count)]
    missing = [k for k in wanted if k not in existing]
    if missing:
        instance.add_dynamic_partitions(VIDEO_CLIPS.name, missing)
    return sorted(k for k in existing if k.endswith(SEPARATOR + video) and k not in wanted)


def unregister_clips(instance: dg.DagsterInstance, keys: list[str]) -> None:
    for key in keys:
        instance.delete_dynamic_partition(VIDEO_CLIPS.name, key)
