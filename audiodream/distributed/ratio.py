"""The train ratio: replayed steps per collected env step, kept from both sides.

With U learner updates of B x T replayed steps and E collected env steps, the run
keeps U * B * T / (E - prefill) close to `train_ratio`. The learner waits when it is
ahead (more updates than the data allows); the workers wait when they are ahead (a
margin more data than the learner can use), which on a small machine gives the CPU
to the learner instead of filling the buffer with steps nobody trains on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainRatio:
    batch_size: int
    seq_len: int
    train_ratio: float
    prefill_steps: int
    collect_margin_steps: int = 0  # env steps workers may run ahead of what the learner needs

    def __post_init__(self) -> None:
        if self.train_ratio <= 0:
            raise ValueError(f"dreamer.train_ratio: must be > 0, got {self.train_ratio}")

    @property
    def env_steps_per_update(self) -> float:
        return self.batch_size * self.seq_len / self.train_ratio

    def training_started(self, env_steps: int) -> bool:
        return env_steps >= max(self.prefill_steps, self.seq_len)

    def updates_allowed(self, env_steps: int) -> int:
        """Updates the learner may have done in total once `env_steps` are in the replay."""
        if not self.training_started(env_steps):
            return 0
        return 1 + int(math.floor((env_steps - self.prefill_steps) / self.env_steps_per_update))

    def env_steps_allowed(self, updates: int) -> int:
        """Env steps the workers may have collected in total when the learner has done `updates`."""
        needed = self.prefill_steps + int(math.ceil(updates * self.env_steps_per_update))
        return max(needed, self.prefill_steps) + self.collect_margin_steps
