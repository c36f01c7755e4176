"""WAV read/write (16-bit PCM mono) with the standard library; silence padding and concatenation."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from i2v_dagster.errors import MediaError
from i2v_dagster.fsutil import atomic_path


def write_wav(dest: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    data = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    pcm = (data * 32767.0).round().astype("<i2")
    with atomic_path(dest) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return Path(dest)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"audio file not found: {p}")
    try:
        with wave.open(str(p), "rb") as w:
            if w.getsampwidth() != 2:
                raise MediaError(f"{p}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
            rate, channels = w.getframerate(), w.getnchannels()
            raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    except (wave.Error, EOFError) as exc:
        raise MediaError(f"{p}: not a readable WAV file: {exc}") from exc
    samples = raw.astype(np.float32) / 32767.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


def wav_duration(path: str | Path) -> float:
    samples, rate = read_wav(path)
    return len(samples) / rate


def pad_to(samples: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """Pad with silence (or cut) to exactly ``seconds``."""
    n = int(round(seconds * sample_rate))
    if len(samples) >= n:
        return samples[:n]
    return np.concatenate([samples, np.zeros(n - len(samples), dtype=samples.dtype)])
