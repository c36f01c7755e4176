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
from i2v_dagster.defs.stitch import recorded_narration, stitched_video
from i2v_dagster.defs.storage import latest_materialization
from i2v_dagster.errors import MediaError
from i2v_dagster.fsutil import atomic_path, sha256_file
from i2v_dagster.stitching import narration_for, verified_clips
from i2v_dagster.verify import CheckOutcome
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


def artefact_runs(instance: dg.DagsterInstance, state) -> tuple[list[str], set[str]]:
    """The runs that made the video's current artefacts (its last `clips`, `stitched_video` and per-clip
    materializations), and the partitions they are about."""
    plans = state.timeline().clips
    wanted = [("clips", state.name), ("stitched_video", state.name)]
    wanted += [("clip", f"{p.key}|{state.name}") for p in plans]
    run_ids: list[str] = []
    for asset, partition in wanted:
        record = latest_materialization(instance, asset, partition)
        if record is not None and record.run_id not in run_ids:
            run_ids.append(record.run_id)
    return run_ids, {partition for _, partition in wanted}


def current_outcomes(instance: dg.DagsterInstance, run_ids: list[str], partitions: set[str]) -> list:
    """The latest result of every check on the video's current artefacts (``partitions``), from the runs
    that made them (``run_ids``, :func:`artefact_runs`), so a run that only re-bundles reports the checks of
    what it bundles, not its own (none)."""
    latest: dict[tuple, object] = {}
    for run_id in run_ids:
        for outcome, key in stored_outcomes(instance, run_id, {}, with_keys=True):
            if key[2] in partitions:
                latest[key] = outcome
    return list(latest.values())


def verify_for_bundle(context: dg.AssetExecutionContext, state, record) -> None:
    """The bundle holds only what its records describe: the final as `stitched_video` recorded it
    (``record``: its latest materialization), every planned clip as its record describes it, the narration
    as `narration` recorded it."""
    paths = state.paths
    expected = record.asset_materialization.metadata.get("sha256") if record is not None else None
    if expected is None or not paths.final.is_file():
        raise MediaError(f"{paths.rel(paths.final)}: no final video recorded (check: final); stitch first")
    if sha256_file(paths.final) != expected.value:
        raise MediaError(
            f"{paths.rel(paths.final)}: not the file `stitched_video` recorded (check: final sha256); "
            "stitch again"
        )
    verified_clips(state, state.timeline())
    narration_for(state, recorded_narration(context, state.name).get("narration_sha256"))


def write_run_report(context: dg.AssetExecutionContext, state, outcomes: list, record) -> Path:
    """verify/report.html from the checks of the bundled artefacts, with the pictures (``record``: the latest
    `stitched_video` materialization, for the checks it skipped)."""
    paths = state.paths
    if record is not None and "skipped_checks" in record.asset_materialization.metadata:
        reasons = record.asset_materialization.metadata["skipped_checks"].value
        outcomes = [*outcomes, *(CheckOutcome.skipped(f"stitched_video: {k}", v) for k, v in reasons.items())]
    pictures = {
        name: paths.verify_dir / f"{name}.png"
        for name in ("contact_sheet", "motion_drift")
        if (paths.verify_dir / f"{name}.png").is_file()
    }
    spec = state.spec
    return write_report(
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
    description="One zip per run: final video, clips, keyframes, narration, spec, report, manifest.json. "
    "Written only when every file is the one its record describes.",
)
def bundle(context: dg.AssetExecutionContext, outputs: OutputsResource) -> dg.MaterializeResult:
    state = load_video(context, outputs, context.partition_key, phase="bundle")
    paths = state.paths
    started = time.monotonic()
    stitched = latest_materialization(context.instance, stitched_video.key, state.name)
    try:
        verify_for_bundle(context, state, stitched)
    except MediaError as exc:  # nothing written: the previous report and bundles stay as they are
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    run_ids, partitions = artefact_runs(context.instance, state)
    outcomes = current_outcomes(context.instance, run_ids, partitions)
    if not outcomes:
        raise dg.Failure(
            description=f"video {state.name!r}: no check results recorded for its clips and final "
            "(check: report); materialize `clips` and `stitched_video` first",
            allow_retries=False,
        )
    write_run_report(context, state, outcomes, stitched)
    files = bundle_files(state)
    manifest = build_manifest(
        context.instance,
        run_id=context.run_id,
        video=state.name,
        files=files,
        clip_count=len(state.timeline().clips),
        video_dir=paths.root,
        check_runs=run_ids,
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
            "path": dg.MetadataValue.path(str(dest)),
            "files": len(files) + 1,
            "bytes": dest.stat().st_size,
            "checks": len(outcomes),
            "run_id": context.run_id,
            "seconds_bundle": round(time.monotonic() - started, 3),
        }
    )
