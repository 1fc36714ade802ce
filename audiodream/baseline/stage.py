"""Stage `baseline`: RLlib PPO on the tokenised env, the model-free reference.

The world-model agent must beat this in sample efficiency, so the stage logs return
against env steps: one row per PPO iteration in run.dir/baseline/metrics.jsonl (and the
same numbers in MLflow, prefixed `baseline.`, at step = env steps), then a summary in
run.dir/baseline/summary.json with the env's exact reference returns when it has them
(Complete-v0: optimal, random, blind; Echo-v0: optimal, random).

Envs are built inside RLlib's env runners by `envs.make_vector_env` (the path every other
consumer uses, `env.num_envs` envs per runner, one batched tokenizer call per step), from
the resolved config, with the run's tokenizer checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from audiodream.config.schema import Config
from audiodream.tracking import Tracker

log = logging.getLogger(__name__)

SUPPORTED_ALGOS = ("ppo",)


def tokenizer_checkpoint(run_dir: Path) -> Path:
    from audiodream.tokenizer.stage import require_tokenizer_checkpoint

    return require_tokenizer_checkpoint(run_dir, "the baseline (it learns from tokens)", "data, tokenizer, baseline")


def build_ppo(cfg: Config, env_name: str):
    """The RLlib PPO algorithm (new API stack, torch) for the registered env `env_name`."""
    import gymnasium as gym
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from audiodream.baseline.rl_module import TokenRecurrentPPOModule

    b = cfg.baseline
    config = (
        PPOConfig()
        .environment(env_name)
        .framework("torch")
        .env_runners(
            num_env_runners=b.num_env_runners,
            num_envs_per_env_runner=cfg.env.num_envs,
            num_cpus_per_env_runner=1,
            # our creator returns envs.make_vector_env: one batched tokenizer pass per step
            gym_env_vectorize_mode=gym.VectorizeMode.VECTOR_ENTRY_POINT,
        )
        .learners(num_learners=0)
        .training(
            train_batch_size_per_learner=b.train_batch_size,
            minibatch_size=b.minibatch_size,
            num_epochs=b.num_epochs,
            lr=b.lr,
            gamma=b.gamma,
            entropy_coeff=b.entropy_coeff,
        )
        .rl_module(
            rl_module_spec=RLModuleSpec(
                module_class=TokenRecurrentPPOModule,
                model_config={"hidden": b.hidden, "embed_dim": b.embed_dim, "max_seq_len": b.max_seq_len},
            )
        )
        .reporting(metrics_num_episodes_for_smoothing=b.return_window)
        .debugging(seed=cfg.run.seed)
    )
    return config.build_algo()


def iteration_row(result: dict[str, Any], iteration: int, elapsed_s: float, steps_before: int, seconds: float) -> dict[str, Any]:
    """One metrics.jsonl row from an RLlib result dict (new API stack key layout)."""
    runners = result.get("env_runners", {})
    learner = result.get("learners", {}).get("default_policy", {})
    env_steps = int(result.get("num_env_steps_sampled_lifetime", runners.get("num_env_steps_sampled_lifetime", 0)))
    row = {
        "iteration": iteration,
        "env_steps": env_steps,
        "return_mean": runners.get("episode_return_mean"),
        "episode_len_mean": runners.get("episode_len_mean"),
        "episodes": runners.get("num_episodes"),
        "policy_entropy": learner.get("entropy"),
        "loss_policy": learner.get("policy_loss"),
        "loss_value": learner.get("vf_loss"),
        "env_steps_per_s": (env_steps - steps_before) / max(seconds, 1e-9),
        "time_s": elapsed_s,
    }
    return {k: (float(v) if isinstance(v, (int, float)) and k not in ("iteration", "env_steps") else v) for k, v in row.items()}


def reference_returns(cfg: Config, run_dir: Path) -> dict[str, float]:
    """The env's exact returns (optimal_return(), random_return(), blind_return()) where defined."""
    from envs import make_env

    env = make_env(cfg, None, run_dir)
    try:
        refs = {}
        for name in ("optimal_return", "random_return", "blind_return"):
            method = getattr(env.unwrapped, name, None)
            if callable(method):
                refs[name] = float(method())
        return refs
    finally:
        env.close()


def train_baseline(cfg: Config, run_dir: Path, tracker: Tracker) -> list[dict[str, Any]]:
    from envs import register_configured_env

    if cfg.baseline.algo not in SUPPORTED_ALGOS:
        raise ValueError(f"config key 'baseline.algo': {cfg.baseline.algo!r} is not supported (supported: {SUPPORTED_ALGOS})")
    out_dir = Path(run_dir) / "baseline"
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.jsonl"
    metrics_path.write_text("")
    env_name = register_configured_env(cfg, tokenizer_checkpoint(run_dir), run_dir)
    started = time.perf_counter()  # time_s includes building the algorithm (its env runner actor), as the other agents' do
    algo = build_ppo(cfg, env_name)
    rows: list[dict[str, Any]] = []
    env_steps = 0
    try:
        while env_steps < cfg.baseline.env_steps:
            tick = time.perf_counter()
            result = algo.train()
            row = iteration_row(result, len(rows) + 1, time.perf_counter() - started, env_steps, time.perf_counter() - tick)
            env_steps = row["env_steps"]
            rows.append(row)
            with metrics_path.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            tracker.log_metrics({f"baseline.{k}": v for k, v in row.items() if v is not None}, step=env_steps)
            log.info(
                "baseline: iteration %d, %d env steps, return_mean %s, %.0f env steps/s",
                row["iteration"], env_steps, row["return_mean"], row["env_steps_per_s"],
            )
    finally:
        algo.stop()
    return rows


def baseline_stage(cfg: Config, run_dir: Path, tracker: Tracker) -> None:
    """Stage entry point (see audiodream.pipeline.stages)."""
    from audiodream.distributed.cluster import connect, disconnect

    cluster = connect(cfg.ray, log_to_driver=False)
    try:
        rows = train_baseline(cfg, Path(run_dir), tracker)
    finally:
        disconnect(cluster)
    summary = {
        "algo": cfg.baseline.algo,
        "env_id": cfg.env.id,
        "env_steps": rows[-1]["env_steps"] if rows else 0,
        "return_mean": rows[-1]["return_mean"] if rows else None,
        "iterations": len(rows),
        **reference_returns(cfg, Path(run_dir)),
    }
    summary_path = Path(run_dir) / "baseline" / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2))
    tracker.log_metrics({f"baseline.final.{k}": v for k, v in summary.items() if isinstance(v, (int, float))}, step=summary["env_steps"])
    tracker.log_artifacts([summary_path, Path(run_dir) / "baseline" / "metrics.jsonl"], "baseline")
    log.info("baseline: %s", summary)
