"""Policies that act in real (vector) envs: the trained agent, and a random one for prefill.

The agent keeps one RSSM state per env. Each step it folds the new observation (and
the action that led to it) into that state with the world model's posterior, then the
actor picks the next action from the state's features: sampled while collecting
experience (with probability `explore_epsilon` a uniformly random one instead), the
most probable one when evaluating. Inference runs on the CPU without
gradients, as env workers do; weights arrive as a plain state dict (the learner
publishes them through the Ray object store).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Optional, Protocol

import numpy as np
import torch

from audiodream.agent.networks import Actor, sample_categorical
from audiodream.worldmodel.model import WorldModel
from audiodream.worldmodel.rssm import RSSMState
from audiodream.worldmodel.sizes import WorldModelSpec

ArrayLike = Any  # np.ndarray or torch.Tensor


class ActingPolicy(Protocol):
    """What an env worker calls; `state` is whatever `initial_state` returned (or `act` last gave back)."""

    def initial_state(self, n: int) -> Any: ...

    def act(
        self,
        tokens: ArrayLike,
        prev_actions: ArrayLike,
        is_first: ArrayLike,
        state: Any,
        greedy: bool = False,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[np.ndarray, Any]: ...


def _as_tensor(name: str, value: ArrayLike, shape: tuple[int, ...], integer: bool) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    if tuple(tensor.shape) != shape:
        raise ValueError(f"act: {name} must have shape {shape}, got {tuple(tensor.shape)}")
    if integer and (tensor.dtype.is_floating_point or tensor.dtype == torch.bool):
        raise TypeError(f"act: {name} must hold integer ids, got dtype {tensor.dtype}")
    return tensor.cpu()


class AgentPolicy:
    def __init__(self, world_model: WorldModel, actor: Actor, explore_epsilon: float = 0.0) -> None:
        """explore_epsilon: share of sampled (not greedy) actions replaced by uniform random
        ones. The world model learns the reward of an action only from replay steps that
        took it; an actor that has settled on one answer would otherwise stop showing it
        the others (DreamerV1's epsilon-greedy exploration for discrete actions)."""
        if not 0.0 <= float(explore_epsilon) <= 1.0:
            raise ValueError(f"dreamer.explore_epsilon: must lie in [0, 1], got {explore_epsilon}")
        self.explore_epsilon = float(explore_epsilon)
        spec = world_model.spec
        if actor.feature_dim != spec.feature_dim or actor.n_actions != spec.n_actions:
            raise ValueError(
                f"AgentPolicy: actor for features {actor.feature_dim} / {actor.n_actions} actions does not fit "
                f"the world model's features {spec.feature_dim} / {spec.n_actions} actions"
            )
        # Copies: the learner may hand in the very modules it trains (e.g. for evaluation).
        self.world_model = copy.deepcopy(world_model).cpu().eval().requires_grad_(False)
        self.actor = copy.deepcopy(actor).cpu().eval().requires_grad_(False)

    @property
    def spec(self) -> WorldModelSpec:
        return self.world_model.spec

    @classmethod
    def from_weights(cls, spec_dict: Mapping[str, Any], weights: Mapping[str, Any], explore_epsilon: float = 0.0) -> "AgentPolicy":
        """Build from a world-model spec dict and `ActorCriticTrainer.policy_weights(...)`."""
        for key in ("world_model", "actor", "actor_hidden", "actor_layers"):
            if key not in weights:
                raise KeyError(f"policy weights: missing key {key!r}; got keys {sorted(weights)}")
        spec = WorldModelSpec.from_dict(spec_dict)
        # The actor's state dict carries its reward prior scale; load_weights sets it.
        actor = Actor(spec.feature_dim, spec.n_actions, int(weights["actor_hidden"]), int(weights["actor_layers"]))
        policy = cls(WorldModel(spec), actor, explore_epsilon)
        policy.load_weights(weights)
        return policy

    def load_weights(self, weights: Mapping[str, Any]) -> None:
        """Replace the weights in place (same sizes), e.g. when the learner publishes new ones."""
        if int(weights["actor_hidden"]) != self.actor.hidden or int(weights["actor_layers"]) != self.actor.layers:
            raise ValueError(
                f"policy weights: actor of width {weights['actor_hidden']} x {weights['actor_layers']} layers, "
                f"this policy's is {self.actor.hidden} x {self.actor.layers}"
            )
        self.world_model.load_state_dict(weights["world_model"])
        self.actor.load_state_dict(weights["actor"])

    def initial_state(self, n: int) -> RSSMState:
        return self.world_model.rssm.initial_state(int(n), "cpu")

    @torch.no_grad()
    def act(
        self,
        tokens: ArrayLike,
        prev_actions: ArrayLike,
        is_first: ArrayLike,
        state: RSSMState,
        greedy: bool = False,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[np.ndarray, RSSMState]:
        """Next actions (N,) int64 and the updated states, for N envs at one step.

        tokens (N, K): this step's observation; prev_actions (N,): the action that led
        to it (ignored where is_first, which also resets that env's state).
        """
        n = int(state.h.shape[0])
        spec = self.spec
        tokens_t = _as_tensor("tokens", tokens, (n, spec.tokens_per_step), integer=True).long()
        first = _as_tensor("is_first", is_first, (n,), integer=False).bool()
        actions_t = _as_tensor("prev_actions", prev_actions, (n,), integer=True).long().masked_fill(first, 0)
        if tokens_t.numel() and (int(tokens_t.min()) < 0 or int(tokens_t.max()) >= spec.vocab_size):
            raise ValueError(f"act: tokens must lie in [0, {spec.vocab_size}), got [{int(tokens_t.min())}, {int(tokens_t.max())}]")
        if actions_t.numel() and (int(actions_t.min()) < 0 or int(actions_t.max()) >= spec.n_actions):
            raise ValueError(f"act: prev_actions must lie in [0, {spec.n_actions}) where not is_first, got [{int(actions_t.min())}, {int(actions_t.max())}]")
        posterior = self.world_model.observe(tokens_t[:, None], actions_t[:, None], first[:, None], state, generator)
        new_state = posterior.last_state
        logits = self.actor.policy_logits(new_state.features, self.world_model)
        if greedy:
            actions = logits.argmax(-1)
        else:
            actions = sample_categorical(logits, generator)
            if self.explore_epsilon > 0.0:
                explore = torch.rand(n, generator=generator) < self.explore_epsilon
                actions = torch.where(explore, torch.randint(0, spec.n_actions, (n,), generator=generator), actions)
        return actions.numpy().astype(np.int64), new_state


class RandomPolicy:
    """Uniform random actions with the agent's interface: the prefill policy."""

    def __init__(self, n_actions: int) -> None:
        if int(n_actions) < 1:
            raise ValueError(f"RandomPolicy: n_actions must be >= 1, got {n_actions}")
        self.n_actions = int(n_actions)

    def initial_state(self, n: int) -> None:
        return None

    def act(
        self,
        tokens: ArrayLike,
        prev_actions: ArrayLike,
        is_first: ArrayLike,
        state: None,
        greedy: bool = False,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[np.ndarray, None]:
        n = len(is_first)
        actions = torch.randint(0, self.n_actions, (n,), generator=generator)
        return actions.numpy().astype(np.int64), state
