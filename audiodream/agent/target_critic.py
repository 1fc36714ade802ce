"""The slowly updated copy of the critic that the λ-returns bootstrap from.

Regressing the critic onto returns computed from its own, just-updated values chases a
moving target and can diverge; a lagging copy keeps the targets still between
updates (DreamerV2: hard copy every 100 updates; DreamerV3: Polyak averaging).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from audiodream.agent.networks import Critic


class TargetCritic(nn.Module):
    """Copy of a critic, refreshed by `update` after each critic update.

    tau == 1: hard copy every `update_every` updates (updates update_every,
    2 * update_every, ...), unchanged in between.
    tau < 1: Polyak averaging at every update, target <- (1 - tau) target + tau critic;
    `update_every` is then not used.
    """

    def __init__(self, critic: Critic, update_every: int, tau: float) -> None:
        super().__init__()
        if int(update_every) < 1:
            raise ValueError(f"dreamer.target_update_every: must be >= 1, got {update_every}")
        if not 0.0 < float(tau) <= 1.0:
            raise ValueError(f"dreamer.target_tau: must lie in (0, 1], got {tau}")
        self.update_every = int(update_every)
        self.tau = float(tau)
        self.network = copy.deepcopy(critic).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.network(features)

    @torch.no_grad()
    def update(self, critic: Critic) -> bool:
        """Count one critic update and move the target; True when it moved."""
        self.updates += 1
        if self.tau >= 1.0:
            if int(self.updates) % self.update_every != 0:
                return False
            for target, source in zip(self.network.parameters(), critic.parameters()):
                target.copy_(source)
        else:
            for target, source in zip(self.network.parameters(), critic.parameters()):
                target.lerp_(source, self.tau)
        for target, source in zip(self.network.buffers(), critic.buffers()):
            target.copy_(source)
        return True
