"""Returns of policies in fresh episodes of the configured env, and the env's exact references.

`return_mean` is the mean undiscounted return of the **greedy** actor (most probable
action) over exactly `eval.episodes` fresh episodes of `env.id` on the split the agent
was trained on (`env.split`), seeded apart from every training episode. Beside it:
the same actor on the **test** split (held-out voices / clips), a uniformly random
policy measured the same way, and, when the env offers them, its exact expected
returns (`optimal_return`, `random_return`, `blind_return` of Complete-v0) and the
share of the random -> optimal gap the agent closes. A run without an actor-critic
reports the random policy's return as `return_mean` and says so in `return_policy`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from audiodream.agent import AgentPolicy, RandomPolicy
from audiodream.config.schema import Config
from audiodream.evaluation.completion_prompts import with_split
from audiodream.evaluation.episodes import PlayedEpisodes, play_episodes

REFERENCE_METHODS: tuple[str, ...] = ("optimal_return", "random_return", "blind_return")
TEST_SPLIT_SEED_OFFSET = 7919


def play_in_env(
    cfg: Config,
    run_dir: Path,
    tokenizer_path: Path,
    policy: Any,
    n_episodes: int,
    seed: int,
    greedy: bool,
    split: str,
    desc: str,
) -> PlayedEpisodes:
    """Exactly `n_episodes` episodes of `policy` in a tokenised vector env of `split`."""
    import envs

    vector = envs.make_vector_env(with_split(cfg, split), min(cfg.env.num_envs, n_episodes), tokenizer_path, run_dir)
    try:
        return play_episodes(vector, policy, n_episodes, seed, greedy, cfg.run.progress, desc)
    finally:
        vector.close()


def reference_returns(cfg: Config, run_dir: Path) -> dict[str, float]:
    """The env's exact expected returns, for the methods it has (none for Listen-v0)."""
    import envs

    env = envs.make_env(cfg, None, run_dir)
    try:
        unwrapped = env.unwrapped
        return {name: float(getattr(unwrapped, name)()) for name in REFERENCE_METHODS if callable(getattr(unwrapped, name, None))}
    finally:
        env.close()


def gap_closed(achieved: float, random: float, optimal: float) -> Optional[float]:
    """(achieved - random) / (optimal - random); None when the env has no gap to close."""
    if not math.isfinite(achieved) or optimal - random <= 1e-12:
        return None
    return (achieved - random) / (optimal - random)


def return_metrics(cfg: Config, run_dir: Path, tokenizer_path: Path, agent: Optional[AgentPolicy], n_actions: int, seed: int) -> dict[str, Any]:
    n = cfg.eval.episodes
    random_policy = RandomPolicy(n_actions)
    policy = agent if agent is not None else random_policy
    played = play_in_env(cfg, run_dir, tokenizer_path, policy, n, seed, True, cfg.env.split, "greedy return")
    random_played = play_in_env(cfg, run_dir, tokenizer_path, random_policy, n, seed, False, cfg.env.split, "random return")
    metrics: dict[str, Any] = {
        "return_mean": played.return_mean,
        "return_std": float(_std(played.returns)),
        "return_episodes": len(played.returns),
        "return_policy": "greedy actor" if agent is not None else "random (this run has no actor-critic)",
        "return_split": cfg.env.split,
        "return_random_policy_measured": random_played.return_mean,
    }
    if agent is not None and cfg.env.split != "test":
        # Its own seed: with the train call's seed both splits would get the same prompts, and
        # rewards depend only on the syllables, so the two figures could not differ by chance.
        held_out = play_in_env(cfg, run_dir, tokenizer_path, agent, n, seed + TEST_SPLIT_SEED_OFFSET, True, "test", "greedy return (test)")
        metrics["return_mean_test_split"] = held_out.return_mean
    references = reference_returns(cfg, run_dir)
    metrics.update(references)
    if "optimal_return" in references and "random_return" in references:
        metrics["return_gap_closed"] = gap_closed(played.return_mean, references["random_return"], references["optimal_return"])
    return metrics


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
