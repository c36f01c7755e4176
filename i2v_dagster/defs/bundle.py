"""bundle: one archive per run with the video, its parts, and a manifest exported from Dagster's storage."""

import json
import time
import zipfile
from pathlib import Path

import dagster as dg

from i2v_dagster.defs.checks import stored_outcomes
from i2v_dagster.defs.common import load_video, path_md
from i2v_dagster.defs.manifest import build_manifest
from i2v_dagster.defs.outputs import OutputsResource
from i2v_dagster.defs.partitions import VIDEOS
from i2v_dagster.defs.stitch import stitched_video
from i2v_dagster.defs.storage import latest_materialization
from i2v_dagster.fsutil import atomic_path
from i2v_dagster.verify.report import write_report

STORED_SUFFIXES = (".mp4", ".png", ".zip")
"""Already compressed: stored as they are (deflating them again costs time and saves nothing)."""


def bundle_files(state) -> dict[str, Path]:
    """Bundle-relative name -> file, for everything the run produced that exists."""
    paths = state.paths
    timeline = state.timeline()
    files: dict[str, Path] = {}
    candidates = [paths.spec, paths.script, paths.timeline, paths.narration, paths.final]
    candidates += [paths.keyframe(s.index) for s in timeline.scenes]
    candidates += [paths.scene_audio(s.index) for s in timeline.scenes]
    for c in timeline.clips:
        candidates += [
            paths.clip(c.index),
            paths.clip_record(c.index),
            paths.clip_first(c.index),
            paths.clip_last(c.index),
        ]
    if paths.verify_dir.is_dir():
        candidates += sorted(
            p for p in paths.verify_dir.iterdir() if p.is_file() and not p.name.startswith(".")
        )
    for path in candidates:
        if path.is_file():
            files[paths.rel(path)] = path
    return files


def write_run_report(context: dg.AssetExecutionContext, state) -> None:
    """verify/report.html from this run's check results in Dagster's storage, with the pictures."""
    paths = state.paths
    skipped: dict[str, str] = {}
    record = latest_materialization(context.instance, stitched_video.key, state.name)
    if record is not None and "skipped_checks" in record.asset_materialization.metadata:
        reasons = record.asset_materialization.metadata["skipped_checks"].value
        skipped = {f"stitched_video: {k}": v for k, v in reasons.items()}
    outcomes = stored_outcomes(context.instance, context.run_id, skipped)
    pictures = {
        name: paths.verify_dir / f"{name}.png"
        for name in ("contact_sheet", "motion_drift")
        if (paths.verify_dir / f"{name}.png").is_file()
    }
    spec = state.spec
    write_report(
        paths.verify_dir / "report.html",
        title=f"{spec.name}: run {context.run_id[:8]}",
        video_info={
            "video": spec.name,
            "run_id": context.run_id,
            "fps": spec.fps,
            "size": f"{spec.width}x{spec.height}",
            "seed": spec.seed,
            "video model": spec.models.video.adapter,
            "chain mode": spec.chain_mode,
        },
        outcomes=outcomes,
        pictures=pictures,
    )


@dg.asset(
    partitions_def=VIDEOS,
    deps=[stitched_video],
    group_name="video",
    description="One zip per run: final video, clips, keyframes, narration, spec, report, manifest.json.",
)
def bundle(context: dg.AssetExecutionContext, outputs: OutputsResource) -> dg.MaterializeResult:
    state = load_video(context, outputs, context.partition_key)
    paths = state.paths
    started = time.monotonic()
    write_run_report(context, state)
    files = bundle_files(state)
    manifest = build_manifest(
        context.instance,
        run_id=context.run_id,
        video=state.name,
        files=files,
        clip_count=len(state.timeline().clips),
    )
    dest = paths.bundle(context.run_id)
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, path in sorted(files.items()):
            stored = path.suffix.lower() in STORED_SUFFIXES
            zf.write(path, arcname=name, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return dg.MaterializeResult(
        metadata={
            "bundle": path_md(paths, dest),
            "files": len(files) + 1,
            "bytes": dest.stat().st_size,
            "run_id": context.run_id,
            "seconds_bundle": round(time.monotonic() - started, 3),
        }
    )
