"""Prompted and unconditional imagination, shared by eval (completion, dreams) and generate.

Actions: a world model of an env with actions predicts the next step *given* the
action that leads to it, so imagining needs actions. We use the run's behaviour: the
actor's sampled action when the run trained one (what the env workers did for most
of training), else action 0 (always in the training data: Listen-v0 has only action 0,
and the random prefill policy of other envs takes it as often as any other).

Time convention (worldmodel/rssm.py): the action taken in state t leads to step t + 1;
at the first step of an episode the model sees no previous state and no action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch

from audiodream.agent import Actor
from audiodream.agent.networks import sample_categorical
from audiodream.worldmodel import ImaginedTrajectory, Policy, RSSMState, WorldModel


@dataclass(frozen=True)
class Temperatures:
    """How imagined steps are drawn (`eval.token_temperature` / `latent_temperature`,
    `generate.temperature` / `latent_temperature`): the token decoder's temperature, and
    that of the prior's latents within the mixture component each step draws
    (LatentPrior.sample). 1 and 1 draw from the model as trained; 0 takes the most likely
    token, or each latent's most likely class (the component stays drawn at its weights)."""

    tokens: float = 1.0
    latents: float = 1.0

    def __post_init__(self) -> None:
        for name, value in (("tokens", self.tokens), ("latents", self.latents)):
            if not value >= 0.0:
                raise ValueError(f"{name} temperature: must be >= 0, got {value}")

    @classmethod
    def from_config(cls, section: object, name: str, tokens_key: str) -> "Temperatures":
        """From config section `name`'s `tokens_key` and `latent_temperature`; a clear error
        naming the key that is not a number >= 0."""
        values = []
        for key in (tokens_key, "latent_temperature"):
            value = getattr(section, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"config key '{name}.{key}': must be a number >= 0, got {value!r}")
            values.append(float(value))
        return cls(*values)


def behaviour_policy(actor: Optional[Actor], world_model: WorldModel) -> Policy:
    """policy(features (N, F), generator) -> action ids (N,): the actor's samples, or action 0."""
    if actor is None:
        return lambda features, generator: torch.zeros(features.shape[0], dtype=torch.long, device=features.device)
    if actor.n_actions != world_model.spec.n_actions:
        raise ValueError(f"behaviour_policy: actor has {actor.n_actions} actions, the world model {world_model.spec.n_actions}")
    return lambda features, generator: sample_categorical(actor.policy_logits(features, world_model), generator)


@torch.no_grad()
def prompt_states(model: WorldModel, tokens: torch.Tensor, policy: Policy, generator: Optional[torch.Generator] = None) -> Iterator[RSSMState]:
    """Posterior state after each step of (N, L, K) prompt tokens observed from an episode start.

    Step by step, so each action fed to the model is the one `policy` picks in the state
    before it, as in the env.
    """
    if tokens.dim() != 3 or tokens.shape[1] < 1:
        raise ValueError(f"prompt tokens must have shape (N, L >= 1, K), got {tuple(tokens.shape)}")
    n, steps = tokens.shape[:2]
    device = model.device
    tokens = tokens.to(device)
    state: Optional[RSSMState] = None
    actions = torch.zeros(n, dtype=torch.long, device=device)
    for t in range(steps):
        is_first = torch.full((n, 1), t == 0, dtype=torch.bool, device=device)
        state = model.observe(tokens[:, t : t + 1], actions[:, None], is_first, state, generator).last_state
        yield state
        if t + 1 < steps:
            actions = policy(state.features, generator).long()


@torch.no_grad()
def observe_prompt(model: WorldModel, tokens: torch.Tensor, policy: Policy, generator: Optional[torch.Generator] = None) -> RSSMState:
    """Posterior state after observing (N, L, K) prompt tokens from an episode start (`prompt_states`)."""
    state: Optional[RSSMState] = None
    for state in prompt_states(model, tokens, policy, generator):
        pass
    assert state is not None
    return state


@torch.no_grad()
def imagine_tokens(
    model: WorldModel,
    start: RSSMState,
    steps: int,
    policy: Policy,
    temperatures: Temperatures = Temperatures(),
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """(N, steps, K) tokens sampled along a prior rollout of `steps` steps after `start`."""
    if steps < 1:
        raise ValueError(f"imagine_tokens: steps must be >= 1, got {steps}")
    trajectory = model.imagine(start, policy, steps, generator, True, temperatures.tokens, temperatures.latents)
    assert trajectory.tokens is not None
    return trajectory.tokens


@torch.no_grad()
def dream_trajectory(
    model: WorldModel,
    n: int,
    steps: int,
    policy: Policy,
    temperatures: Temperatures = Temperatures(),
    generator: Optional[torch.Generator] = None,
) -> ImaginedTrajectory:
    """Unconditional dreams: `n` episodes of `steps` steps imagined from nothing.

    The first step is drawn from the prior the model learnt for episode starts (zero
    state, no action: exactly what `observe` feeds at an is_first step); each later
    step follows `policy`. States 1..steps of the trajectory are the dream's steps.
    """
    if steps < 1:
        raise ValueError(f"dream: steps must be >= 1, got {steps}")
    start = model.rssm.initial_state(n, model.device)
    no_action = torch.zeros(n, model.spec.n_actions, device=model.device)
    calls = 0

    def policy_after_start(features: torch.Tensor, gen: Optional[torch.Generator]) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return no_action
        return model.one_hot_actions(policy(features, gen).long())

    return model.imagine(start, policy_after_start, steps, generator, True, temperatures.tokens, temperatures.latents)


def dream_tokens(
    model: WorldModel,
    n: int,
    steps: int,
    policy: Policy,
    temperatures: Temperatures = Temperatures(),
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """(n, steps, K) tokens of unconditional dreams (see dream_trajectory)."""
    tokens = dream_trajectory(model, n, steps, policy, temperatures, generator).tokens
    assert tokens is not None
    return tokens
