"""Cutting utterance log-mels into env-step chunks: random crops to train, aligned chunks to evaluate.

Training takes random 16-frame crops at any offset, not only step-aligned ones, so the
tokenizer is not tuned to the synthetic corpus's syllable boundaries (real speech, and
envs that start episodes mid-utterance, have no such alignment). Evaluation uses the
step-aligned chunks the environments produce.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def aligned_chunks(mel: np.ndarray, chunk_frames: int) -> np.ndarray:
    """(n_mels, F) -> (F // chunk_frames, n_mels, chunk_frames); the tail shorter than a chunk is dropped."""
    steps = mel.shape[1] // chunk_frames
    trimmed = mel[:, : steps * chunk_frames]
    return np.ascontiguousarray(trimmed.reshape(mel.shape[0], steps, chunk_frames).transpose(1, 0, 2))


def trim_to_chunks(mel: np.ndarray, chunk_frames: int) -> np.ndarray:
    return mel[:, : (mel.shape[1] // chunk_frames) * chunk_frames]


class RandomCropSampler:
    """Uniform random chunk_frames-long crops over every valid position of every utterance."""

    def __init__(self, mels: Sequence[np.ndarray], chunk_frames: int, seed: int = 0):
        usable = [m for m in mels if m.shape[1] >= chunk_frames]
        if not usable:
            longest = max((m.shape[1] for m in mels), default=0)
            raise ValueError(
                f"no utterance has at least chunk_frames={chunk_frames} frames to crop "
                f"({len(mels)} utterances, longest {longest} frames)"
            )
        self.chunk_frames = chunk_frames
        self.frames = torch.from_numpy(np.concatenate(usable, axis=1).astype(np.float32))  # (n_mels, total)
        starts, offset = [], 0
        for mel in usable:
            starts.append(np.arange(offset, offset + mel.shape[1] - chunk_frames + 1))
            offset += mel.shape[1]
        self.starts = torch.from_numpy(np.concatenate(starts))
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return int(self.starts.numel())

    def sample(self, batch: int) -> torch.Tensor:
        """(batch, n_mels, chunk_frames) float32 crops."""
        pick = self.starts[torch.randint(0, len(self), (batch,), generator=self.generator)]
        index = pick[:, None] + torch.arange(self.chunk_frames)[None, :]  # (batch, chunk_frames)
        return self.frames[:, index].permute(1, 0, 2).contiguous()
