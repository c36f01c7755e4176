"""The manifest inside each bundle, exported from Dagster's storage (never kept by hand during a run).

It holds the run (id, status, tags, config), every materialization of the video's assets and clips with
its metadata, asset check results, files with sha256 (paths relative to the bundle root), model ids and
revisions, seeds, timings, and where the Hugging Face cache is. Secrets never enter it: HF_TOKEN (and
anything shaped like a Hugging Face token) is scrubbed from every string.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import dagster as dg

from i2v_dagster.defs.storage import check_evaluations, latest_materialization
from i2v_dagster.fsutil import sha256_file
from i2v_dagster.hfcache import hf_home, hub_cache_dir, user_path
from i2v_dagster.planning import clip_id

VIDEO_ASSETS = ("script", "narration", "keyframes", "clips", "stitched_video")
_TOKEN_SHAPE = re.compile(r"hf_[A-Za-z0-9]{16,}")


def scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, "***")
        return _TOKEN_SHAPE.sub("***", value)
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value


def _md_value(value: dg.MetadataValue) -> Any:
    raw = value.value
    if isinstance(raw, dict | list | str | int | float | bool) or raw is None:
        return raw
    return str(raw)


def _materialization(record) -> dict[str, Any]:
    mat = record.asset_materialization
    metadata = {k: _md_value(v) for k, v in mat.metadata.items() if k != "video_dir"}
    for key in [k for k, v in metadata.items() if isinstance(v, str) and len(v) > 4000]:
        metadata[key] = f"<{len(metadata[key])} characters, omitted>"
    return {
        "asset": mat.asset_key.to_user_string(),
        "partition": mat.partition,
        "run_id": record.run_id,
        "timestamp": record.timestamp,
        "metadata": metadata,
    }


def hf_cache_locations() -> dict[str, str]:
    """The Hugging Face cache folders, the user's home written ``~``."""
    return {"HF_HOME": user_path(hf_home()), "HF_HUB_CACHE": user_path(hub_cache_dir())}


def check_results(instance: dg.DagsterInstance, run_id: str) -> list[dict[str, Any]]:
    out = []
    for ev in check_evaluations(instance, run_id):
        out.append(
            {
                "asset": ev.asset_key.to_user_string(),
                "check": ev.check_name,
                "passed": ev.passed,
                "severity": ev.severity.value if ev.severity else None,
                "partition": ev.partition,
                "metadata": {k: _md_value(v) for k, v in ev.metadata.items()},
            }
        )
    return out


def build_manifest(
    instance: dg.DagsterInstance,
    *,
    run_id: str,
    video: str,
    files: dict[str, Path],
    clip_count: int,
    video_dir: Path | None = None,
    check_runs: list[str] | None = None,
) -> dict[str, Any]:
    """``files`` maps bundle-relative names to files on disk; ``check_runs`` the runs whose check results
    describe the bundled artefacts (default: this run). Paths under ``video_dir`` (or its outputs root)
    are written relative to the video folder, and the user's home as ``~``."""
    run = instance.get_run_by_id(run_id)
    wanted = [(asset, video) for asset in VIDEO_ASSETS]
    wanted += [("clip", f"{clip_id(i)}|{video}") for i in range(clip_count)]
    records = [latest_materialization(instance, asset, partition) for asset, partition in wanted]
    materializations = [_materialization(r) for r in records if r is not None]
    step_stats = [
        {
            "step": s.step_key,
            "status": s.status.value if s.status else None,
            "seconds": round((s.end_time or 0) - (s.start_time or 0), 3)
            if s.end_time and s.start_time
            else None,
        }
        for s in instance.get_run_step_stats(run_id)
    ]
    manifest = {
        "format": "i2v-dagster-manifest/1",
        "video": video,
        "run": {
            "run_id": run_id,
            "job": run.job_name if run else None,
            "status": run.status.value if run else None,
            "tags": dict(run.tags) if run else {},
            "run_config": run.run_config if run else {},
        },
        "steps": step_stats,
        "materializations": materializations,
        "checks": [c for r in (check_runs or [run_id]) for c in check_results(instance, r)],
        "files": {
            name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            for name, path in sorted(files.items())
        },
        "hf_cache": hf_cache_locations(),
    }
    secrets = [v for k, v in os.environ.items() if k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") and v]
    return relative_paths(scrub(manifest, secrets), video_dir)


def relative_paths(value: Any, video_dir: Path | None) -> Any:
    """Absolute paths inside the video folder or its outputs root made relative to the video folder, and
    the user's home written ``~``: a manifest holds no machine's layout."""
    if isinstance(value, dict):
        return {k: relative_paths(v, video_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_paths(v, video_dir) for v in value]
    if not isinstance(value, str) or not value.startswith("/"):
        return value
    if video_dir is not None:
        root = video_dir.resolve()
        for base in (root, root.parent):
            if value == str(base) or value.startswith(str(base) + os.sep):
                return os.path.relpath(value, root)
    return user_path(value)
