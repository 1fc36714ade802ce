"""Batched log-mel spectrograms on torch tensors, and per-utterance z-scoring.

Framing convention used everywhere in audiodream: a clip of N samples has exactly
N // hop_length frames, frame i centred on sample i * hop_length. So a synthetic
syllable of chunk_frames * hop_length samples is exactly chunk_frames frames, and
env steps line up with syllables. Padding is zeros (not reflection) so that a clip
computed alone and the same clip inside a zero-padded batch (e.g. envs) give identical frames.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torchaudio.functional as F

from audiodream.config.schema import FeaturesConfig

# Smallest std used when z-scoring, so a constant (e.g. all-silence) chunk stays finite.
MIN_STD = 1e-5


@dataclass
class NormalizedMel:
    """A z-scored log-mel and the statistics needed to undo the z-score (and get sound back)."""

    mel: np.ndarray  # (n_mels, frames) float32, zero mean and unit std over the utterance
    mean: float
    std: float

    @property
    def frames(self) -> int:
        return int(self.mel.shape[1])


def normalize(log_mel: torch.Tensor, frames: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Z-score each utterance of a (B, n_mels, T) batch over its own valid frames.

    `frames[b]` is the number of valid frames of item b (the rest is padding and is ignored
    by the statistics). Returns (normalised, mean (B,), std (B,)).
    """
    batch, n_mels, total = log_mel.shape
    if frames is None:
        frames = torch.full((batch,), total, dtype=torch.long)
    mask = (torch.arange(total)[None, :] < frames[:, None]).to(log_mel.dtype)[:, None, :]
    count = (frames.to(log_mel.dtype) * n_mels).clamp_min(1.0)
    mean = (log_mel * mask).sum(dim=(1, 2)) / count
    var = (((log_mel - mean[:, None, None]) * mask) ** 2).sum(dim=(1, 2)) / count
    std = var.sqrt().clamp_min(MIN_STD)
    return (log_mel - mean[:, None, None]) / std[:, None, None] * mask, mean, std


def denormalize(mel: np.ndarray | torch.Tensor, mean: float, std: float) -> np.ndarray | torch.Tensor:
    return mel * std + mean


class LogMelExtractor:
    """Waveforms -> log-mel with torchaudio's (slaney) mel filterbank.

    Measured on 2 CPU cores (bench/features.py): computing one clip at a time, spread over a
    thread pool (torch releases the GIL), beats one STFT over a zero-padded batch, whose
    intermediate spectrogram no longer fits in cache and whose padding is wasted work; and
    |X|^2 as (X * conj X).real is several times cheaper than abs().pow(2). The filterbank
    matmul is the rest of the cost.
    """

    def __init__(self, cfg: FeaturesConfig, device: str | torch.device = "cpu", threads: int | None = None):
        self.cfg = cfg
        self.device = torch.device(device)
        self.threads = threads or min(4, os.cpu_count() or 1)  # clips computed at once
        self.window = torch.hann_window(cfg.win_length or cfg.n_fft, device=self.device)
        self.filterbank = F.melscale_fbanks(
            n_freqs=cfg.n_fft // 2 + 1,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            sample_rate=cfg.sample_rate,
            norm="slaney",
            mel_scale="slaney",
        ).T.contiguous().to(self.device)  # (n_mels, n_freqs)

    def frames_of(self, num_samples: int) -> int:
        return num_samples // self.cfg.hop_length

    @torch.no_grad()
    def log_mel(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, N) or (N,) float waveforms -> (B, n_mels, N // hop) (or (n_mels, N // hop)) natural-log mel power."""
        cfg = self.cfg
        spec = torch.stft(
            waves.to(self.device, torch.float32),
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length or cfg.n_fft,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        frames = self.frames_of(waves.shape[-1])
        power = (spec[..., :frames] * spec[..., :frames].conj()).real
        return torch.matmul(self.filterbank, power).add_(cfg.log_floor).log_()

    @torch.no_grad()
    def normalized_batch(self, waves: Sequence[np.ndarray]) -> list[NormalizedMel]:
        """Per-utterance z-scored log-mels of clips of any lengths (no padding involved)."""
        if len(waves) <= 1 or self.threads <= 1:
            return [self.normalized(w) for w in waves]
        # One intra-op thread per clip: the pool supplies the parallelism, and torch's own
        # threads on top of it would oversubscribe the cores (measured: 10x slower on 2 cores).
        intra_op = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(self.threads) as pool:
                return list(pool.map(self.normalized, waves))
        finally:
            torch.set_num_threads(intra_op)

    @torch.no_grad()
    def normalized(self, wave: np.ndarray) -> NormalizedMel:
        log_mel = self.log_mel(torch.from_numpy(np.asarray(wave, dtype=np.float32)))
        mel, mean, std = normalize(log_mel[None].cpu())
        return NormalizedMel(mel[0].numpy(), float(mean[0]), float(std[0]))
