"""What the distributed layer needs from the learning side, as interfaces.

The workers, the replay and the learner never import the env, tokenizer, world model
or agent packages themselves: they get a `DreamerParts` object (picklable, shipped to
every actor) that builds those pieces. audiodream/dreamer/parts.py is the real one;
tests and benchmarks may pass smaller real ones.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class ActingPolicy(Protocol):
    """Acts for N sub-envs at once: one forward per vector step."""

    def initial_state(self, n: int) -> Any: ...

    def act(
        self,
        tokens: np.ndarray,
        prev_actions: np.ndarray,
        is_first: np.ndarray,
        state: Any,
        greedy: bool = False,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[np.ndarray, Any]: ...


class Trainers(Protocol):
    """The learner's models: one `update` is one world-model (+ actor-critic) update."""

    def update(self, batch: Mapping[str, np.ndarray], generator: Optional[torch.Generator]) -> tuple[dict[str, float], dict[str, float]]:
        """Train on one batch; returns (metrics, seconds per phase)."""
        ...

    def policy_weights(self) -> Optional[dict[str, Any]]:
        """CPU tensors the workers' policy needs, or None while there is no policy to publish."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class DreamerParts(Protocol):
    tokens_per_step: int
    vocab_size: int
    n_actions: int

    def make_vector_env(self, num_envs: int, seed: int) -> Any:
        """A Gymnasium vector env whose observations are (num_envs, K) token ids (NEXT_STEP autoreset)."""
        ...

    def random_policy(self, seed: int) -> ActingPolicy: ...

    def policy_from_weights(self, weights: Mapping[str, Any], previous: Optional[ActingPolicy]) -> ActingPolicy:
        """A policy acting with `weights` (may update and return `previous`)."""
        ...

    def make_trainers(self, device: torch.device) -> Trainers: ...
