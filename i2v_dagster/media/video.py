"""Encode, decode, probe and stitch video files.

Encoding is H.264 (yuv420p) with bit-exact flags and a fixed thread count, so the same frames give the
same bytes. Stitching concatenates clips by stream copy when every clip shares codec parameters (they do
when this module encoded them) and re-encodes otherwise; narration is muxed as AAC.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from i2v_dagster.errors import FFmpegError, MediaError
from i2v_dagster.fsutil import atomic_path, scratch_path
from i2v_dagster.media.ffmpeg import run_ffmpeg

log = logging.getLogger(__name__)

X264_ARGS = [
    "-c:v",
    "libx264",
    "-pix_fmt",
    "yuv420p",
    "-crf",
    "17",
    "-preset",
    "fast",
    "-threads",
    "2",
    "-fflags",
    "+bitexact",
    "-flags:v",
    "+bitexact",
    "-map_metadata",
    "-1",
    "-movflags",
    "+faststart",
]
AUDIO_ARGS = ["-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "1", "-flags:a", "+bitexact"]


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


def encode_frames(frames: np.ndarray, dest: str | Path, *, fps: int) -> Path:
    """Write uint8 (T,H,W,3) RGB frames to an H.264 MP4 at ``dest`` (atomically)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(f"frames must be uint8 (T,H,W,3), got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if t == 0:
        raise MediaError(f"no frames to encode into {dest}")
    if h % 2 or w % 2:
        raise MediaError(f"H.264 yuv420p needs an even size, got {w}x{h} for {dest}")
    with atomic_path(dest) as tmp:
        run_ffmpeg(
            [
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-s",
                f"{w}x{h}",
                "-r",
                str(fps),
                "-i",
                "pipe:0",
                *X264_ARGS,
                "-r",
                str(fps),
                "-video_track_timescale",
                str(fps * 1000),
                str(tmp),
            ],
            what=f"encoding {Path(dest).name}",
            input_bytes=np.ascontiguousarray(frames).tobytes(),
        )
    return Path(dest)


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


def stitch(clips: list[Path], dest: str | Path, *, fps: int, audio: Path | None = None) -> Path:
    """Concatenate ``clips`` into ``dest`` (stream copy when possible) and mux ``audio`` as AAC.

    Every clip is decoded first: a corrupt clip fails with FFmpeg's reason, before ``dest`` is touched.
    """
    if not clips:
        raise MediaError("no clips to stitch")
    for clip in clips:
        verify_decodes(clip)
    dest = Path(dest)
    with scratch_path(dest.with_name(dest.stem + ".concat.txt")) as listing:
        listing.write_text("".join(_concat_list_line(Path(c)) for c in clips), encoding="utf-8")
        copy = _same_codec_params([probe(c) for c in clips])
        video_args = ["-c:v", "copy"] if copy else [*X264_ARGS, "-r", str(fps)]
        args = ["-f", "concat", "-safe", "0", "-i", str(listing)]
        if audio is not None:
            if not Path(audio).is_file():
                raise MediaError(f"narration file not found: {audio}")
            args += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", *video_args, *AUDIO_ARGS]
        else:
            args += ["-map", "0:v:0", *video_args]
        with atomic_path(dest) as tmp:
            try:
                run_ffmpeg(
                    [
                        *args,
                        "-fflags",
                        "+bitexact",
                        "-map_metadata",
                        "-1",
                        "-movflags",
                        "+faststart",
                        str(tmp),
                    ],
                    what=f"stitching {len(clips)} clips into {dest.name}",
                )
            except FFmpegError as exc:
                raise FFmpegError(
                    f"stitching failed for {dest.name} (clips: {', '.join(Path(c).name for c in clips)})",
                    stderr_tail=exc.stderr_tail,
                    returncode=exc.returncode,
                ) from exc
            probe(tmp)  # a result that does not even probe must not replace a good file
    log.info("stitched %d clips into %s (%s)", len(clips), dest, "stream copy" if copy else "re-encoded")
    return dest
