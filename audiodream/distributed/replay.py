"""The replay buffer: a preallocated ring of env steps, sampled as B x T sequences.

A plain class (the Ray actor is `ray.remote(ReplayBuffer)`, see actors.py) so it is
tested in one process. Steps are stored in arrival order, chunk after chunk; a chunk
is made of whole episode segments (chunks.py), so `is_first` marks every place where
consecutive stored steps are not consecutive in time, and a sampled window may span
episodes the way pydreamer's and DreamerV2's do: the model resets its state there.

`add` copies every array into the ring (packing the tokens), so nothing handed in is
kept: arrays that come out of `ray.get` are read-only views that would otherwise pin
object-store memory for as long as the buffer lives.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from audiodream.distributed.chunks import validate_chunk
from audiodream.distributed.replay_store import ChunkStore
from audiodream.distributed.token_packing import TokenPacker

log = logging.getLogger(__name__)

TERMINAL_BIT = np.uint8(1)
FIRST_BIT = np.uint8(2)


def smallest_uint(n_values: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n_values <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.int64)


class ReplayBuffer:
    def __init__(
        self,
        capacity: int,
        tokens_per_step: int,
        vocab_size: int,
        n_actions: int,
        directory: Optional[str | Path] = None,
        fingerprint: str = "",
        seed: int = 0,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"dreamer.replay_capacity: must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.tokens_per_step = int(tokens_per_step)
        self.vocab_size = int(vocab_size)
        self.n_actions = int(n_actions)
        self.packer = TokenPacker(tokens_per_step, vocab_size)
        self.rng = np.random.default_rng(seed)
        self.tokens = np.zeros((self.capacity, self.packer.bytes_per_step), np.uint8)
        self.actions = np.zeros(self.capacity, smallest_uint(n_actions))
        self.rewards = np.zeros(self.capacity, np.float32)
        self.flags = np.zeros(self.capacity, np.uint8)
        self.episode_ids = np.zeros(self.capacity, np.int64)
        self.head = 0  # next write position
        self.size = 0
        self.total_added = 0  # steps ever added, across restarts: the run's env-step count
        self.store: Optional[ChunkStore] = None
        if directory is not None:
            meta = {"tokens_per_step": self.tokens_per_step, "vocab_size": self.vocab_size, "n_actions": self.n_actions, "fingerprint": fingerprint}
            self.store = ChunkStore(directory, meta)
            self._restore()

    # -- storage ----------------------------------------------------------------------------

    @property
    def bytes_per_step(self) -> int:
        """Memory one stored step costs (all arrays), the figure to compare with image replay."""
        return sum(a.itemsize * (a.size // self.capacity) for a in (self.tokens, self.actions, self.rewards, self.flags, self.episode_ids))

    def _write(self, packed: np.ndarray, actions: np.ndarray, rewards: np.ndarray, flags: np.ndarray, episode_ids: np.ndarray) -> None:
        steps = len(actions)
        if steps > self.capacity:  # only the newest `capacity` steps can survive anyway
            packed, actions, rewards, flags, episode_ids = (a[-self.capacity :] for a in (packed, actions, rewards, flags, episode_ids))
            steps = self.capacity
        positions = (self.head + np.arange(steps)) % self.capacity
        self.tokens[positions] = packed
        self.actions[positions] = actions
        self.rewards[positions] = rewards
        self.flags[positions] = flags
        self.episode_ids[positions] = episode_ids
        self.head = int((self.head + steps) % self.capacity)
        self.size = min(self.capacity, self.size + steps)

    def add(self, chunk: Mapping[str, np.ndarray]) -> int:
        """Store a chunk (chunks.py); returns the env steps ever added, this chunk included."""
        steps = validate_chunk(chunk, self.tokens_per_step, self.vocab_size, self.n_actions)
        if steps == 0:
            return self.total_added
        packed = self.packer.pack(np.asarray(chunk["tokens"]))
        actions = np.asarray(chunk["actions"]).astype(self.actions.dtype)
        rewards = np.asarray(chunk["rewards"], dtype=np.float32).copy()
        flags = np.where(np.asarray(chunk["terminals"], dtype=bool), TERMINAL_BIT, 0).astype(np.uint8)
        flags |= np.where(np.asarray(chunk["is_first"], dtype=bool), FIRST_BIT, 0).astype(np.uint8)
        episode_ids = np.asarray(chunk["episode_ids"], dtype=np.int64).copy()
        self._write(packed, actions, rewards, flags, episode_ids)
        self.total_added += steps
        if self.store is not None:
            self.store.append({"tokens": packed, "actions": actions, "rewards": rewards, "flags": flags, "episode_ids": episode_ids}, self.total_added)
            self.store.prune(self.capacity)
        return self.total_added

    def _restore(self) -> None:
        assert self.store is not None
        for arrays, total_added in self.store.load():
            self._write(arrays["tokens"], arrays["actions"], arrays["rewards"], arrays["flags"], arrays["episode_ids"])
            self.total_added = total_added
        self.store.prune(self.capacity)
        if self.size:
            log.info("replay: restored %d steps (%d ever added) from %s", self.size, self.total_added, self.store.directory)

    # -- sampling ---------------------------------------------------------------------------

    def sample(self, batch_size: int, seq_len: int) -> dict[str, np.ndarray]:
        """B windows of T consecutive stored steps, window starts uniform over the stored steps."""
        if self.size < seq_len:
            raise ValueError(f"replay holds {self.size} steps, fewer than dreamer.seq_len={seq_len}; wait for more data")
        oldest = (self.head - self.size) % self.capacity
        starts = self.rng.integers(0, self.size - seq_len + 1, size=batch_size)
        return self._gather((oldest + starts[:, None] + np.arange(seq_len)[None, :]) % self.capacity)

    def _gather(self, index: np.ndarray) -> dict[str, np.ndarray]:
        flags = self.flags[index]
        return {
            "tokens": self.packer.unpack(self.tokens[index]),
            "actions": self.actions[index].astype(np.int64),
            "rewards": self.rewards[index],
            "terminals": (flags & TERMINAL_BIT) > 0,
            "is_first": (flags & FIRST_BIT) > 0,
            "episode_ids": self.episode_ids[index],
        }

    def sample_with_counts(self, batch_size: int, seq_len: int) -> tuple[dict[str, np.ndarray], int]:
        """A batch and the env steps ever added, in one call (the learner's train-ratio check needs both)."""
        return self.sample(batch_size, seq_len), self.total_added

    def counts(self) -> tuple[int, int]:
        """(steps stored, env steps ever added)."""
        return self.size, self.total_added

    def stats(self) -> dict[str, Any]:
        return {
            "replay_steps": self.size,
            "env_steps": self.total_added,
            "capacity": self.capacity,
            "bytes_per_step": self.bytes_per_step,
            "memory_bytes": self.bytes_per_step * self.capacity,
            "segments": int(np.count_nonzero(self.flags[: self.size] & FIRST_BIT)),
        }

    def all_steps(self) -> dict[str, np.ndarray]:
        """Every stored step, oldest first (for tests and evaluation tools)."""
        oldest = (self.head - self.size) % self.capacity
        return self._gather((oldest + np.arange(self.size)) % self.capacity)
