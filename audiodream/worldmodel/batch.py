"""Validation and conversion of B x T sequence batches from any source (replay, tests, files)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from audiodream.worldmodel.sizes import WorldModelSpec

FIRST_KEYS: tuple[str, ...] = ("is_first", "resets")


@dataclass
class SequenceBatch:
    """A (B, T) batch. actions[:, t] is the action a_{t-1} that led to step t (pydreamer
    convention); rewards[:, t] arrives with step t; terminals[:, t]: the episode ended
    at t; is_first[:, t]: step t starts an episode (the model state is reset there)."""

    tokens: torch.Tensor  # (B, T, K) int64
    actions: torch.Tensor  # (B, T) int64
    rewards: torch.Tensor  # (B, T) float32
    terminals: torch.Tensor  # (B, T) bool
    is_first: torch.Tensor  # (B, T) bool

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.actions.shape)  # type: ignore[return-value]


def _tensor(batch: Mapping[str, Any], key: str) -> torch.Tensor:
    value = batch[key]
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        return value
    raise TypeError(f"batch[{key!r}]: expected a torch.Tensor or numpy array, got {type(value).__name__}")


def _first_flags(batch: Mapping[str, Any]) -> tuple[str, torch.Tensor]:
    for key in FIRST_KEYS:
        if key in batch:
            return key, _tensor(batch, key)
    raise KeyError(f"batch: missing key 'is_first' (or 'resets'); got keys {sorted(batch)}")


def to_sequence_batch(batch: Mapping[str, Any], spec: WorldModelSpec, device: torch.device | str) -> SequenceBatch:
    """Check keys, shapes, dtypes and value ranges; move to `device`.

    Errors name the offending key, because a wrong batch otherwise surfaces as an
    obscure index error deep inside an embedding lookup.
    """
    for key in ("tokens", "actions", "rewards", "terminals"):
        if key not in batch:
            raise KeyError(f"batch: missing key {key!r}; got keys {sorted(batch)}")
    tokens = _tensor(batch, "tokens")
    if tokens.dim() != 3 or tokens.shape[-1] != spec.tokens_per_step:
        raise ValueError(f"batch['tokens']: expected shape (B, T, {spec.tokens_per_step}), got {tuple(tokens.shape)}")
    if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
        raise TypeError(f"batch['tokens']: expected integer token ids, got dtype {tokens.dtype}")
    lead = tuple(tokens.shape[:2])
    first_key, is_first = _first_flags(batch)
    named = {"actions": _tensor(batch, "actions"), "rewards": _tensor(batch, "rewards"), "terminals": _tensor(batch, "terminals"), first_key: is_first}
    for key, value in named.items():
        if tuple(value.shape) != lead:
            raise ValueError(f"batch[{key!r}]: expected shape {lead} (the B, T of 'tokens'), got {tuple(value.shape)}")
    actions = named["actions"]
    if actions.dtype.is_floating_point:
        raise TypeError(f"batch['actions']: expected integer action ids, got dtype {actions.dtype}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= spec.vocab_size):
        raise ValueError(f"batch['tokens']: ids must lie in [0, {spec.vocab_size}), got [{int(tokens.min())}, {int(tokens.max())}]")
    if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= spec.n_actions):
        raise ValueError(f"batch['actions']: ids must lie in [0, {spec.n_actions}), got [{int(actions.min())}, {int(actions.max())}]")
    return SequenceBatch(
        tokens=tokens.to(device=device, dtype=torch.long),
        actions=actions.to(device=device, dtype=torch.long),
        rewards=named["rewards"].to(device=device, dtype=torch.float32),
        terminals=named["terminals"].to(device=device).bool(),
        is_first=is_first.to(device=device).bool(),
    )
