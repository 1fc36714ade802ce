"""Tokenising wrappers: log-mel chunk observations -> the tokenizer's K discrete tokens.

`TokenizeObservation` wraps one env (what RLlib's env runners and `gymnasium.make` users
get); `TokenizeVectorObservation` wraps a vector env and encodes all sub-env chunks in one
batched forward pass (what the Dreamer env workers use). Both have the observation space
``MultiDiscrete([codebook_size] * K)`` of int64 tokens.

Tokenizers are loaded once per process and path (`load_tokenizer`), so the eight envs of
a vector env, or the envs of an RLlib runner, share one frozen model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorObservationWrapper

from audiodream.config.schema import FeaturesConfig
from audiodream.tokenizer.model import Tokenizer

_LOADED: dict[tuple[str, int, str], Tokenizer] = {}


def load_tokenizer(path: Path | str, features: FeaturesConfig | None = None) -> Tokenizer:
    """The frozen CPU tokenizer at `path`, shared within this process (reloaded if the file changed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tokenizer checkpoint not found; run the tokenizer stage first (run.stages=[data, tokenizer, ...])")
    key = (str(path.resolve()), path.stat().st_mtime_ns, repr(features))
    if key not in _LOADED:
        model = Tokenizer.load(path, features=features, device="cpu")
        model.requires_grad_(False)
        _LOADED[key] = model
    return _LOADED[key]


def token_space(tokenizer: Tokenizer) -> spaces.MultiDiscrete:
    return spaces.MultiDiscrete(np.full(tokenizer.tokens_per_step, tokenizer.codebook_size, dtype=np.int64))


def _check_chunk_space(space: gym.Space, tokenizer: Tokenizer, what: str) -> None:
    expected = (tokenizer.n_mels, tokenizer.chunk_frames)
    if not isinstance(space, spaces.Box) or tuple(space.shape[-2:]) != expected:
        raise ValueError(
            f"{what}: observation space {space} does not hold the tokenizer's chunks {expected} "
            f"(n_mels, chunk_frames); env.chunk_frames and features must match the tokenizer checkpoint"
        )


def _resolve(tokenizer: Tokenizer | Path | str) -> Tokenizer:
    return tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer)


class TokenizeObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """One env: each (n_mels, chunk_frames) chunk becomes (K,) int64 tokens."""

    def __init__(self, env: gym.Env, tokenizer: Tokenizer | Path | str) -> None:
        # Recorded so gymnasium can rebuild the wrapped env from its spec (env_checker does).
        gym.utils.RecordConstructorArgs.__init__(self, tokenizer=tokenizer)
        gym.ObservationWrapper.__init__(self, env)
        self.tokenizer = _resolve(tokenizer)
        _check_chunk_space(env.observation_space, self.tokenizer, f"TokenizeObservation({env})")
        self.observation_space = token_space(self.tokenizer)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        chunk = torch.from_numpy(np.asarray(observation, dtype=np.float32)[None])
        return self.tokenizer.encode_chunks(chunk)[0].numpy()


class TokenizeVectorObservation(VectorObservationWrapper):
    """A vector env: the (n_envs, n_mels, chunk_frames) batch is encoded in one forward pass."""

    def __init__(self, env: VectorEnv, tokenizer: Tokenizer | Path | str) -> None:
        super().__init__(env)
        self.tokenizer = _resolve(tokenizer)
        _check_chunk_space(env.single_observation_space, self.tokenizer, f"TokenizeVectorObservation({env})")
        self.single_observation_space = token_space(self.tokenizer)
        self.observation_space = spaces.MultiDiscrete(
            np.full((env.num_envs, self.tokenizer.tokens_per_step), self.tokenizer.codebook_size, dtype=np.int64)
        )

    def observations(self, observations: Any) -> np.ndarray:
        chunks = torch.from_numpy(np.asarray(observations, dtype=np.float32))
        return self.tokenizer.encode_chunks(chunks).numpy()
