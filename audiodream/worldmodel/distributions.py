"""Categorical latents of the RSSM: uniform mixing, straight-through sampling, KL, entropy.

Latent logits have shape (..., stoch, classes); a sampled state is the flattened
one-hot (..., stoch * classes).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F


def mixed_probs(logits: torch.Tensor, unimix: float) -> torch.Tensor:
    """(1 - unimix) * softmax(logits) + unimix / classes.

    The floor keeps every class reachable, so KL terms stay finite and the prior
    never becomes so confident that the posterior cannot move it (DreamerV3).
    """
    probs = F.softmax(logits.float(), dim=-1)
    if unimix <= 0.0:
        return probs
    return (1.0 - unimix) * probs + unimix / logits.shape[-1]


def mix_uniform(logits: torch.Tensor, unimix: float) -> torch.Tensor:
    """Log of `mixed_probs`."""
    if unimix <= 0.0:
        return F.log_softmax(logits.float(), dim=-1)
    return mixed_probs(logits, unimix).log()


def gumbel_noise(shape: torch.Size | tuple[int, ...], device: torch.device, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Gumbel(0, 1) noise; argmax(log p + noise) is a sample of p. Drawn in bulk (a whole
    sequence at once) because one random call per step is slow on a CPU."""
    uniform = torch.rand(shape, device=device, generator=generator)
    return -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))


class _StraightThroughOneHot(torch.autograd.Function):
    """Forward: the one-hot of `index`; backward: the gradient goes to `probs` unchanged."""

    @staticmethod
    def forward(ctx: Any, probs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(probs).scatter_(-1, index.unsqueeze(-1), 1.0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def straight_through_sample(probs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One-hot sample of each categorical in (..., stoch, classes), flattened, given Gumbel noise.

    The forward value is an exact one-hot; the backward pass sees d(probs), which is
    how DreamerV2 backpropagates through discrete latents.
    """
    index = (probs.log() + noise).argmax(-1)
    return _StraightThroughOneHot.apply(probs, index).flatten(-2)


def sample_one_hot(log_probs: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One straight-through one-hot sample per categorical of (..., stoch, classes) log-probs."""
    noise = gumbel_noise(log_probs.shape, log_probs.device, generator)
    return straight_through_sample(log_probs.exp(), noise)


def mode_one_hot(log_probs: torch.Tensor) -> torch.Tensor:
    """Most likely class of each categorical, flattened (deterministic decoding)."""
    index = log_probs.argmax(-1)
    return F.one_hot(index, log_probs.shape[-1]).to(log_probs.dtype).flatten(-2)


def categorical_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) summed over latents and classes: shape (...,) for inputs (..., stoch, classes)."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=(-2, -1))


def categorical_entropy(log_p: torch.Tensor) -> torch.Tensor:
    """Entropy summed over latents: shape (...,) for inputs (..., stoch, classes)."""
    return -(log_p.exp() * log_p).sum(dim=(-2, -1))
