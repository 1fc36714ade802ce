"""What every audiodream environment shares: the observation contract and action checking.

The contract (DESIGN.md, "envs/"): an observation is one chunk of a z-scored log-mel,
``Box(float32, (n_mels, chunk_frames))``, and one env step is one chunk. Anything that
honours it can be tokenised by `envs.tokenize` and learned from by the world model.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from audiodream.config.schema import FeaturesConfig


def audio_observation_space(n_mels: int, chunk_frames: int) -> spaces.Box:
    """The observation space every audio environment must have."""
    return spaces.Box(low=-np.inf, high=np.inf, shape=(n_mels, chunk_frames), dtype=np.float32)


def as_features_config(features: FeaturesConfig | Mapping[str, Any] | None) -> FeaturesConfig:
    """Accept the typed section, a plain dict (gym.make kwargs, Ray env_config) or None (defaults)."""
    if features is None:
        return FeaturesConfig()
    if isinstance(features, FeaturesConfig):
        return features
    if isinstance(features, Mapping):
        names = {f.name for f in dataclasses.fields(FeaturesConfig)}
        unknown = sorted(set(features) - names)
        if unknown:
            raise ValueError(f"features: unknown key(s) {unknown}; valid keys: {sorted(names)}")
        return FeaturesConfig(**dict(features))
    raise TypeError(f"features must be a FeaturesConfig, a mapping or None, got {type(features).__name__}")


def check_audio_observation_space(space: gym.Space, n_mels: int, chunk_frames: int, env_name: str) -> None:
    """A clear error when a (plug-in) env breaks the observation contract."""
    expected = audio_observation_space(n_mels, chunk_frames)
    if not isinstance(space, spaces.Box) or space.shape != expected.shape or space.dtype != np.float32:
        raise ValueError(
            f"env {env_name!r}: observation_space is {space}, but audio environments must emit log-mel chunks "
            f"Box(float32, ({n_mels}, {chunk_frames})) = (features.n_mels, env.chunk_frames)"
        )


class AudioEnv(gym.Env):
    """Base class: holds the feature settings and the contract's observation space."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, features: FeaturesConfig | Mapping[str, Any] | None = None, chunk_frames: int = 16) -> None:
        if int(chunk_frames) < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        self.features = as_features_config(features)
        self.chunk_frames = int(chunk_frames)
        self.observation_space = audio_observation_space(self.features.n_mels, self.chunk_frames)

    @property
    def samples_per_step(self) -> int:
        """Audio samples in one chunk: one synthetic syllable is exactly one step."""
        return self.chunk_frames * self.features.hop_length

    def check_action(self, action: Any) -> int:
        """The action as an int, or a ValueError that says what the valid actions are."""
        if isinstance(action, (bool, np.bool_)) or not self.action_space.contains(action):
            n = self.action_space.n  # type: ignore[attr-defined]
            raise ValueError(
                f"{type(self).__name__}: action {action!r} is outside the action space {self.action_space}; "
                f"expected an integer in [0, {n - 1}]"
            )
        return int(action)
