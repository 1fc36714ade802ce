"""RLlib DreamerV3 (torch, new API stack) on the run's tokenised env, for the `compare` stage.

Observation. RLlib's DreamerV3 takes Box (vector or image) or Discrete observations, not
our `MultiDiscrete([1024] * 48)` token arrays. `CodeVectorObservation` gives it each
step's tokens as the tokenizer's own quantised code vectors: token id -> its
(L2-normalised) codebook entry, 48 tokens x `tokenizer.code_dim` (4) = 192 floats in
[-1, 1], latent frame major, group minor. Why this and not something else:
- it carries exactly the information our agent gets (the token ids, through a fixed
  lookup table; distinct codes are distinct vectors), so the comparison is about the
  learning algorithm, not about who sees more of the audio;
- it is the tokenizer's own continuous representation (what its decoder reads), so
  nearby codes are nearby vectors, which an MLP encoder can use; normalised token ids
  (id / 1024) would impose an arbitrary order on the codes;
- it is small: one-hot tokens would be 48 x 1024 = 49 152 inputs, the raw log-mel
  chunk 1 280 (and more than our agent sees).

Episode returns. RLlib reports `episode_return_mean` smoothed over a window of episodes
(DreamerV3's default window is one episode), which is not what the other agents' curves
hold. `EpisodeReturnLog` records every finished episode's return in this process, and the
runner turns them into rows: `return_mean` = mean return of the episodes finished since the
previous row, the same definition as dreamer/metrics.jsonl. That needs the env runner in
this process, hence `num_env_runners=0` (also DreamerV3's own default).
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorObservationWrapper, VectorWrapper

from audiodream.config.schema import Config
from audiodream.tracking import Tracker

log = logging.getLogger(__name__)

METRICS_FILE = "dreamerv3_metrics.jsonl"
ENV_NAME = "audiodream_compare_dreamerv3_env"

# Finished-episode returns per log key, filled by EpisodeReturnLog in this process.
_EPISODE_RETURNS: dict[str, list[float]] = {}


class CodeVectorObservation(VectorObservationWrapper):
    """Tokens (n_envs, K) -> the tokenizer's code vectors (n_envs, K * code_dim), float32 in [-1, 1]."""

    def __init__(self, env: VectorEnv, codebook: np.ndarray) -> None:
        super().__init__(env)
        self.codebook = np.asarray(codebook, dtype=np.float32)
        tokens = env.single_observation_space
        if not isinstance(tokens, spaces.MultiDiscrete) or int(tokens.nvec.max()) > len(self.codebook):
            raise ValueError(f"CodeVectorObservation needs token observations from a codebook of {len(self.codebook)} codes, got {tokens}")
        size = int(np.prod(tokens.shape)) * self.codebook.shape[1]
        self.single_observation_space = spaces.Box(-1.0, 1.0, (size,), np.float32)
        self.observation_space = spaces.Box(-1.0, 1.0, (env.num_envs, size), np.float32)

    def observations(self, observations: Any) -> np.ndarray:
        tokens = np.asarray(observations, dtype=np.int64)
        return self.codebook[tokens].reshape(tokens.shape[0], -1)


class EpisodeReturnLog(VectorWrapper):
    """Appends the return of every finished episode to `_EPISODE_RETURNS[key]`.

    Works with Gymnasium's default next-step autoreset: the reset step that follows an
    episode's end brings reward 0 and starts the new sum at 0."""

    def __init__(self, env: VectorEnv, key: str) -> None:
        super().__init__(env)
        self.key = key
        self.sums = np.zeros(env.num_envs, dtype=np.float64)
        _EPISODE_RETURNS.setdefault(key, [])

    def reset(self, **kwargs: Any):
        self.sums[:] = 0.0
        return self.env.reset(**kwargs)

    def step(self, actions: Any):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        self.sums += np.asarray(rewards, dtype=np.float64)
        done = np.logical_or(terminated, truncated)
        if done.any():
            _EPISODE_RETURNS.setdefault(self.key, []).extend(float(r) for r in self.sums[done])
            self.sums[done] = 0.0
        return obs, rewards, terminated, truncated, info


def drain_returns(key: str) -> list[float]:
    returns = _EPISODE_RETURNS.get(key, [])
    _EPISODE_RETURNS[key] = []
    return returns


def make_code_vector_env(cfg: Config, tokenizer_path: str, run_dir: Optional[str], log_key: str, num_envs: int) -> VectorEnv:
    """The configured env, tokenised, as code vectors, with episode returns recorded."""
    from envs import make_vector_env
    from envs.tokenize import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_path, cfg.features)
    codebook = tokenizer.quantizer.normalized_codebook().detach().cpu().numpy()
    vector = make_vector_env(cfg, num_envs, tokenizer_path, run_dir)
    return EpisodeReturnLog(CodeVectorObservation(vector, codebook), log_key)


def _env_creator(cfg: Config, tokenizer_path: str, run_dir: Optional[str], log_key: str, env_config: Any) -> VectorEnv:
    num_envs = int((env_config or {}).get("num_envs", cfg.env.num_envs))
    return make_code_vector_env(cfg, tokenizer_path, run_dir, log_key, num_envs)


def register_env(cfg: Config, tokenizer_path: Path | str, run_dir: Path | str | None, log_key: str) -> str:
    from ray.tune.registry import register_env as ray_register_env

    ray_register_env(ENV_NAME, partial(_env_creator, cfg, str(tokenizer_path), None if run_dir is None else str(run_dir), log_key))
    return ENV_NAME


def paced_dreamerv3_class():
    """RLlib's DreamerV3 with its training-ratio pacing repaired (RLlib 2.60).

    DreamerV3.training_step samples while the lifetime ratio (replayed / sampled env steps)
    is at or above `training_ratio`, then trains. The ratio it reads divides a counter that
    is never written at the top level (NUM_ENV_STEPS_TRAINED_LIFETIME; the learner logs it
    under `learners/__all_modules__`), so it reads 0: every training step then samples one
    round and trains ceil(ratio x round / (B x T)) >= 1 updates, i.e. at least
    B x T / (rollout_fragment_length x num_envs) replayed per collected step whatever
    `training_ratio` says (32 instead of 8 for B x T = 512 and 16 envs). Here the ratio is
    computed from the updates the algorithm itself counts, so sampling goes on until the
    lifetime ratio drops below `training_ratio` and each training step does one update."""
    from ray.rllib.algorithms.dreamerv3 import DreamerV3
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME, NUM_GRAD_UPDATES_LIFETIME

    class PacedDreamerV3(DreamerV3):
        @property
        def training_ratio(self) -> float:
            updates = self.metrics.peek(NUM_GRAD_UPDATES_LIFETIME, default=0) or 0
            sampled = self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0) or 1e-4
            return updates * self.config.batch_size_B * self.config.batch_length_T / sampled

    return PacedDreamerV3


def build_dreamerv3(cfg: Config, env_name: str):
    """The RLlib DreamerV3 algorithm (torch, one local env runner and learner) for `env_name`."""
    from ray.rllib.algorithms.dreamerv3 import DreamerV3Config

    c = cfg.compare
    config = (
        DreamerV3Config(algo_class=paced_dreamerv3_class())
        .environment(env_name)
        .framework("torch")
        .env_runners(
            num_env_runners=0,  # sampling in this process: EpisodeReturnLog's returns are read here
            num_envs_per_env_runner=cfg.env.num_envs,
            rollout_fragment_length=1,  # sample one vector step at a time, then check the ratio
            # our creator returns a vector env: one batched tokenizer pass per step
            gym_env_vectorize_mode=gym.VectorizeMode.VECTOR_ENTRY_POINT,
        )
        .learners(num_learners=0)
        .training(
            model_size=c.dreamerv3_model_size,
            training_ratio=c.dreamerv3_training_ratio,
            batch_size_B=c.dreamerv3_batch_size,
            batch_length_T=c.dreamerv3_seq_len,
            horizon_H=c.dreamerv3_horizon,
        )
        .reporting(min_sample_timesteps_per_iteration=c.dreamerv3_log_every)
        .debugging(seed=cfg.run.seed)
    )
    return config.build_algo()


def _number(value: Any) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def iteration_row(
    result: dict[str, Any], returns: list[float], iteration: int, time_s: float, steps_before: int, seconds: float, batch_steps: int
) -> dict[str, Any]:
    """One dreamerv3_metrics.jsonl row: `return_mean` over the episodes finished in this iteration."""
    runners = result.get("env_runners", {})
    learner = result.get("learners", {}).get("default_policy", {})
    env_steps = int(result.get("num_env_steps_sampled_lifetime", runners.get("num_env_steps_sampled_lifetime", 0)))
    updates = int(result.get("num_grad_updates_lifetime", 0) or 0)
    return {
        "iteration": iteration,
        "env_steps": env_steps,
        "time_s": time_s,
        "return_mean": float(np.mean(returns)) if returns else None,
        "episodes": len(returns),
        "updates": updates,
        "training_ratio": updates * batch_steps / env_steps if env_steps else None,  # replayed / collected
        "loss_world_model": _number(learner.get("WORLD_MODEL_L_total")),
        "loss_actor": _number(learner.get("ACTOR_L_total")),
        "loss_critic": _number(learner.get("CRITIC_L_total")),
        "env_steps_per_s": (env_steps - steps_before) / max(seconds, 1e-9),
    }


def train_dreamerv3(cfg: Config, run_dir: Path, tracker: Tracker, tokenizer_path: Path, env_steps: int) -> list[dict[str, Any]]:
    """Train until `env_steps` env steps; one row per RLlib iteration in compare/dreamerv3_metrics.jsonl.

    `time_s` counts from just before the algorithm is built (its set-up is part of its wall time)."""
    from tqdm import tqdm

    out_dir = Path(run_dir) / "compare"
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / METRICS_FILE
    metrics_path.write_text("")
    log_key = f"dreamerv3-{uuid.uuid4().hex[:8]}"
    env_name = register_env(cfg, tokenizer_path, run_dir, log_key)
    threads = torch.get_num_threads()
    # One thread, like our learner (learner.num_cpus = 1): on a busy 2-core machine two torch
    # threads made RLlib's DreamerV3 update ~15x slower (28 s instead of 1.6 s), not faster.
    torch.set_num_threads(max(1, cfg.compare.dreamerv3_num_threads))
    started = time.perf_counter()
    algo = build_dreamerv3(cfg, env_name)
    rows: list[dict[str, Any]] = []
    done = 0
    batch_steps = cfg.compare.dreamerv3_batch_size * cfg.compare.dreamerv3_seq_len
    bar = tqdm(total=env_steps, desc="dreamerv3", unit="env step", disable=not cfg.run.progress, dynamic_ncols=True)
    try:
        while done < env_steps:
            tick = time.perf_counter()
            result = algo.train()
            now = time.perf_counter()
            row = iteration_row(result, drain_returns(log_key), len(rows) + 1, now - started, done, now - tick, batch_steps)
            rows.append(row)
            with metrics_path.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            tracker.log_metrics({f"compare.dreamerv3.{k}": v for k, v in row.items() if v is not None and k != "env_steps"}, step=row["env_steps"])
            bar.update(max(0, min(row["env_steps"], env_steps) - bar.n))
            ret = row["return_mean"]
            bar.set_postfix_str(f"return {ret:.2f}, {row['updates']} updates" if ret is not None else f"{row['updates']} updates", refresh=True)
            if row["env_steps"] <= done:
                raise RuntimeError(f"RLlib DreamerV3 collected no env steps in iteration {row['iteration']}")
            done = row["env_steps"]
    finally:
        bar.close()
        algo.stop()
        torch.set_num_threads(threads)
        _EPISODE_RETURNS.pop(log_key, None)
    return rows
