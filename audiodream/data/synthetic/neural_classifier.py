"""Which syllable does a one-step log-mel chunk sound like? A small network's answer.

The eval scores imagined audio by naming the syllable of each decoded chunk, so the
classifier is the instrument every completion figure is read through: each chunk it
names wrongly moves mass from a syllable the model imagined to one it did not. On run C3's
eval (listen_synthetic), the linear nearest-template classifier (classifier.py) names 0.975
of held-out real chunks and 0.945 of their tokenizer reconstructions right; this network,
fitted on the same split with augmentation, 0.995 and 0.965 (README "World model", session
23), so fewer of the completion test's misses are the instrument's.

Augmentation, for what the training chunks lack and decoded chunks have: whole-chunk shifts
of up to ``MEL_SHIFT`` mel bins (vocal-tract lengths the training voices did not have, as
the linear classifier's shifted copies), of up to ``FRAME_SHIFT`` frames (onsets a little
early or late), and Gaussian noise of a random level up to ``NOISE_STD`` (the blur and
noise of decoding). Fitting is seeded, so the same chunks give the same classifier.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiodream.data.synthetic.classifier import check_chunk_shape, check_labelled_chunks, standardise_chunks

HIDDEN = 512
DROPOUT = 0.2
BATCH = 256
EPOCHS = 5
MIN_UPDATES = 300  # a small labelled set still gets enough updates to fit
MAX_UPDATES = 1000  # caps the fit at ~20 s on two CPU cores however many chunks there are
PEAK_LR = 3.0e-3
LABEL_SMOOTHING = 0.05
MEL_SHIFT = 2
FRAME_SHIFT = 1
NOISE_STD = 0.3
PREDICT_ROWS = 4096
CHECKPOINT_FORMAT = "audiodream-syllable-mlp/1"


def syllable_network(n_features: int, n_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_features, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT), nn.Linear(HIDDEN, n_classes))


def shift_chunks(chunks: torch.Tensor, offsets: torch.Tensor, dim: int) -> torch.Tensor:
    """Move each chunk of (N, n_mels, frames) by its own offset (N,) along `dim` (1: mel bins
    up, 2: frames later; negative: down / earlier), repeating the edge row it moved away from."""
    size = chunks.shape[dim]
    source = (torch.arange(size) - offsets[:, None]).clamp(0, size - 1)  # (N, size)
    index = source[:, :, None] if dim == 1 else source[:, None, :]
    return chunks.gather(dim, index.expand_as(chunks))


def augment_chunks(chunks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standardised chunks (N, n_mels, frames), each shifted in mel and time and noised at random."""
    n = len(chunks)
    shifted = shift_chunks(chunks, torch.randint(-MEL_SHIFT, MEL_SHIFT + 1, (n,), generator=generator), dim=1)
    shifted = shift_chunks(shifted, torch.randint(-FRAME_SHIFT, FRAME_SHIFT + 1, (n,), generator=generator), dim=2)
    levels = NOISE_STD * torch.rand(n, 1, 1, generator=generator)
    return shifted + levels * torch.randn(shifted.shape, generator=generator)


def fit_updates(n_chunks: int) -> int:
    return int(np.clip(EPOCHS * n_chunks // BATCH, MIN_UPDATES, MAX_UPDATES))


class NeuralSyllableClassifier:
    """One-hidden-layer network over standardised log-mel chunks of one syllable."""

    def __init__(self, network: nn.Sequential, classes: np.ndarray, chunk_shape: tuple[int, int]) -> None:
        self.network = network.eval()
        self.classes = np.asarray(classes, dtype=np.int64)
        self.chunk_shape = (int(chunk_shape[0]), int(chunk_shape[1]))

    @classmethod
    def fit(cls, mels: np.ndarray, labels: np.ndarray, seed: int = 0, updates: Optional[int] = None) -> "NeuralSyllableClassifier":
        """``mels`` (N, n_mels, chunk_frames) z-scored log-mel chunks, ``labels`` (N,) syllable ids.
        Only syllables present in ``labels`` can be predicted. ``updates``: Adam steps on
        batches of ``BATCH`` (default `fit_updates`: ``EPOCHS`` passes, within bounds)."""
        mels, labels, classes = check_labelled_chunks(mels, labels)
        n_mels, frames = mels.shape[1:]
        chunks = torch.as_tensor(standardise_chunks(mels).reshape(len(mels), n_mels, frames), dtype=torch.float32)
        targets = torch.as_tensor(np.searchsorted(classes, labels))
        updates = fit_updates(len(chunks)) if updates is None else updates
        if updates < 1:
            raise ValueError(f"updates must be >= 1, got {updates}")
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # initial weights and dropout
            network = syllable_network(n_mels * frames, len(classes))
            optimiser = torch.optim.Adam(network.parameters(), lr=PEAK_LR)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, PEAK_LR, total_steps=updates)
            network.train()
            for _ in range(updates):
                rows = torch.randint(len(chunks), (min(BATCH, len(chunks)),), generator=generator)
                batch = augment_chunks(chunks[rows], generator).flatten(1)
                loss = F.cross_entropy(network(batch), targets[rows], label_smoothing=LABEL_SMOOTHING)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
        return cls(network, classes, (n_mels, frames))

    @torch.no_grad()
    def scores(self, mels: np.ndarray) -> np.ndarray:
        """(N, n_classes) logits; higher = more likely. Columns follow ``self.classes``."""
        features = torch.as_tensor(standardise_chunks(check_chunk_shape(mels, self.chunk_shape)), dtype=torch.float32)
        return torch.cat([self.network(features[i : i + PREDICT_ROWS]) for i in range(0, len(features), PREDICT_ROWS)]).numpy()

    def predict(self, mels: np.ndarray) -> np.ndarray:
        """(N,) syllable ids."""
        return self.classes[np.argmax(self.scores(mels), axis=1)]

    def save(self, path: Path) -> None:
        torch.save(self._checkpoint(), path)

    def _checkpoint(self) -> dict[str, Any]:
        """Tensors and plain types only, so torch.load(..., weights_only=True) reads it."""
        return {
            "format": CHECKPOINT_FORMAT,
            "classes": self.classes.tolist(),
            "chunk_shape": list(self.chunk_shape),
            "network": self.network.state_dict(),
        }

    @classmethod
    def load(cls, path: Path) -> "NeuralSyllableClassifier":
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format is not {CHECKPOINT_FORMAT!r}")
            n_mels, frames = state["chunk_shape"]
            network = syllable_network(n_mels * frames, len(state["classes"]))
            network.load_state_dict(state["network"])
        except (OSError, pickle.UnpicklingError, RuntimeError, KeyError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a saved NeuralSyllableClassifier ({err})") from err
        return cls(network, np.asarray(state["classes"]), (n_mels, frames))
