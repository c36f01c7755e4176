"""stitched_video: the planned clips concatenated (stream copy) with the narration muxed."""


import json
import time

import dagster as dg

from i2v_dagster.assets.clips import clip, clips
from i2v_dagster.assets.common import load_video, path_md, timings_md
from i2v_dagster.assets.story import narration
from i2v_dagster.errors import MediaError
from i2v_dagster.fsutil import sha256_file
from i2v_dagster.media.video import probe, stitch
from i2v_dagster.partitions import VIDEOS, by_video
from i2v_dagster.resources.outputs import OutputsResource


@dg.asset(
    partitions_def=VIDEOS,
    deps=[
        clips,
        narration,
        dg.AssetDep(clip, partition_mapping=by_video()),
    ],
    group_name="video",
    description="The clips stitched by stream copy, with the narration muxed as AAC.",
)
def stitched_video(context: dg.AssetExecutionContext, outputs: OutputsResource) -> dg.MaterializeResult:
    state = load_video(context, outputs, context.partition_key)
    spec, paths = state.spec, state.paths
    timeline = state.timeline()
    files = [paths.clip(c.index) for c in timeline.clips]
    missing = [paths.rel(f) if f.parent.exists() else str(f) for f in files if not f.is_file()]
    if missing:
        raise MediaError(f"video {spec.name!r}: planned clips missing: {', '.join(missing)}")
    remade = []
    for c in timeline.clips:  # a clip re-made alone after the `clips` step is picked up here
        record = json.loads(paths.clip_record(c.index).read_text()) if paths.clip_record(c.index).is_file() else {}
        remade.append(record.get("content_key", "")[:12])
    audio = paths.narration if paths.narration.is_file() else None
    started = time.monotonic()
    stitch(files, paths.final, fps=spec.fps, audio=audio)
    info = probe(paths.final)
    video = info.video
    if video is None:
        raise MediaError(f"{paths.final}: no video stream after stitching")
    metadata = {
        "file": path_md(paths, paths.final),
        "sha256": sha256_file(paths.final),
        "clips": len(files),
        "clip_content_keys": dg.MetadataValue.json(remade),
        "frames": video.frames,
        "planned_frames": timeline.total_frames,
        "fps": spec.fps,
        "size": f"{video.width}x{video.height}",
        "video_duration_s": round(video.duration_s, 4),
        "has_audio": info.audio is not None,
        **timings_md(stitch=time.monotonic() - started),
    }
    if info.audio is not None:
        metadata["audio_duration_s"] = round(info.audio.duration_s, 4)
        metadata["audio_video_diff_s"] = round(abs(info.audio.duration_s - video.duration_s), 4)
    return dg.MaterializeResult(metadata=metadata)
