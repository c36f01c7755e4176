"""FFmpeg resolution, lossless hand-off, encode/decode/probe, stitching and its failures."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from i2v_dagster.errors import FFmpegError, MediaError
from i2v_dagster.media import ffmpeg as ff
from i2v_dagster.media.audio import pad_to, read_wav, wav_duration, write_wav
from i2v_dagster.media.video import encode_frames, probe, read_frames, stitch


def _frames(n=6, h=32, w=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_resolver_order(monkeypatch, tmp_path):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("FFMPEG_BIN", str(fake))
    assert ff.find_ffmpeg() == ff.Tool(str(fake), "env")
    monkeypatch.setenv("FFMPEG_BIN", str(tmp_path / "missing"))
    with pytest.raises(MediaError, match="FFMPEG_BIN"):
        ff.find_ffmpeg()
    monkeypatch.delenv("FFMPEG_BIN")
    repo_bin = tmp_path / "repo" / "bin"
    repo_bin.mkdir(parents=True)
    (repo_bin / "ffmpeg").write_bytes(fake.read_bytes())
    (repo_bin / "ffmpeg").chmod(0o755)
    monkeypatch.setattr(ff, "REPO_FFMPEG_BIN", repo_bin)
    assert ff.find_ffmpeg().source == "repo"
    monkeypatch.setattr(ff, "REPO_FFMPEG_BIN", tmp_path / "none")
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    (path_dir / "ffmpeg").write_bytes(fake.read_bytes())
    (path_dir / "ffmpeg").chmod(0o755)
    monkeypatch.setenv("PATH", str(path_dir))
    assert ff.find_ffmpeg() == ff.Tool(str(path_dir / "ffmpeg"), "PATH")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert ff.find_ffmpeg().source == "imageio-ffmpeg"


def test_encode_is_deterministic_and_probes(tmp_path):
    frames = _frames()
    a = encode_frames(frames, tmp_path / "a.mp4", fps=12)
    b = encode_frames(frames, tmp_path / "b.mp4", fps=12)
    assert a.read_bytes() == b.read_bytes()
    info = probe(a)
    assert (info.video.frames, info.video.width, info.video.height) == (6, 48, 32)
    assert info.video.duration_s == pytest.approx(0.5)
    assert read_frames(a).shape == frames.shape
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_encode_rejects_bad_frames(tmp_path):
    with pytest.raises(MediaError, match="even size"):
        encode_frames(_frames(w=47), tmp_path / "x.mp4", fps=12)
    with pytest.raises(MediaError, match="uint8"):
        encode_frames(_frames().astype(np.float32), tmp_path / "x.mp4", fps=12)
    assert not (tmp_path / "x.mp4").exists()


def test_stitch_concatenates_and_muxes_audio(tmp_path):
    clips = [encode_frames(_frames(seed=i), tmp_path / f"c{i}.mp4", fps=12) for i in range(3)]
    write_wav(tmp_path / "n.wav", pad_to(np.zeros(100, np.float32), 24000, 18 / 12), 24000)
    out = stitch(clips, tmp_path / "final.mp4", fps=12, audio=tmp_path / "n.wav")
    info = probe(out)
    assert info.video.frames == 18 and info.audio is not None
    assert abs(info.audio.duration_s - info.video.duration_s) <= 1 / 12
    assert abs(info.video.duration_s - wav_duration(tmp_path / "n.wav")) <= 1 / 12
    assert not list(tmp_path.glob("*.concat.txt"))


def test_stitch_reencodes_mismatched_clips(tmp_path):
    a = encode_frames(_frames(), tmp_path / "a.mp4", fps=12)
    b = encode_frames(_frames(h=16, w=48), tmp_path / "b.mp4", fps=12)
    out = stitch([a, b], tmp_path / "f.mp4", fps=12)  # no stream copy possible: re-encoded
    info = probe(out)
    assert info.video.frames == 12 and (info.video.width, info.video.height) == (48, 32)


def test_corrupt_clip_fails_with_ffmpeg_reason_and_keeps_old_output(tmp_path):
    good = encode_frames(_frames(), tmp_path / "good.mp4", fps=12)
    stitch([good], tmp_path / "final.mp4", fps=12)
    before = (tmp_path / "final.mp4").read_bytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 50)
    with pytest.raises(FFmpegError) as info:
        stitch([good, bad], tmp_path / "final.mp4", fps=12)
    assert "bad.mp4" in str(info.value) and "Invalid data found" in str(info.value)
    assert (tmp_path / "final.mp4").read_bytes() == before
    truncated = tmp_path / "trunc.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(FFmpegError, match="trunc.mp4"):
        stitch([good, truncated], tmp_path / "final.mp4", fps=12)
    with pytest.raises(MediaError, match="not found"):
        stitch([tmp_path / "missing.mp4"], tmp_path / "final.mp4", fps=12)


def test_wav_round_trip_and_errors(tmp_path):
    samples = np.sin(np.linspace(0, 100, 2400)).astype(np.float32) * 0.5
    write_wav(tmp_path / "a.wav", samples, 24000)
    back, rate = read_wav(tmp_path / "a.wav")
    assert rate == 24000 and np.allclose(back, samples, atol=1e-4)
    (tmp_path / "b.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(MediaError, match="b.wav"):
        read_wav(tmp_path / "b.wav")


def test_ffmpeg_is_called_without_a_shell(monkeypatch):
    import subprocess

    seen = {}
    real = subprocess.run

    def spy(cmd, *args, **kwargs):
        seen["cmd"], seen["shell"] = cmd, kwargs.get("shell", False)
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    with pytest.raises(FFmpegError):
        ff.run_ffmpeg(["-i", "/nonexistent; rm -rf /", "-f", "null", "-"], what="testing")
    assert isinstance(seen["cmd"], list) and seen["shell"] is False
    assert "/nonexistent; rm -rf /" in seen["cmd"]
    assert os.path.exists("/")
