"""Token encoder, token decoder and the small MLP heads of the world model."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 1) -> nn.Sequential:
    """`layers` hidden Linear-LayerNorm-ELU blocks, then a linear output."""
    blocks: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ELU()]
        width = hidden
    blocks.append(nn.Linear(width, out_dim))
    return nn.Sequential(*blocks)


class TokenEncoder(nn.Module):
    """Embeds the K tokens of one env step into one step embedding.

    Each slot has a learned position embedding, so the same code means different
    things in different (latent frame, group) slots, as it does in the VQ-VAE.
    """

    def __init__(self, tokens_per_step: int, vocab_size: int, token_embed: int, hidden: int, embed: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, token_embed)
        self.slot_embedding = nn.Parameter(torch.randn(tokens_per_step, token_embed) * 0.02)
        self.net = nn.Sequential(
            nn.Linear(tokens_per_step * token_embed, hidden), nn.LayerNorm(hidden), nn.ELU(),
            nn.Linear(hidden, embed), nn.LayerNorm(embed), nn.ELU(),
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., K) token ids -> (..., embed)."""
        vectors = self.token_embedding(tokens) + self.slot_embedding
        return self.net(vectors.flatten(-2))


class TokenDecoder(nn.Module):
    """Features -> a categorical over the codebook for each of the K token slots.

    Features are mapped to K per-slot vectors of width d (shared trunk, per-slot
    position embedding). The codebook distribution is factorised in two levels,
    p(v) = p(group(v)) * p(v | group(v)), with ~sqrt(V) groups of ~sqrt(V) codes
    (group = v // group_size). This is an exact, normalised distribution over all V
    codes, but the training loss only needs the true code's group, so it costs
    O(sqrt(V)) per token instead of O(V): on a CPU the flat (d x V) softmax over
    B*T*K tokens dominated the update time. Output weights are shared by all slots;
    each slot has its own bias (its token frequencies), looked up only where needed.
    """

    def __init__(self, feature_dim: int, hidden: int, tokens_per_step: int, slot_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.tokens_per_step = tokens_per_step
        self.slot_dim = slot_dim
        self.vocab_size = vocab_size
        self.groups = math.ceil(math.sqrt(vocab_size))
        self.group_size = math.ceil(vocab_size / self.groups)
        self.trunk = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.LayerNorm(hidden), nn.ELU(),
            nn.Linear(hidden, tokens_per_step * slot_dim),
        )
        self.slot_embedding = nn.Parameter(torch.randn(tokens_per_step, slot_dim) * 0.02)
        self.slot_norm = nn.LayerNorm(slot_dim)
        self.group_out = nn.Linear(slot_dim, self.groups)
        self.slot_group_bias = nn.Parameter(torch.zeros(tokens_per_step, self.groups))
        self.within_weight = nn.Parameter(torch.randn(self.groups, slot_dim, self.group_size) / math.sqrt(slot_dim))
        # Bias of code (group g, index i) in slot k, stored at row k * groups + g.
        self.within_bias = nn.Embedding(tokens_per_step * self.groups, self.group_size)
        nn.init.zeros_(self.within_bias.weight)
        padding = torch.zeros(self.groups, self.group_size)
        padding.view(-1)[vocab_size:] = float("-inf")  # codes >= V do not exist
        self.register_buffer("padding", padding, persistent=False)

    def slot_vectors(self, features: torch.Tensor) -> torch.Tensor:
        """(..., F) -> (..., K, d)."""
        slots = self.trunk(features).unflatten(-1, (self.tokens_per_step, self.slot_dim))
        return F.elu(self.slot_norm(slots + self.slot_embedding))

    def _group_log_probs(self, slots: torch.Tensor) -> torch.Tensor:
        return F.log_softmax((self.group_out(slots) + self.slot_group_bias).float(), dim=-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., F) features -> (..., K, V) normalised log-probabilities (usable as logits).

        Computes every code's probability, O(V) per token: for sampling and inspection.
        """
        slots = self.slot_vectors(features)
        group_lp = self._group_log_probs(slots)  # (..., K, G)
        within = torch.einsum("...kd,gdm->...kgm", slots, self.within_weight).float()
        bias = self.within_bias.weight.view(self.tokens_per_step, self.groups, self.group_size)
        within_lp = F.log_softmax(within + bias + self.padding, dim=-1)
        log_probs = (group_lp.unsqueeze(-1) + within_lp).flatten(-2)
        return log_probs[..., : self.vocab_size]

    def token_log_prob(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """log p(tokens) for features (..., F) and tokens (..., K): shape (..., K), O(sqrt(V)) per token."""
        slots = self.slot_vectors(features)
        group_lp = self._group_log_probs(slots)
        group = tokens // self.group_size
        index = tokens % self.group_size
        flat_slots = slots.reshape(-1, self.slot_dim)
        flat_group = group.reshape(-1)
        within = self._true_group_logits(flat_slots, flat_group)  # (R, M)
        slot_ids = torch.arange(self.tokens_per_step, device=tokens.device).expand_as(tokens).reshape(-1)
        within = within + self.within_bias(slot_ids * self.groups + flat_group) + self.padding[flat_group]
        within_lp = F.log_softmax(within.float(), dim=-1).gather(-1, index.reshape(-1, 1)).squeeze(-1)
        return group_lp.gather(-1, group.unsqueeze(-1)).squeeze(-1) + within_lp.view(tokens.shape)

    def _true_group_logits(self, slots: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """slots (R, d) @ within_weight[group] (d, M), as one small matmul per group present."""
        order = torch.argsort(group)
        counts = torch.bincount(group, minlength=self.groups).tolist()
        sorted_slots = slots[order]
        pieces = [
            chunk @ self.within_weight[g].to(chunk.dtype)
            for g, chunk in enumerate(torch.split(sorted_slots, counts))
            if counts[g]
        ]
        result = torch.empty(slots.shape[0], self.group_size, dtype=pieces[0].dtype if pieces else slots.dtype, device=slots.device)
        if pieces:
            result[order] = torch.cat(pieces)
        return result


def sample_tokens(logits: torch.Tensor, temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Sample token ids from (..., V) logits; temperature 0 takes the most likely token."""
    if temperature < 0.0:
        raise ValueError(f"temperature: must be >= 0, got {temperature}")
    if temperature == 0.0:
        return logits.argmax(-1)
    probs = F.softmax(logits.float() / temperature, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def token_log_likelihood(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(tokens) under (..., V) logits (or log-probs), elementwise: shape of `tokens`."""
    logits = logits.float()
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)
