"""Convolutional encoder and decoder over one chunk of mel frames (mel bins as channels).

Treating the 80 mel bins as channels and convolving over time keeps the networks small
(a chunk is only 16 frames) and lets every latent frame see the whole chunk after a few
kernel-3 layers at the latent rate. Zero padding at the chunk edges is deliberate: chunks
are encoded independently (see geometry.py), so there is no neighbour to pad with.
"""

from __future__ import annotations

from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """x + conv(gelu(conv(gelu(x)))); pre-activation so the residual path stays linear."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.body = nn.Sequential(
            nn.GELU(),
            nn.Conv1d(channels, channels, kernel, padding=kernel // 2),
            nn.GELU(),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ChunkEncoder(nn.Module):
    """(N, n_mels, chunk_frames) -> (N, latent_channels, chunk_frames / downsample)."""

    def __init__(self, n_mels: int, hidden: int, latent_channels: int, downsample: int, blocks: int = 2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(n_mels, hidden, 3, padding=1),
            ResidualBlock(hidden),
            nn.GELU(),
            # Non-overlapping patches: exactly chunk_frames / downsample outputs for any factor.
            nn.Conv1d(hidden, hidden, downsample, stride=downsample),
            *[ResidualBlock(hidden) for _ in range(blocks)],
            nn.GELU(),
            nn.Conv1d(hidden, latent_channels, 1),
        )

    def forward(self, mel: Tensor) -> Tensor:
        return self.net(mel)


class ChunkDecoder(nn.Module):
    """(N, latent_channels, latent_frames) -> (N, n_mels, latent_frames * downsample)."""

    def __init__(self, n_mels: int, hidden: int, latent_channels: int, downsample: int, blocks: int = 2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(latent_channels, hidden, 3, padding=1),
            *[ResidualBlock(hidden) for _ in range(blocks)],
            nn.GELU(),
            nn.ConvTranspose1d(hidden, hidden, downsample, stride=downsample),
            ResidualBlock(hidden),
            nn.GELU(),
            nn.Conv1d(hidden, n_mels, 3, padding=1),
        )

    def forward(self, latents: Tensor) -> Tensor:
        return self.net(latents)
