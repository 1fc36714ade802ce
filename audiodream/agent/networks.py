"""Actor and critic: small MLPs on the RSSM features concat(h, z).

Both read detached features only, so nothing they learn flows back into the world
model. Their output layers start at zero: the first policy is uniform (maximum
entropy, every syllable tried) and the first values are 0, so early, untrained
outputs do not push the other network in an arbitrary direction.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from audiodream.worldmodel.networks import mlp


def _zero_output_layer(net: nn.Sequential) -> nn.Sequential:
    last = net[-1]
    assert isinstance(last, nn.Linear)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return net


def categorical_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log π(· | s) in float32, whatever precision the network ran in."""
    return F.log_softmax(logits.float(), dim=-1)


def categorical_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of categoricals given as log-probs (..., A) -> (...)."""
    return -(log_probs.exp() * log_probs).sum(-1)


def sample_categorical(logits: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Action ids (...,) drawn from logits (..., A), reproducible with `generator`."""
    probs = categorical_log_probs(logits).exp()
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


class Actor(nn.Module):
    """π(a | s): categorical logits over the discrete actions."""

    def __init__(self, feature_dim: int, n_actions: int, hidden: int, layers: int = 2) -> None:
        super().__init__()
        for name, value in (("feature_dim", feature_dim), ("n_actions", n_actions), ("hidden", hidden), ("layers", layers)):
            if int(value) < 1:
                raise ValueError(f"Actor: {name} must be >= 1, got {value}")
        self.feature_dim, self.n_actions, self.hidden, self.layers = int(feature_dim), int(n_actions), int(hidden), int(layers)
        self.net = _zero_output_layer(mlp(self.feature_dim, self.hidden, self.n_actions, self.layers))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., F) features -> (..., A) logits."""
        return self.net(features)

    def sample(self, features: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Exploring action ids (...,): what env workers and imagination use."""
        return sample_categorical(self(features), generator)

    def greedy(self, features: torch.Tensor) -> torch.Tensor:
        """Most probable action ids (...,): what evaluation uses."""
        return self(features).argmax(-1)

    def log_prob(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return categorical_log_probs(self(features)).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, features: torch.Tensor) -> torch.Tensor:
        return categorical_entropy(categorical_log_probs(self(features)))


class Critic(nn.Module):
    """v(s): the expected discounted return from s (see returns.py for which rewards count)."""

    def __init__(self, feature_dim: int, hidden: int, layers: int = 2) -> None:
        super().__init__()
        for name, value in (("feature_dim", feature_dim), ("hidden", hidden), ("layers", layers)):
            if int(value) < 1:
                raise ValueError(f"Critic: {name} must be >= 1, got {value}")
        self.feature_dim, self.hidden, self.layers = int(feature_dim), int(hidden), int(layers)
        self.net = _zero_output_layer(mlp(self.feature_dim, self.hidden, 1, self.layers))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., F) features -> (...,) values."""
        return self.net(features).squeeze(-1)
