"""Actor and critic: small MLPs on the RSSM features concat(h, z).

Both read detached features only, so nothing they learn flows back into the world
model. Their output layers start at zero: the first policy is uniform (maximum
entropy, every syllable tried) and the first values are 0, so early, untrained
outputs do not push the other network in an arbitrary direction.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

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


class PredictsActionRewards(Protocol):
    """What the reward prior needs of a world model (WorldModel has it)."""

    def predict_action_rewards(self, features: torch.Tensor) -> torch.Tensor: ...


class Actor(nn.Module):
    """π(a | s): categorical logits over the discrete actions.

    reward_prior_scale > 0 (`dreamer.actor_reward_prior`): the logits are the network's
    plus scale * r(s, ·), the world model's predicted reward of every action here. With
    scale = 1 / entropy_coef that prior is the entropy-regularised optimum for the
    immediate reward, softmax(r / entropy_coef), so the network only has to learn what
    follows an action (exactly so while the return normaliser's scale is at its floor of 1;
    above it the prior is sharper and the network corrects for it). Why: the actor otherwise relearns, through policy gradients on
    imagined states, the same mapping from audio to "which answer pays" that the reward
    head has already learnt; on Complete-v0 it trailed the head's one-step lookahead by
    0.13 and 0.32 return at the end of two 1,800-update main jobs. The scale is a buffer,
    so checkpoints and published weights carry it; whether it is on is also kept as a
    Python bool, so acting does not read a (possibly CUDA) tensor every step.
    """

    def __init__(self, feature_dim: int, n_actions: int, hidden: int, layers: int = 2, reward_prior_scale: float = 0.0) -> None:
        super().__init__()
        for name, value in (("feature_dim", feature_dim), ("n_actions", n_actions), ("hidden", hidden), ("layers", layers)):
            if int(value) < 1:
                raise ValueError(f"Actor: {name} must be >= 1, got {value}")
        if not float(reward_prior_scale) >= 0.0:
            raise ValueError(f"Actor: reward_prior_scale must be >= 0, got {reward_prior_scale}")
        self.feature_dim, self.n_actions, self.hidden, self.layers = int(feature_dim), int(n_actions), int(hidden), int(layers)
        self.net = _zero_output_layer(mlp(self.feature_dim, self.hidden, self.n_actions, self.layers))
        self.register_buffer("reward_prior_scale", torch.tensor(float(reward_prior_scale)))
        self.uses_reward_prior = float(reward_prior_scale) > 0.0

    def set_reward_prior_scale(self, scale: float) -> None:
        self.reward_prior_scale.fill_(float(scale))
        self.uses_reward_prior = float(scale) > 0.0

    def forward(self, features: torch.Tensor, action_rewards: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(..., F) features [+ (..., A) predicted rewards, needed with a reward prior] -> (..., A) logits."""
        logits = self.net(features)
        if not self.uses_reward_prior:
            return logits
        if action_rewards is None:
            raise ValueError("Actor: this actor has a reward prior; pass the world model's predicted action rewards (see policy_logits)")
        return logits + self.reward_prior_scale * action_rewards.detach().to(logits.dtype)

    def policy_logits(self, features: torch.Tensor, world_model: PredictsActionRewards) -> torch.Tensor:
        """The logits the agent acts by in the state with these features."""
        if not self.uses_reward_prior:
            return self(features)
        with torch.no_grad():
            action_rewards = world_model.predict_action_rewards(features)
        return self(features, action_rewards)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Actors saved before the reward prior existed have no scale: they had none.
        scale = state_dict.setdefault(prefix + "reward_prior_scale", torch.tensor(0.0))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.uses_reward_prior = float(scale) > 0.0


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
