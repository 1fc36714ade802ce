"""Recurrent state-space model: GRU deterministic state h, discrete stochastic state z.

Time convention (pydreamer): at step t the model receives the action a_{t-1} that
led to observation t together with that observation. So
    h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}])      (deterministic path)
    prior(z_t | h_t)                            (what imagination samples from)
    posterior(z_t | h_t, embed(tokens_t))       (what observation uses)
At a step flagged `is_first` the previous state and the action are zeroed, so no
information crosses an episode boundary inside a replayed sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import nn

from audiodream.worldmodel.distributions import gumbel_noise, mix_uniform, mixed_probs, straight_through_sample
from audiodream.worldmodel.networks import GRU_CELLS, mlp
from audiodream.worldmodel.prior import LatentPrior, MixturePriorHead, latent_prior
from audiodream.worldmodel.sizes import WorldModelSpec


class RSSMState(NamedTuple):
    """Model state with any leading dims: h (..., deter), z (..., stoch*classes) one-hot."""

    h: torch.Tensor
    z: torch.Tensor

    @property
    def features(self) -> torch.Tensor:
        """concat(h, z): the input of every head and of the actor-critic."""
        return torch.cat([self.h, self.z], dim=-1)

    def flatten(self) -> "RSSMState":
        """Merge all leading dims into one, e.g. (B, T) posterior states -> B*T imagination starts."""
        return RSSMState(self.h.reshape(-1, self.h.shape[-1]), self.z.reshape(-1, self.z.shape[-1]))

    def detach(self) -> "RSSMState":
        return RSSMState(self.h.detach(), self.z.detach())

    def repeat(self, times: int) -> "RSSMState":
        """Each of N states `times` times in a row: (N, ...) -> (N * times, ...)."""
        return RSSMState(self.h.repeat_interleave(times, dim=0), self.z.repeat_interleave(times, dim=0))


@dataclass
class PosteriorSequence:
    """What observing a (B, T) sequence gives: states and both latent distributions."""

    h: torch.Tensor  # (B, T, deter)
    z: torch.Tensor  # (B, T, stoch*classes), posterior samples
    post_log_probs: torch.Tensor  # (B, T, stoch, classes), unimix applied
    prior: LatentPrior  # p(z_t | h_t) at every (B, T) step, unimix applied

    @property
    def prior_log_probs(self) -> torch.Tensor:
        """Each prior latent's marginal (B, T, stoch, classes)."""
        return self.prior.marginal_log_probs()

    @property
    def states(self) -> RSSMState:
        return RSSMState(self.h, self.z)

    @property
    def features(self) -> torch.Tensor:
        return torch.cat([self.h, self.z], dim=-1)

    @property
    def last_state(self) -> RSSMState:
        """State after the last step: where observation of the next chunk continues."""
        return RSSMState(self.h[:, -1], self.z[:, -1])


# Width of each mixture component's correction to the shared prior (prior.MixturePriorHead).
PRIOR_COMPONENT_RANK = 64


class RSSM(nn.Module):
    def __init__(self, spec: WorldModelSpec) -> None:
        super().__init__()
        self.spec = spec
        # Input MLP on concat(z, a), split so the action half runs once per sequence.
        self.input_from_z = nn.Linear(spec.stoch_dim, spec.hidden)
        self.input_from_action = nn.Linear(spec.n_actions, spec.hidden, bias=False)
        self.input_out = nn.Sequential(nn.LayerNorm(spec.hidden), nn.ELU())
        self.gru = GRU_CELLS[spec.gru](spec.hidden, spec.deter)
        if spec.prior_components == 1:
            self.prior_net: nn.Module = mlp(spec.deter, spec.hidden, spec.stoch_dim)
        else:
            self.prior_net = MixturePriorHead(spec.deter, spec.hidden, spec.stoch, spec.classes, spec.prior_components, PRIOR_COMPONENT_RANK)
        # Posterior MLP on concat(h, embed), split so the embed half runs once per sequence.
        self.post_from_h = nn.Linear(spec.deter, spec.hidden)
        self.post_from_embed = nn.Linear(spec.embed, spec.hidden, bias=False)
        self.post_out = nn.Sequential(nn.LayerNorm(spec.hidden), nn.ELU(), nn.Linear(spec.hidden, spec.stoch_dim))

    def initial_state(self, batch_size: int, device: torch.device | str) -> RSSMState:
        spec = self.spec
        return RSSMState(torch.zeros(batch_size, spec.deter, device=device), torch.zeros(batch_size, spec.stoch_dim, device=device))

    def _gru_step(self, state: RSSMState, action_part: torch.Tensor) -> torch.Tensor:
        return self.gru(self.input_out(self.input_from_z(state.z) + action_part), state.h)

    def deterministic_step(self, state: RSSMState, action: torch.Tensor) -> torch.Tensor:
        """h_t from (h_{t-1}, z_{t-1}) and the one-hot (or relaxed) action a_{t-1}."""
        return self._gru_step(state, self.input_from_action(action.to(state.z.dtype)))

    def prior(self, h: torch.Tensor) -> LatentPrior:
        """p(z | h): `dreamer.prior_components` factorised categoricals and their weights (prior.py)."""
        spec = self.spec
        if spec.prior_components == 1:
            return latent_prior(self.prior_net(h).unflatten(-1, (1, spec.stoch, spec.classes)), None, spec.unimix)
        return latent_prior(*self.prior_net(h), spec.unimix)

    def observe(
        self,
        embeds: torch.Tensor,
        actions: torch.Tensor,
        is_first: torch.Tensor,
        state: Optional[RSSMState] = None,
        generator: Optional[torch.Generator] = None,
        prior_sample_prob: float = 0.0,
    ) -> PosteriorSequence:
        """Posterior states of a (B, T) sequence: embeds (B,T,E), one-hot actions (B,T,A), is_first (B,T).

        `prior_sample_prob` > 0 (training only, `dreamer.prior_sample_prob`): each step,
        with that probability, feeds the GRU a sample of the prior instead of the posterior
        sample (scheduled sampling on the latent), for the whole batch at once so the
        steps that keep the posterior cost nothing extra. Heads and the KL still see the
        posterior; what changes is the state the next steps are built on. Imagination
        feeds the GRU nothing but prior samples, so a model trained only on posterior
        inputs need not keep in h what the observations re-supply every step (the voice,
        the syllables before), and its open-loop predictions drift.
        """
        batch, steps = is_first.shape
        if state is None:
            state = self.initial_state(batch, embeds.device)
        spec = self.spec
        keep = (~is_first).to(embeds.dtype).unsqueeze(-1)
        # Everything that does not depend on the previous state is computed for all steps at once.
        action_part = self.input_from_action(actions * keep)
        embed_part = self.post_from_embed(embeds)
        noise = gumbel_noise((steps, batch, spec.stoch, spec.classes), embeds.device, generator)
        prior_steps: list[bool] = [False] * steps
        if prior_sample_prob > 0.0:
            prior_steps = (torch.rand(steps, generator=generator, device=embeds.device) < prior_sample_prob).tolist()
        hs, zs, post_logits = [], [], []
        for t in range(steps):
            state = RSSMState(state.h * keep[:, t], state.z * keep[:, t])
            h = self._gru_step(state, action_part[:, t])
            logits = self.post_out(self.post_from_h(h) + embed_part[:, t]).unflatten(-1, (spec.stoch, spec.classes))
            z = straight_through_sample(mixed_probs(logits, spec.unimix), noise[t]).to(h.dtype)
            carried = self.prior(h).sample(generator).to(h.dtype) if prior_steps[t] else z
            state = RSSMState(h, carried)
            hs.append(h)
            zs.append(z)
            post_logits.append(logits)
        h_all = torch.stack(hs, dim=1)
        return PosteriorSequence(
            h=h_all,
            z=torch.stack(zs, dim=1),
            post_log_probs=mix_uniform(torch.stack(post_logits, dim=1), spec.unimix),
            prior=self.prior(h_all),
        )

    def imagine_step(
        self, state: RSSMState, action: torch.Tensor, generator: Optional[torch.Generator] = None, latent_temperature: float = 1.0
    ) -> tuple[RSSMState, torch.Tensor]:
        """One prior step: the next state (z sampled from the prior, its latents at
        `latent_temperature`, LatentPrior.sample) and the prior's per-latent marginal log-probs."""
        h = self.deterministic_step(state, action)
        prior = self.prior(h)
        return RSSMState(h, prior.sample(generator, latent_temperature).to(h.dtype)), prior.marginal_log_probs()
