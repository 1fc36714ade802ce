"""The RSSM's prior p(z_t | h_t): DreamerV2's factorised categoricals, or a mixture of them.

Why a mixture (`dreamer.prior_components` > 1): DreamerV2 draws its `stoch` categoricals
independently given h. When the next step is one of a few distinct outcomes ("ta" with
0.7, "ki" with 0.15, ...) and the posterior spreads what tells them apart over many
latents, independent draws mix parts of several outcomes into a chimera that decodes to
none of them. A mixture of K factorised components, p(z | h) = sum_k pi_k(h) prod_i
p_k(z_i | h), lets one sample commit to one outcome: pick a component, then its latents.
Nothing in the posterior has to change for this (an earlier trial that conditioned the
latents on latent 0 needed the posterior to move the outcome into latent 0, and it did
not); the component is marginalised out.

KL to a mixture has no closed form. The loss uses the upper bound

    KL(q || sum_k pi_k p_k) <= -log sum_k pi_k exp(-KL(q || p_k)),

the KL between the joints q(z) w(k) and pi_k p_k(z) at the best w(k) ∝ pi_k exp(-KL(q || p_k))
(a joint KL bounds the marginals' KL). Each KL(q || p_k) is exact, so the bound is
deterministic and tight when q sits close to one component; its gradient trains each
component on the posteriors it is responsible for (an EM-like split). With K = 1 it is
the plain KL and everything here reduces to DreamerV2's prior, number for number.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn
import torch.nn.functional as F

from audiodream.worldmodel.distributions import categorical_entropy, categorical_kl, gumbel_noise, mix_uniform, sample_one_hot, straight_through_sample


class LatentPrior(NamedTuple):
    """p(z | h) with any leading dims: log_weights (..., K), component_log_probs (..., K, stoch, classes)."""

    log_weights: torch.Tensor
    component_log_probs: torch.Tensor

    @staticmethod
    def factorised(log_probs: torch.Tensor) -> "LatentPrior":
        """DreamerV2's prior, one component, from its log-probs (..., stoch, classes)."""
        return LatentPrior(log_probs.new_zeros(*log_probs.shape[:-2], 1).float(), log_probs.unsqueeze(-3))

    @property
    def n_components(self) -> int:
        return self.component_log_probs.shape[-3]

    def marginal_log_probs(self) -> torch.Tensor:
        """Each latent's own marginal (..., stoch, classes): what reports (entropy, KL
        metric) and callers that look at one latent at a time read."""
        if self.n_components == 1:
            return self.component_log_probs[..., 0, :, :]
        return torch.logsumexp(self.log_weights[..., :, None, None] + self.component_log_probs, dim=-3)

    def kl_from(self, post_log_probs: torch.Tensor) -> torch.Tensor:
        """KL(post || prior) (...,) for a posterior (..., stoch, classes); for K > 1 the upper
        bound of the module docstring."""
        if self.n_components == 1:
            return categorical_kl(post_log_probs, self.component_log_probs[..., 0, :, :])
        # KL(q || p_k) = sum q log q - sum q log p_k; the second sum as one batched product
        # instead of K elementwise passes over (..., K, stoch, classes) (the cost on a CPU).
        post_probs = post_log_probs.exp()
        neg_entropy = (post_probs * post_log_probs).sum(dim=(-2, -1))
        cross = torch.einsum("...j,...kj->...k", post_probs.flatten(-2), self.component_log_probs.flatten(-2))
        return -torch.logsumexp(self.log_weights - (neg_entropy.unsqueeze(-1) - cross), dim=-1)

    def entropy_bound(self) -> torch.Tensor:
        """H(p) (...,) for one component; for a mixture its upper bound H(pi) + sum_k pi_k H(p_k)
        (exact when the components do not overlap), cheaper than the marginals' entropy."""
        weights = self.log_weights.exp()
        component_entropy = categorical_entropy(self.component_log_probs)  # (..., K)
        return -(weights * self.log_weights).sum(-1) + (weights * component_entropy).sum(-1)

    def detach(self) -> "LatentPrior":
        return LatentPrior(self.log_weights.detach(), self.component_log_probs.detach())

    def sample(self, generator: Optional[torch.Generator] = None, latent_temperature: float = 1.0) -> torch.Tensor:
        """A straight-through one-hot z (..., stoch*classes): a component, then its latents.

        The component draw carries no gradient (the latents' straight-through one does);
        with K = 1 no component is drawn, so the random stream is DreamerV2's.

        `latent_temperature` tempers the chosen component's latents only; the component is
        always drawn at its weights. At 0 each latent takes its most likely class, so a step
        is one of the K component modes, drawn with the mixture's weights: the choice of
        outcome stays random, the per-latent noise that mixes several outcomes' latents into
        a step that decodes to none of them is gone (README "World model", imagination
        temperatures).
        """
        if not latent_temperature >= 0.0:  # NaN too
            raise ValueError(f"latent temperature: must be >= 0, got {latent_temperature}")
        if self.n_components == 1:
            chosen = self.component_log_probs[..., 0, :, :]
        else:
            choice = (self.log_weights + gumbel_noise(self.log_weights.shape, self.log_weights.device, generator)).argmax(-1)
            index = choice[..., None, None, None].expand(*choice.shape, 1, *self.component_log_probs.shape[-2:])
            chosen = self.component_log_probs.gather(-3, index).squeeze(-3)
        if latent_temperature == 1.0:
            return sample_one_hot(chosen, generator)
        if latent_temperature == 0.0:
            return straight_through_sample(chosen.exp(), torch.zeros_like(chosen))
        return sample_one_hot(F.log_softmax(chosen / latent_temperature, dim=-1), generator)


def latent_prior(latent_logits: torch.Tensor, mixture_logits: Optional[torch.Tensor], unimix: float) -> LatentPrior:
    """A prior from its component logits (..., K, stoch, classes) and mixture logits (..., K)
    (None for one component)."""
    if mixture_logits is None:
        if latent_logits.shape[-3] != 1:
            raise ValueError(f"latent_prior: {latent_logits.shape[-3]} components need mixture logits")
        return LatentPrior.factorised(mix_uniform(latent_logits[..., 0, :, :], unimix))
    return LatentPrior(F.log_softmax(mixture_logits.float(), dim=-1), mix_uniform(latent_logits, unimix))


class MixturePriorHead(nn.Module):
    """h -> (component logits (..., K, stoch, classes), mixture logits (..., K)), for K > 1.

    K full output layers would make the prior's output product K times as large. Here the
    components share DreamerV2's prior (trunk and output layer, the "base") and differ by
    a low-rank correction: component k adds W_shared @ elu(U_k @ trunk(h)) with a
    `rank`-wide U_k, so the extra product is K * rank wide instead of K * hidden. (On the
    listen batches, one thread, K = 8, the full head took 0.44 s an update against 0.25 s
    for one component; this head 0.35 to 0.40 s: most of what is left is elementwise work
    on the (B, T, K, stoch, classes) log-probs, not products.)
    """

    def __init__(self, deter: int, hidden: int, stoch: int, classes: int, components: int, rank: int) -> None:
        super().__init__()
        self.stoch, self.classes, self.components, self.rank = stoch, classes, components, rank
        stoch_dim = stoch * classes
        self.trunk = nn.Sequential(nn.Linear(deter, hidden), nn.LayerNorm(hidden), nn.ELU())
        self.base = nn.Linear(hidden, stoch_dim)
        self.mixture = nn.Linear(hidden, components)
        self.component_in = nn.Linear(hidden, components * rank)
        self.component_out = nn.Linear(rank, stoch_dim, bias=False)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trunk = self.trunk(h)
        corrections = self.component_out(F.elu(self.component_in(trunk)).unflatten(-1, (self.components, self.rank)))
        latent = self.base(trunk).unsqueeze(-2) + corrections  # (..., K, stoch * classes)
        return latent.unflatten(-1, (self.stoch, self.classes)), self.mixture(trunk)
