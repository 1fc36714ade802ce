"""The PPO baseline's policy/value network over token observations, as a plain torch module.

A feed-forward policy would only hear the current chunk, i.e. the last syllable, and
Complete-v0 rewards knowing the last two (Echo-v0 the whole word), so the baseline is
recurrent: embed each of the K tokens, flatten (token positions keep their meaning),
project, run a GRU over env steps, then a policy head and a value head.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TokenRecurrentNet(nn.Module):
    def __init__(self, codebook_size: int, tokens_per_step: int, n_actions: int, embed_dim: int = 16, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(codebook_size, embed_dim)
        self.project = nn.Sequential(nn.Linear(tokens_per_step * embed_dim, hidden), nn.ReLU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.trunk = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.policy = nn.Linear(hidden, n_actions)
        self.value = nn.Linear(hidden, 1)

    def initial_state(self, batch: int) -> Tensor:
        return torch.zeros(batch, self.hidden)

    def features(self, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, K) int tokens and (B, hidden) state -> (B, T, hidden) features, next state."""
        batch, steps, _ = tokens.shape
        x = self.project(self.embed(tokens.long()).reshape(batch, steps, -1))
        out, last = self.gru(x, state.unsqueeze(0))
        return self.trunk(out), last.squeeze(0)

    def forward(self, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Logits (B, T, n_actions), values (B, T), next state (B, hidden)."""
        feats, last = self.features(tokens, state)
        return self.policy(feats), self.value(feats).squeeze(-1), last
