"""Batched log-mel spectrograms on torch tensors, and per-utterance z-scoring.

Framing convention used everywhere in audiodream: a clip of N samples has exactly
N // hop_length frames, frame i centred on sample i * hop_length. So a synthetic
syllable of chunk_frames * hop_length samples is exactly chunk_frames frames, and
env steps line up with syllables. Padding is zeros (not reflection) so that a clip
computed alone and the same clip inside a zero-padded batch give identical frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torchaudio.transforms as T

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
    """Waveforms -> log-mel, one STFT over a padded batch instead of one call per file."""

    def __init__(self, cfg: FeaturesConfig, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.mel = T.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.win_length or cfg.n_fft,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            power=2.0,
            center=True,
            pad_mode="constant",
            norm="slaney",
            mel_scale="slaney",
        ).to(self.device)

    def frames_of(self, num_samples: int) -> int:
        return num_samples // self.cfg.hop_length

    @torch.no_grad()
    def log_mel(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, N) float waveforms -> (B, n_mels, N // hop) natural-log mel power."""
        spec = self.mel(waves.to(self.device, torch.float32))
        return torch.log(spec[..., : self.frames_of(waves.shape[-1])] + self.cfg.log_floor)

    @torch.no_grad()
    def normalized_batch(self, waves: Sequence[np.ndarray]) -> list[NormalizedMel]:
        """Per-utterance z-scored log-mels of clips of any lengths, computed as one batch."""
        if not waves:
            return []
        lengths = [len(w) for w in waves]
        batch = torch.zeros(len(waves), max(lengths))
        for i, wave in enumerate(waves):
            batch[i, : len(wave)] = torch.from_numpy(np.asarray(wave, dtype=np.float32))
        frames = torch.tensor([self.frames_of(n) for n in lengths])
        mel, mean, std = normalize(self.log_mel(batch).cpu(), frames)
        return [
            NormalizedMel(mel[i, :, : frames[i]].numpy().copy(), float(mean[i]), float(std[i]))
            for i in range(len(waves))
        ]

    def normalized(self, wave: np.ndarray) -> NormalizedMel:
        return self.normalized_batch([wave])[0]
