"""World-model loss terms that have a specification of their own (tested on hand-made inputs)."""

from __future__ import annotations

import torch

from audiodream.worldmodel.distributions import categorical_kl


def balanced_kl_loss(post_log_probs: torch.Tensor, prior_log_probs: torch.Tensor, kl_balance: float, free_nats: float) -> torch.Tensor:
    """DreamerV2 KL balancing with per-step free nats; returns a (...,) loss per step.

    loss = kl_balance * max(KL(sg(post) || prior), free_nats)
         + (1 - kl_balance) * max(KL(post || sg(prior)), free_nats)

    The first term trains the prior toward the posterior, the second regularises the
    posterior toward the prior; weighting the first more (0.8) lets the prior catch
    up instead of the posterior collapsing onto a poor prior. Free nats are applied
    per step, to each term after summing the KL over all latents (as in DreamerV3),
    so a step whose KL is already below `free_nats` contributes no gradient at all.
    """
    kl_train_prior = categorical_kl(post_log_probs.detach(), prior_log_probs)
    kl_train_post = categorical_kl(post_log_probs, prior_log_probs.detach())
    clamped_prior = torch.clamp(kl_train_prior, min=free_nats)
    clamped_post = torch.clamp(kl_train_post, min=free_nats)
    return kl_balance * clamped_prior + (1.0 - kl_balance) * clamped_post
