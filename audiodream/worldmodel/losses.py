"""World-model loss terms that have a specification of their own (tested on hand-made inputs)."""

from __future__ import annotations

from typing import NamedTuple, Union

import torch

from audiodream.worldmodel.prior import LatentPrior


class BalancedKL(NamedTuple):
    """A balanced KL loss per step and the KL it was built from (for the `loss_kl` metric)."""

    loss: torch.Tensor  # (...,) with gradients
    kl: torch.Tensor  # (...,) KL(post || prior), detached


def balanced_kl_loss(post_log_probs: torch.Tensor, prior: Union[torch.Tensor, LatentPrior], kl_balance: float, free_nats: float) -> BalancedKL:
    """DreamerV2 KL balancing with per-step free nats; returns a (...,) loss per step.

    loss = kl_balance * max(KL(sg(post) || prior), free_nats)
         + (1 - kl_balance) * max(KL(post || sg(prior)), free_nats)

    The first term trains the prior toward the posterior, the second regularises the
    posterior toward the prior; weighting the first more (0.8) lets the prior catch
    up instead of the posterior collapsing onto a poor prior. Free nats are applied
    per step, to each term after summing the KL over all latents (as in DreamerV3),
    so a step whose KL is already below `free_nats` contributes no gradient at all.
    `prior` is factorised log-probs (..., stoch, classes) or a `LatentPrior` (a mixture's
    KL is its upper bound, prior.py). The KL comes back too, so the metric costs no third pass.
    """
    if isinstance(prior, torch.Tensor):
        prior = LatentPrior.factorised(prior)
    kl_train_prior = prior.kl_from(post_log_probs.detach())
    kl_train_post = prior.detach().kl_from(post_log_probs)
    clamped_prior = torch.clamp(kl_train_prior, min=free_nats)
    clamped_post = torch.clamp(kl_train_post, min=free_nats)
    return BalancedKL(kl_balance * clamped_prior + (1.0 - kl_balance) * clamped_post, kl_train_prior.detach())


def transition_reward_loss(action_rewards: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, is_first: torch.Tensor) -> torch.Tensor:
    """Squared error of r(s_{t-1}, a_{t-1}) against the reward that arrived with step t.

    action_rewards (B, T, A): the reward head at every step; actions (B, T): a_{t-1}
    stored with step t; rewards (B, T); is_first (B, T). Transitions t-1 -> t inside
    one episode are scored; a step that starts an episode (reward 0 by convention, no
    action led to it from the previous step) and the batch's first step are not.
    """
    predicted = action_rewards[:, :-1].gather(-1, actions[:, 1:].long().unsqueeze(-1)).squeeze(-1)
    within = (~is_first[:, 1:]).to(predicted.dtype)
    squared = (predicted - rewards[:, 1:].to(predicted.dtype)).pow(2) * within
    return squared.sum() / within.sum().clamp(min=1.0)
