"""Small audio files written with soundfile, for the corpus tests (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.signal as ss
import soundfile as sf


def voiced_tone(sample_rate: int, seconds: float, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A pulse train through three formant resonators: speech-like enough for log-mel tests."""
    rng = np.random.default_rng(seed)
    n = int(sample_rate * seconds)
    t = np.arange(n) / sample_rate
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 2 * t))
    phase = np.cumsum(pitch / sample_rate)
    source = (np.diff(np.floor(phase), prepend=0) > 0).astype(float) + 0.01 * rng.standard_normal(n)
    y = source
    for freq, bw in ((700, 80), (1200, 100), (2500, 150)):
        r = np.exp(-np.pi * bw / sample_rate)
        y = ss.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * freq / sample_rate), r * r], y)
    envelope = 0.4 + 0.6 * (np.sin(2 * np.pi * 3 * t) > 0)
    return (0.5 * y / np.abs(y).max() * envelope).astype(np.float32)


def write_mixed_folder(root: Path) -> dict[str, list[Path]]:
    """Three speakers' worth of every format/rate the folder source must read, plus two bad files."""
    good: list[Path] = []
    specs = [
        ("alice", "a16k.wav", 16000, 1, "PCM_16", "WAV"),
        ("alice", "a22k.flac", 22050, 1, "PCM_16", "FLAC"),
        ("bob", "b44k_stereo24.wav", 44100, 2, "PCM_24", "WAV"),
        ("bob", "b48k_float.wav", 48000, 1, "FLOAT", "WAV"),
        ("carol", "c.ogg", 16000, 1, "VORBIS", "OGG"),
        ("carol", "c.mp3", 44100, 1, "MPEG_LAYER_III", "MP3"),
        ("dave", "d48k.flac", 48000, 2, "PCM_16", "FLAC"),
    ]
    for i, (speaker, name, rate, channels, subtype, fmt) in enumerate(specs):
        path = root / speaker / name
        path.parent.mkdir(parents=True, exist_ok=True)
        mono = voiced_tone(rate, 1.2, f0=110 + 15 * i, seed=i)
        data = np.stack([mono, 0.5 * mono], axis=1) if channels == 2 else mono
        sf.write(str(path), data, rate, subtype=subtype, format=fmt)
        good.append(path)
    bad_bytes = root / "bob" / "garbage.wav"
    bad_bytes.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = root / "carol" / "empty.flac"
    empty.write_bytes(b"")
    return {"good": good, "bad": [bad_bytes, empty]}
