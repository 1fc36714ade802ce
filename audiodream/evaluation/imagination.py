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
from audiodream.tokenizer.model import Tokenizer
from audiodream.worldmodel import ImaginedTrajectory, Policy, RSSMState, WorldModel


TOKEN_DRAWS = ("sample", "mean")


@dataclass(frozen=True)
class Temperatures:
    """How imagined steps are drawn (`eval.token_temperature` / `latent_temperature` /
    `token_draw`, `generate.temperature` / `latent_temperature` / `token_draw`): the token
    decoder's temperature, and that of the prior's latents within the mixture component each
    step draws (LatentPrior.sample). 1 and 1 draw from the model as trained; 0 takes the
    most likely token, or each latent's most likely class (the component stays drawn at its
    weights).

    `token_draw` says what the tokenizer decodes for a step: "sample", token ids drawn at
    the token temperature; "mean", each token slot's code vector averaged under the
    decoder's distribution at that temperature (WorldModel.mean_code_vectors; at 0 both
    are the most likely token)."""

    tokens: float = 1.0
    latents: float = 1.0
    token_draw: str = "sample"

    def __post_init__(self) -> None:
        for name, value in (("tokens", self.tokens), ("latents", self.latents)):
            if not value >= 0.0:
                raise ValueError(f"{name} temperature: must be >= 0, got {value}")
        if self.token_draw not in TOKEN_DRAWS:
            raise ValueError(f"token draw: must be one of {', '.join(TOKEN_DRAWS)}, got {self.token_draw!r}")

    @classmethod
    def from_config(cls, section: object, name: str, tokens_key: str) -> "Temperatures":
        """From config section `name`'s `tokens_key`, `latent_temperature` and `token_draw`;
        a clear error naming the key that is not a number >= 0 or not a known draw."""
        values = []
        for key in (tokens_key, "latent_temperature"):
            value = getattr(section, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"config key '{name}.{key}': must be a number >= 0, got {value!r}")
            values.append(float(value))
        draw = getattr(section, "token_draw")
        if draw not in TOKEN_DRAWS:
            raise ValueError(f"config key '{name}.token_draw': must be one of {', '.join(TOKEN_DRAWS)}, got {draw!r}")
        return cls(*values, draw)


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
def imagine_trajectory(
    model: WorldModel,
    start: RSSMState,
    steps: int,
    policy: Policy,
    temperatures: Temperatures = Temperatures(),
    generator: Optional[torch.Generator] = None,
    with_tokens: bool = True,
) -> ImaginedTrajectory:
    """A prior rollout of `steps` steps after `start` (states 1..steps are the imagined ones),
    drawn at `temperatures`; with tokens sampled for them when `with_tokens`."""
    if steps < 1:
        raise ValueError(f"imagine: steps must be >= 1, got {steps}")
    return model.imagine(start, policy, steps, generator, with_tokens, temperatures.tokens, temperatures.latents)


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
    tokens = imagine_trajectory(model, start, steps, policy, temperatures, generator).tokens
    assert tokens is not None
    return tokens


@torch.no_grad()
def render_steps(
    model: WorldModel,
    tokenizer: Tokenizer,
    features: torch.Tensor,
    temperatures: Temperatures = Temperatures(),
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """(N, n_mels, S * chunk_frames) CPU log-mels of the steps with features (N, S, F),
    drawn as `temperatures` says (token ids, or each slot's mean code)."""
    if temperatures.token_draw == "mean":
        return tokenizer.decode_code_vectors(model.mean_code_vectors(features, tokenizer.code_vectors(), temperatures.tokens)).cpu()
    return tokenizer.decode(model.sample_tokens(features, temperatures.tokens, generator).cpu()).cpu()


@torch.no_grad()
def imagine_mels(
    model: WorldModel,
    tokenizer: Tokenizer,
    start: RSSMState,
    steps: int,
    policy: Policy,
    temperatures: Temperatures = Temperatures(),
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """(N, n_mels, steps * chunk_frames) log-mels of a prior rollout of `steps` steps after
    `start`; with token_draw "sample", the decoding of `imagine_tokens`' tokens (the same draws)."""
    trajectory = imagine_trajectory(model, start, steps, policy, temperatures, generator, with_tokens=False)
    return render_steps(model, tokenizer, trajectory.features[:, 1:], temperatures, generator)


@torch.no_grad()
def dream_trajectory(
    model: WorldModel,
    n: int,
    steps: int,
    policy: Policy,
    temperatures: Temperatures = Temperatures(),
    generator: Optional[torch.Generator] = None,
    with_tokens: bool = True,
) -> ImaginedTrajectory:
    """Unconditional dreams: `n` episodes of `steps` steps imagined from nothing.

    The first step is drawn from the prior the model learnt for episode starts (zero
    state, no action: exactly what `observe` feeds at an is_first step); each later
    step follows `policy`. States 1..steps of the trajectory are the dream's steps.
    """
    start = model.rssm.initial_state(n, model.device)
    no_action = torch.zeros(n, model.spec.n_actions, device=model.device)
    calls = 0

    def policy_after_start(features: torch.Tensor, gen: Optional[torch.Generator]) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return no_action
        return model.one_hot_actions(policy(features, gen).long())

    return imagine_trajectory(model, start, steps, policy_after_start, temperatures, generator, with_tokens)


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


def dream_mels(
    model: WorldModel,
    tokenizer: Tokenizer,
    n: int,
    steps: int,
    policy: Policy,
    temperatures: Temperatures = Temperatures(),
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """(n, n_mels, steps * chunk_frames) log-mels of unconditional dreams (see dream_trajectory)."""
    trajectory = dream_trajectory(model, n, steps, policy, temperatures, generator, with_tokens=False)
    return render_steps(model, tokenizer, trajectory.features[:, 1:], temperatures, generator)
