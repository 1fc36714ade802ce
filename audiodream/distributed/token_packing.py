"""Bit-packing of token ids, so a stored env step costs bits, not bytes, per token.

A step is K = 48 ids below the codebook size (1024 -> 10 bits each). As uint16 that
is 96 bytes a step (~96 MB per million steps); packed it is 60 bytes, which keeps a
million-step replay at tens of MB. Packing and unpacking are a handful of vectorised
numpy calls over a whole chunk or batch, far cheaper than the learner update they feed.
"""

from __future__ import annotations

import numpy as np


def bits_for(vocab_size: int) -> int:
    """Bits needed for ids in [0, vocab_size)."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    return int(vocab_size - 1).bit_length()


class TokenPacker:
    """Packs (N, K) token ids of a vocabulary into (N, bytes_per_step) uint8 rows and back."""

    def __init__(self, tokens_per_step: int, vocab_size: int) -> None:
        if tokens_per_step < 1:
            raise ValueError(f"tokens_per_step must be >= 1, got {tokens_per_step}")
        self.tokens_per_step = int(tokens_per_step)
        self.vocab_size = int(vocab_size)
        self.bits = bits_for(vocab_size)
        self.bytes_per_step = (self.tokens_per_step * self.bits + 7) // 8
        # Weights of each bit, most significant first (np.unpackbits' order).
        self._bit_weights = (1 << np.arange(self.bits - 1, -1, -1, dtype=np.int64)).astype(np.int64)

    def pack(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[1] != self.tokens_per_step:
            raise ValueError(f"tokens: expected shape (N, {self.tokens_per_step}), got {tokens.shape}")
        if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise ValueError(f"tokens: ids must lie in [0, {self.vocab_size}), got [{int(tokens.min())}, {int(tokens.max())}]")
        shifts = np.arange(self.bits - 1, -1, -1, dtype=np.int64)
        bits = ((tokens.astype(np.int64)[..., None] >> shifts) & 1).astype(np.uint8)
        return np.packbits(bits.reshape(len(tokens), -1), axis=1)

    def unpack(self, packed: np.ndarray) -> np.ndarray:
        """(..., bytes_per_step) uint8 -> (..., K) int64."""
        packed = np.asarray(packed, dtype=np.uint8)
        if packed.shape[-1] != self.bytes_per_step:
            raise ValueError(f"packed tokens: expected last dim {self.bytes_per_step}, got {packed.shape}")
        lead = packed.shape[:-1]
        flat = packed.reshape(-1, self.bytes_per_step)
        bits = np.unpackbits(flat, axis=1, count=self.tokens_per_step * self.bits)
        ids = bits.reshape(len(flat), self.tokens_per_step, self.bits).astype(np.int64) @ self._bit_weights
        return ids.reshape(*lead, self.tokens_per_step)
