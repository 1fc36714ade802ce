"""Resuming an optimizer: its moments from the checkpoint, its settings from the config."""

from __future__ import annotations

from typing import Any, Mapping

import torch


def load_moments_keeping_settings(optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """`optimizer.load_state_dict(state)`, then this optimizer's own hyperparameters back.

    torch's load_state_dict also restores each group's lr, betas, eps, ... as they were saved,
    so a run resumed under a changed config (`dreamer.lr_model`, `lr_actor`, `lr_critic`,
    `model_adam_beta2`) would silently keep training with the old ones. The moments are what
    a resume needs; the settings are the config's.
    """
    settings = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, kept in zip(optimizer.param_groups, settings):
        group.update(kept)
