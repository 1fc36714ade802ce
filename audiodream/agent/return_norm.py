"""Return normalisation by percentiles (DreamerV3).

Advantages are divided by max(1, S), S the running 5th-95th percentile range of the
λ-returns. Large returns are scaled down to order 1, so one entropy coefficient
suits rewards of any magnitude; small returns are left alone (the floor of 1), so
near-zero rewards are not blown up into noise, as dividing by a std would do.
"""

from __future__ import annotations

import torch
from torch import nn


class ReturnNormalizer(nn.Module):
    def __init__(self, low_percentile: float = 5.0, high_percentile: float = 95.0, decay: float = 0.99, floor: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= low_percentile < high_percentile <= 100.0:
            raise ValueError(f"ReturnNormalizer: need 0 <= low_percentile < high_percentile <= 100, got {low_percentile}, {high_percentile}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ReturnNormalizer: decay must lie in [0, 1), got {decay}")
        self.quantiles = (low_percentile / 100.0, high_percentile / 100.0)
        self.decay = float(decay)
        self.floor = float(floor)
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, returns: torch.Tensor) -> None:
        """Fold a batch of returns into the running percentiles (the first batch sets them)."""
        values = returns.detach().float().flatten()
        if values.numel() == 0:
            raise ValueError("ReturnNormalizer.update: got no returns")
        low, high = torch.quantile(values, torch.tensor(self.quantiles, device=values.device))
        if not bool(self.initialised):
            self.low.copy_(low)
            self.high.copy_(high)
            self.initialised.fill_(True)
        else:
            self.low.lerp_(low, 1.0 - self.decay)
            self.high.lerp_(high, 1.0 - self.decay)

    @property
    def scale(self) -> torch.Tensor:
        return torch.clamp(self.high - self.low, min=self.floor)

    def forward(self, advantages: torch.Tensor) -> torch.Tensor:
        return advantages / self.scale
