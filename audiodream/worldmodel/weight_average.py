"""The world model's averaged weights, which eval and generate use: a fixed-decay EMA, or
the power-function EMA of EDM2 (Karras et al. 2024, "Analyzing and Improving the Training
Dynamics of Diffusion Models", section 3.1).

Why a power function: a fixed decay averages a fixed number of updates (~1 / (1 - decay)),
however many a run affords. The 2-core machines this project runs on train 900 to 3000
updates of `listen_synthetic` before its deadline (sessions 26-29), so 0.99 averages a ninth
of a slow run and a thirtieth of a fast one. With decay (1 - 1/t)^(power + 1) when the t-th
weights join, the average weighs the weights of update s in proportion to about s^power: it spans the same
fraction of every run (its centre of mass at (power + 1) / (power + 2) of the updates so far;
power 0 is the plain mean of all of them), whatever the machine's speed.

Why a start (SWA's `swa_start`): the first few hundred updates are far from where training
settles (a listen_synthetic run's average at 500 updates scored completion TV 0.435, at 1000
0.278), so a wide average that includes them is pulled back toward them, most of all in a short
run. With `start` S, the weights of updates up to S do not enter the average (until then it
is a copy of the live weights) and update s > S weighs about (s - S)^power.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def power_ema_decay(averaged: int, power: float, start: int = 0) -> float:
    """The decay applied when update `averaged + 1`'s weights join: 0 (a copy) up to update
    `start + 1`, then (1 - 1/k)^(power + 1) for the k-th weights past the start."""
    joining = max(averaged + 1 - start, 1)
    return (1.0 - 1.0 / joining) ** (power + 1.0)


# AveragedModel's multi_avg_fn: (averaged params, current params, how many weights the average holds) -> None, in place.
MultiAvgFn = Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor], "torch.Tensor | int"], None]


def power_ema_multi_avg_fn(power: float, start: int = 0) -> MultiAvgFn:
    @torch.no_grad()
    def update(averaged_params: Sequence[torch.Tensor], current_params: Sequence[torch.Tensor], averaged: torch.Tensor | int) -> None:
        weight = 1.0 - power_ema_decay(int(averaged), power, start)
        torch._foreach_lerp_(list(averaged_params), list(current_params), weight)

    return update


def averaged_model(model: torch.nn.Module, ema_decay: Optional[float], ema_power: Optional[float], ema_start: int = 0) -> Optional[AveragedModel]:
    """The average of `model`'s weights the config asks for (None: none); it starts as a copy
    of the weights at the first update (AveragedModel). `ema_start` applies to the power average only."""
    if ema_decay is not None and ema_power is not None:
        raise ValueError(f"weight average: a decay ({ema_decay}) or a power ({ema_power}), not both")
    if ema_start < 0 or (ema_start > 0 and ema_power is None):
        raise ValueError(f"weight average: a start ({ema_start}) must be >= 0 and needs a power")
    if ema_decay is not None:
        return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay))
    if ema_power is not None:
        return AveragedModel(model, multi_avg_fn=power_ema_multi_avg_fn(ema_power, ema_start))
    return None
