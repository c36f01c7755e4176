"""Finding and running FFmpeg. Always with argument lists, never a shell string.

Search order for ``ffmpeg`` (and ``ffprobe``): the ``FFMPEG_BIN`` / ``FFPROBE_BIN`` environment variables,
the repo-local ``ffmpeg/bin/``, ``PATH``, then the static ffmpeg inside the ``imageio-ffmpeg`` wheel (which
has libx264 and aac but no ffprobe: probing then happens in-process with PyAV).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from i2v_dagster.errors import FFmpegError, MediaError

log = logging.getLogger(__name__)

REPO_FFMPEG_BIN = Path(__file__).resolve().parents[2] / "ffmpeg" / "bin"


@dataclass(frozen=True)
class Tool:
    path: str
    source: str
    """Where it was found: env, repo, PATH, imageio-ffmpeg."""


def _find(name: str, env_var: str) -> Tool | None:
    env = os.environ.get(env_var)
    if env:
        if not Path(env).is_file():
            raise MediaError(f"{env_var}={env} does not point to a file")
        return Tool(env, "env")
    local = REPO_FFMPEG_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return Tool(str(local), "repo")
    found = shutil.which(name)
    if found:
        return Tool(found, "PATH")
    return None


def find_ffmpeg() -> Tool:
    tool = _find("ffmpeg", "FFMPEG_BIN")
    if tool:
        return tool
    try:
        import imageio_ffmpeg

        return Tool(imageio_ffmpeg.get_ffmpeg_exe(), "imageio-ffmpeg")
    except (ImportError, RuntimeError) as exc:
        raise MediaError(
            "ffmpeg not found: set FFMPEG_BIN, put it in ffmpeg/bin/, on PATH, or install imageio-ffmpeg"
        ) from exc


def find_ffprobe() -> Tool | None:
    return _find("ffprobe", "FFPROBE_BIN")


@cache
def ffmpeg_version(path: str) -> str:
    out = subprocess.run([path, "-hide_banner", "-version"], capture_output=True, text=True, check=False)
    return (out.stdout.splitlines() or ["unknown"])[0]


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def ffmpeg_command(args: list[str]) -> list[str]:
    """The argument list that runs FFmpeg quietly on ``args`` (no shell, no prompts, overwriting)."""
    return [find_ffmpeg().path, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]


def run_ffmpeg(
    args: list[str], *, what: str, input_bytes: bytes | None = None, timeout: float | None = None
) -> None:
    """Run ffmpeg with ``args`` (no shell). Raise :class:`FFmpegError` with stderr's tail on failure."""
    cmd = ffmpeg_command(args)
    log.debug("ffmpeg %s: %s", what, cmd)
    try:
        proc = subprocess.run(cmd, input=input_bytes, capture_output=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise FFmpegError(f"ffmpeg timed out after {timeout} s while {what}") from exc
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace")
        raise FFmpegError(
            f"ffmpeg failed while {what} (exit {proc.returncode})",
            stderr_tail=tail(stderr),
            returncode=proc.returncode,
        )
