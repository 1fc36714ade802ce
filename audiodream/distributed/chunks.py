"""Episode chunks: the unit env workers send to the replay buffer.

A chunk is a dict of equal-length numpy arrays, one row per env step, made of whole
stored segments laid end to end (each segment is one episode, or a piece of a long
one). Conventions are the world model's (audiodream/worldmodel/batch.py): actions[t]
is the action that led to step t (0 at a segment start), rewards[t] arrives with step
t, terminals[t] says the episode ended at t, and is_first[t] says the model's state
must reset at t: an episode start, or the start of a stored piece of an episode split
because it outgrew the worker's segment limit (the step before it in storage is then
not its predecessor in time). episode_ids tell episodes apart across pieces.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

CHUNK_KEYS: tuple[str, ...] = ("tokens", "actions", "rewards", "terminals", "is_first", "episode_ids")

Chunk = dict[str, np.ndarray]


def chunk_length(chunk: Mapping[str, np.ndarray]) -> int:
    return int(len(chunk["actions"]))


def validate_chunk(chunk: Mapping[str, np.ndarray], tokens_per_step: int, vocab_size: int, n_actions: int) -> int:
    """Number of steps in `chunk`, or a ValueError naming the key that is wrong."""
    missing = [key for key in CHUNK_KEYS if key not in chunk]
    if missing:
        raise ValueError(f"episode chunk: missing key(s) {missing}; got {sorted(chunk)}")
    tokens = np.asarray(chunk["tokens"])
    if tokens.ndim != 2 or tokens.shape[1] != tokens_per_step:
        raise ValueError(f"episode chunk['tokens']: expected shape (S, {tokens_per_step}), got {tokens.shape}")
    steps = len(tokens)
    for key in CHUNK_KEYS[1:]:
        shape = np.shape(chunk[key])
        if shape != (steps,):
            raise ValueError(f"episode chunk[{key!r}]: expected shape ({steps},) like 'tokens', got {shape}")
    if steps and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ValueError(f"episode chunk['tokens']: ids must lie in [0, {vocab_size}), got [{int(tokens.min())}, {int(tokens.max())}]")
    actions = np.asarray(chunk["actions"])
    if steps and (int(actions.min()) < 0 or int(actions.max()) >= n_actions):
        raise ValueError(f"episode chunk['actions']: ids must lie in [0, {n_actions}), got [{int(actions.min())}, {int(actions.max())}]")
    return steps


def concat_chunks(chunks: Sequence[Mapping[str, np.ndarray]]) -> Chunk:
    if not chunks:
        raise ValueError("concat_chunks: no chunks")
    return {key: np.concatenate([np.asarray(c[key]) for c in chunks]) for key in CHUNK_KEYS}
