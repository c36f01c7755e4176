"""Every error the package raises on purpose.

Hierarchy (each also subclasses the fitting builtin, so callers may catch either)::

    I2VError
    ├── SpecError(ValueError)            a job spec or an override is invalid; names the field and value
    ├── AdapterError(ValueError)         unknown adapter, or an adapter asked for what it cannot make
    ├── ModelLoadError(RuntimeError)     weights missing or a pipeline failed to load
    ├── MediaError(RuntimeError)         a media file is missing, corrupt or not what was planned
    │   └── FFmpegError                  FFmpeg/ffprobe failed; carries the tail of its stderr
    ├── ClipTimeoutError(TimeoutError)   a clip or the run went over its time limit
    ├── ClipRejectedError(RuntimeError)  every attempt at a clip failed its blocking checks
    ├── VideoBusyError(RuntimeError)     another run is writing the same video
    ├── ScriptWriterError(RuntimeError)  the script writer (e.g. Ollama) is unreachable or answered badly
    ├── ScorerUnavailableError(RuntimeError)  a scorer has no weights; no score is made up
    └── PrefetchError(RuntimeError)      weight prefetch failed (gated repo without a token, ...)
"""

from __future__ import annotations


class I2VError(Exception):
    """Base of every error raised on purpose by i2v_dagster."""


class SpecError(I2VError, ValueError):
    """A job spec (or an override of one) is invalid."""


class AdapterError(I2VError, ValueError):
    """An adapter is unknown, or was asked for something it cannot make."""


class ModelLoadError(I2VError, RuntimeError):
    """A model could not be loaded (weights missing, wrong format, ...)."""


class MediaError(I2VError, RuntimeError):
    """A media file is missing, corrupt, or does not match what was planned."""


class FFmpegError(MediaError):
    """FFmpeg or ffprobe exited with an error; ``stderr_tail`` holds its last lines."""

    def __init__(self, message: str, *, stderr_tail: str = "", returncode: int | None = None) -> None:
        self.stderr_tail = stderr_tail
        self.returncode = returncode
        full = message if not stderr_tail else f"{message}\nFFmpeg said:\n{stderr_tail}"
        super().__init__(full)


class ClipTimeoutError(I2VError, TimeoutError):
    """A clip (or the whole run's budget) went over its time limit."""

    def __init__(self, message: str, *, limit_s: float = 0.0, elapsed_s: float = 0.0) -> None:
        self.limit_s = limit_s
        self.elapsed_s = elapsed_s
        super().__init__(message)


class ClipRejectedError(I2VError, RuntimeError):
    """Every attempt at a clip failed its blocking checks; ``attempts`` holds each one's seed and checks."""

    def __init__(self, message: str, *, clip: str = "", attempts: list | None = None) -> None:
        self.clip = clip
        self.attempts = list(attempts or [])
        super().__init__(message)


class VideoBusyError(I2VError, RuntimeError):
    """Another run holds the video's lock (one writer per video)."""


class ScriptWriterError(I2VError, RuntimeError):
    """The script writer could not produce a valid script."""


class ScorerUnavailableError(I2VError, RuntimeError):
    """A scorer cannot score (no weights); callers skip the check with this reason."""


class PrefetchError(I2VError, RuntimeError):
    """Prefetching model weights failed."""
