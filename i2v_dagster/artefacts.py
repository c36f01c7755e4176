"""Content keys and reuse: an artefact is made once for what determines it, and reused while its files are
intact.

Each stored artefact (narration of a scene, a keyframe, a clip) has a record (JSON) written after its files,
holding its content key (the hash of exactly what determines it) and the sha256 of each file. A step that
needs an artefact with a given key takes a stored one whose record has that key and whose files still hash
as recorded; anything else (missing, changed, half-written by a killed run) is made again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from i2v_dagster.fsutil import sha256_file


def content_key(parts: Mapping[str, Any]) -> str:
    """The sha256 of ``parts`` as canonical JSON (sorted keys)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_record(path: Path) -> dict[str, Any] | None:
    """A record, or None when it is missing or unreadable (an unreadable record is not trusted)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def files_intact(root: Path, hashes: Mapping[str, str]) -> bool:
    """Every file (relative to ``root``) exists and hashes as recorded."""
    for rel, digest in hashes.items():
        path = root / rel
        if not path.is_file() or sha256_file(path) != digest:
            return False
    return bool(hashes)


def reusable(record: Mapping[str, Any] | None, key: str, root: Path) -> bool:
    """Whether a stored artefact's record has ``key`` and all its files are intact."""
    return bool(record) and record.get("content_key") == key and files_intact(root, record.get("files") or {})


def file_hashes(root: Path, paths: Iterable[Path]) -> dict[str, str]:
    """``{path relative to root: sha256}`` for a record's ``files``."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in paths}
