"""The learner's models: world model and (optionally) actor-critic, updated together.

One `update` is DreamerV2's training step: a world-model update on a replayed B x T
batch, then an actor-critic update in imagination starting from that batch's (detached)
posterior states, with the real terminal flags as the starts' continuation.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional

import numpy as np
import torch

from audiodream.agent import ActorCriticTrainer
from audiodream.config.schema import DreamerConfig
from audiodream.worldmodel import WorldModelTrainer

TRAINERS_FORMAT = 1


class DreamerTrainers:
    def __init__(
        self, cfg: DreamerConfig, tokens_per_step: int, vocab_size: int, n_actions: int, device: torch.device | str, codebook: Optional[torch.Tensor] = None
    ) -> None:
        """`codebook`: the tokenizer's (V, code_dim) code vectors (needed when `cfg.codebook_tied`)."""
        self.world_model = WorldModelTrainer.from_config(cfg, tokens_per_step, vocab_size, n_actions, device, codebook)
        self.actor_critic: Optional[ActorCriticTrainer] = None
        if cfg.actor_critic:
            self.actor_critic = ActorCriticTrainer(cfg, self.world_model.spec.feature_dim, n_actions, device, max_starts=cfg.imag_starts)

    def update(self, batch: Mapping[str, np.ndarray], generator: Optional[torch.Generator]) -> tuple[dict[str, float], dict[str, float]]:
        phases: dict[str, float] = {}
        started = time.perf_counter()
        result = self.world_model.update(batch)
        metrics = dict(result.metrics)
        phases["train_model"] = time.perf_counter() - started
        if self.actor_critic is not None:
            started = time.perf_counter()
            continues = 1.0 - torch.as_tensor(np.asarray(batch["terminals"]), dtype=torch.float32)
            metrics.update(self.actor_critic.train_step(self.world_model.model, result.posterior.states, generator, start_continues=continues))
            phases["train_ac"] = time.perf_counter() - started
        return metrics, phases

    def policy_weights(self) -> Optional[dict[str, Any]]:
        """What workers build an AgentPolicy from; None without an actor-critic (workers stay random)."""
        if self.actor_critic is None:
            return None
        return {"spec": self.world_model.spec.to_dict(), **self.actor_critic.policy_weights(self.world_model.model)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "trainers_format": TRAINERS_FORMAT,
            "world_model": self.world_model.state_dict(),
            "actor_critic": None if self.actor_critic is None else self.actor_critic.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("trainers_format") != TRAINERS_FORMAT:
            raise ValueError(f"dreamer checkpoint: trainers format {state.get('trainers_format')!r}, expected {TRAINERS_FORMAT}")
        self.world_model.load_state_dict(state["world_model"])
        if self.actor_critic is not None:
            if state.get("actor_critic") is None:
                raise ValueError("dreamer checkpoint: has no actor-critic, but dreamer.actor_critic is on")
            self.actor_critic.load_state_dict(state["actor_critic"])
