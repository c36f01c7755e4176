"""Encode, decode, probe and stitch video files.

Encoding is H.264 (yuv420p) with bit-exact flags and a fixed thread count, so the same frames give the
same bytes. Stitching concatenates clips by stream copy when every clip shares codec parameters (they do
when this module encoded them) and re-encodes otherwise; narration is muxed as AAC.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from i2v_dagster.errors import FFmpegError, MediaError
from i2v_dagster.fsutil import atomic_path, scratch_path
from i2v_dagster.media.ffmpeg import run_ffmpeg

log = logging.getLogger(__name__)

DEFAULT_PRESET = "medium"
DEFAULT_CRF = 16
ENCODER_THREADS = 2
"""x264's thread count is fixed: its output depends on it, and the same frames must give the same bytes."""


def x264_args(preset: str = DEFAULT_PRESET, crf: int = DEFAULT_CRF) -> list[str]:
    """H.264 in yuv420p, bit-exact, no metadata, index at the front."""
    return [
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), "-preset", preset,
        "-threads", str(ENCODER_THREADS), "-fflags", "+bitexact", "-flags:v", "+bitexact",
        "-map_metadata", "-1", "-movflags", "+faststart",
    ]  # fmt: skip


AUDIO_ARGS = ["-c:a", "aac", "-b:a", "160k", "-ac", "1", "-flags:a", "+bitexact"]
"""Narration as AAC at its own sample rate (no resampling)."""
FAST_AUDIO_ARGS = ["-c:a", "aac", "-aac_coder", "fast", "-b:a", "96k", "-ac", "1", "-flags:a", "+bitexact"]
"""The fast search of FFmpeg's AAC encoder: about twice as fast, for mock runs."""


@dataclass(frozen=True)
class StreamInfo:
    kind: str
    codec: str
    duration_s: float
    frames: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    sample_rate: int = 0


@dataclass(frozen=True)
class MediaInfo:
    path: str
    duration_s: float
    streams: list[StreamInfo] = field(default_factory=list)

    @property
    def video(self) -> StreamInfo | None:
        return next((s for s in self.streams if s.kind == "video"), None)

    @property
    def audio(self) -> StreamInfo | None:
        return next((s for s in self.streams if s.kind == "audio"), None)


class PendingEncode:
    """An encode running in an FFmpeg process while the caller does other work (checks, pictures).

    The frames are fed to FFmpeg's stdin from a thread (the write releases the GIL); :meth:`finish` waits,
    then renames the finished file into place, or raises :class:`FFmpegError` naming the file and removes
    the temporary one. Nothing is left half-written at ``dest``.
    """

    def __init__(self, frames: np.ndarray, dest: str | Path, *, fps: int, preset: str, crf: int) -> None:
        import subprocess
        import threading

        from i2v_dagster.fsutil import scratch_name
        from i2v_dagster.media.ffmpeg import ffmpeg_command

        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise MediaError(f"frames for {dest} must be uint8 (T,H,W,3), got {frames.dtype} {frames.shape}")
        t, h, w, _ = frames.shape
        if t == 0:
            raise MediaError(f"no frames to encode into {dest}")
        if h % 2 or w % 2:
            raise MediaError(f"H.264 yuv420p needs an even size, got {w}x{h} for {dest}")
        self.dest = Path(dest)
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = scratch_name(self.dest)
        cmd = ffmpeg_command(
            [
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0",
                *x264_args(preset, crf), "-r", str(fps), "-video_track_timescale", str(fps * 1000),
                str(self.tmp),
            ]
        )  # fmt: skip
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._stderr = b""
        self._write_error: OSError | None = None
        data = np.ascontiguousarray(frames)

        def feed() -> None:
            try:
                self._proc.stdin.write(memoryview(data).cast("B"))
            except OSError as exc:  # FFmpeg exited early: its stderr says why
                self._write_error = exc
            finally:
                with contextlib.suppress(OSError):
                    self._proc.stdin.close()

        def drain() -> None:
            self._stderr = self._proc.stderr.read()

        self._threads = [
            threading.Thread(target=feed, daemon=True),
            threading.Thread(target=drain, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def finish(self) -> Path:
        try:
            for thread in self._threads:
                thread.join()
            code = self._proc.wait()
            if code != 0 or self._write_error is not None:
                from i2v_dagster.media.ffmpeg import tail

                raise FFmpegError(
                    f"ffmpeg failed while encoding {self.dest} (exit {code})",
                    stderr_tail=tail(self._stderr.decode("utf-8", "replace")),
                    returncode=code,
                )
            os.replace(self.tmp, self.dest)
        finally:
            self.tmp.unlink(missing_ok=True)
        return self.dest

    def abort(self) -> None:
        """Stop the encode and remove its temporary file (for an error raised before :meth:`finish`)."""
        with contextlib.suppress(OSError):
            self._proc.kill()
        with contextlib.suppress(Exception):
            self.finish()


def encode_frames(
    frames: np.ndarray, dest: str | Path, *, fps: int, preset: str = DEFAULT_PRESET, crf: int = DEFAULT_CRF
) -> Path:
    """Write uint8 (T,H,W,3) RGB frames to an H.264 MP4 at ``dest`` (atomically)."""
    return PendingEncode(frames, dest, fps=fps, preset=preset, crf=crf).finish()


def _open(path: str | Path):
    import av

    p = Path(path)
    if not p.is_file():
        raise MediaError(f"media file not found: {p}")
    try:
        return av.open(str(p))
    except av.error.FFmpegError as exc:  # corrupt or not media: FFmpeg's own reason
        raise MediaError(f"cannot read {p}: {exc}") from exc


def read_frames(path: str | Path) -> np.ndarray:
    """Decode every video frame of ``path`` to uint8 (T,H,W,3) RGB."""
    import av

    with _open(path) as container:
        try:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot decode {path}: {exc}") from exc
    if not frames:
        raise MediaError(f"no video frames in {path}")
    return np.stack(frames)


def probe(path: str | Path) -> MediaInfo:
    """Streams, durations and exact frame counts (by demuxing every packet), in-process with PyAV."""
    import av

    with _open(path) as container:
        streams: list[StreamInfo] = []
        counts: dict[int, int] = {}
        ends: dict[int, float] = {}
        try:
            for packet in container.demux():
                if packet.size == 0 or packet.pts is None:
                    continue
                idx = packet.stream.index
                counts[idx] = counts.get(idx, 0) + 1
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                ends[idx] = max(ends.get(idx, 0.0), end)
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot read {path}: {exc}") from exc
        for s in container.streams:
            start = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
            duration = ends.get(s.index, 0.0) - start
            if s.type == "video":
                rate = s.average_rate or s.guessed_rate
                streams.append(
                    StreamInfo(
                        kind="video",
                        codec=s.codec_context.name,
                        duration_s=duration,
                        frames=counts.get(s.index, 0),
                        fps=float(rate) if rate else 0.0,
                        width=s.codec_context.width,
                        height=s.codec_context.height,
                    )
                )
            elif s.type == "audio":
                streams.append(
                    StreamInfo(
                        kind="audio",
                        codec=s.codec_context.name,
                        duration_s=duration,
                        sample_rate=s.codec_context.sample_rate or 0,
                    )
                )
        total = (
            float(container.duration / av.time_base)
            if container.duration
            else max((s.duration_s for s in streams), default=0.0)
        )
    return MediaInfo(path=str(path), duration_s=total, streams=streams)


def _concat_list_line(path: Path) -> str:
    escaped = str(path.resolve()).replace("'", "'\\''")
    return f"file '{escaped}'\n"


def _same_codec_params(infos: list[MediaInfo]) -> bool:
    keys = {(i.video.codec, i.video.width, i.video.height, round(i.video.fps, 3)) for i in infos if i.video}
    return len(keys) == 1 and all(i.video for i in infos)


def verify_decodes(path: str | Path) -> None:
    """Decode every frame of ``path`` with FFmpeg; raise :class:`FFmpegError` with its reason if it cannot."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"media file not found: {p}")
    try:
        run_ffmpeg(["-xerror", "-i", str(p), "-map", "0:v:0", "-f", "null", "-"], what=f"checking {p.name}")
    except FFmpegError as exc:
        raise FFmpegError(
            f"{p} is not a readable video", stderr_tail=exc.stderr_tail, returncode=exc.returncode
        ) from exc


def concat(
    clips: list[Path],
    out: str | Path,
    *,
    fps: int,
    audio: Path | None = None,
    check_decodes: bool = True,
    fast_audio: bool = False,
) -> bool:
    """Concatenate ``clips`` into ``out`` (written in place: give a scratch path) by stream copy when they
    share codec parameters, else re-encoded; mux ``audio`` as AAC. Returns whether it was a stream copy.

    With ``check_decodes`` every clip is decoded first, so a corrupt clip fails with FFmpeg's reason (a
    caller that verified each clip's hash against its record may skip it).
    """
    if not clips:
        raise MediaError("no clips to stitch")
    if check_decodes:
        for clip in clips:
            verify_decodes(clip)
    out = Path(out)
    with scratch_path(out.with_name(out.stem + ".concat.txt")) as listing:
        listing.write_text("".join(_concat_list_line(Path(c)) for c in clips), encoding="utf-8")
        copy = _same_codec_params([probe(c) for c in clips])
        video_args = ["-c:v", "copy"] if copy else [*x264_args(), "-r", str(fps)]
        args = ["-f", "concat", "-safe", "0", "-i", str(listing)]
        if audio is not None:
            if not Path(audio).is_file():
                raise MediaError(f"narration file not found: {audio}")
            audio_args = FAST_AUDIO_ARGS if fast_audio else AUDIO_ARGS
            args += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", *video_args, *audio_args]
        else:
            args += ["-map", "0:v:0", *video_args]
        try:
            run_ffmpeg(
                [*args, "-fflags", "+bitexact", "-map_metadata", "-1", "-movflags", "+faststart", str(out)],
                what=f"stitching {len(clips)} clips into {out.name}",
            )
        except FFmpegError as exc:
            raise FFmpegError(
                f"stitching failed for {out.name} (clips: {', '.join(Path(c).name for c in clips)})",
                stderr_tail=exc.stderr_tail,
                returncode=exc.returncode,
            ) from exc
    log.info("stitched %d clips into %s (%s)", len(clips), out, "stream copy" if copy else "re-encoded")
    return copy


def stitch(clips: list[Path], dest: str | Path, *, fps: int, audio: Path | None = None) -> Path:
    """:func:`concat` into ``dest`` atomically: every clip decoded first, and a result that does not even
    probe never replaces ``dest``."""
    with atomic_path(dest) as tmp:
        concat(clips, tmp, fps=fps, audio=audio)
        probe(tmp)
    return Path(dest)
