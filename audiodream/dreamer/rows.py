"""One metrics row of dreamer/metrics.jsonl, assembled from what the actors report.

Keys (DESIGN.md): step, env_steps, loss_model, loss_kl, loss_tokens, loss_actor,
loss_critic, policy_entropy, return_mean, env_steps_per_s, updates_per_s; plus
replay_steps, policy_lag (how many learner updates old the weights are that the
least up-to-date worker last acted with; null while the workers still act randomly),
episodes, worker_restarts, the learner's per-update phase timers timer_<phase>_s
(wait, sample, train_model, train_ac, publish) and the workers' per-vector-step ones
worker_timer_<phase>_s (policy, env, push, weights, throttle), and every other
learner metric (ce_tokens, loss_reward, imagined_return, ...). The driver adds
`time_s`: seconds of training since the Ray cluster was up (actor start-up included),
carried on from the last kept row when a run resumes.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from audiodream.distributed.coordinator import NO_WEIGHTS, DrainedReports

REQUIRED_KEYS: tuple[str, ...] = (
    "step",
    "env_steps",
    "loss_model",
    "loss_kl",
    "loss_tokens",
    "loss_actor",
    "loss_critic",
    "policy_entropy",
    "return_mean",
    "env_steps_per_s",
    "updates_per_s",
    "replay_steps",
    "policy_lag",
)
LEARNER_BOOKKEEPING = ("step", "updates", "env_steps_seen", "seconds")


def policy_lag(learner_step: int, versions: Mapping[int, int]) -> Optional[int]:
    acting = [v for v in versions.values() if v != NO_WEIGHTS]
    if not acting:
        return None
    return max(0, learner_step - min(acting))


def _mean(values: list[float]) -> Optional[float]:
    return float(sum(values) / len(values)) if values else None


def build_row(
    step: int,
    learner: Mapping[str, float],
    drained: DrainedReports,
    replay_stats: Mapping[str, Any],
    updates_since: int,
    seconds_since: float,
) -> dict[str, Any]:
    row: dict[str, Any] = {key: None for key in REQUIRED_KEYS}
    row.update({k: float(v) for k, v in learner.items() if k not in LEARNER_BOOKKEEPING})
    vector_steps = drained.timers.get("vector_steps", 0.0)
    worker_timers = {
        f"worker_timer_{name}_s": seconds / vector_steps for name, seconds in drained.timers.items() if name != "vector_steps" and vector_steps > 0
    }
    row.update(
        step=int(step),
        env_steps=int(replay_stats["env_steps"]),
        replay_steps=int(replay_stats["replay_steps"]),
        return_mean=_mean(drained.episode_returns),
        episode_length_mean=_mean([float(n) for n in drained.episode_lengths]),
        episodes=len(drained.episode_returns),
        env_steps_per_s=drained.steps_since / drained.seconds_since if drained.seconds_since > 0 else None,
        updates_per_s=updates_since / seconds_since if seconds_since > 0 else None,
        policy_lag=policy_lag(step, drained.policy_versions),
        worker_restarts=int(sum(drained.restarts.values())),
        **worker_timers,
    )
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
