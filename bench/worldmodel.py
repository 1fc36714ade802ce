"""World-model learner throughput (and, optionally, prediction quality on the toy source).

    python bench/worldmodel.py --out bench/out/worldmodel.json [--toy-train-s 360]

Writes JSON: `updates_per_s` and `tokens_per_s` (tokens consumed by the learner:
updates/s x B x T x K) for the `default` preset on CPU at B=16, T=64; `listen_options`
with the same for the world-model options `listen_synthetic` turns on (codebook-tied, 4
mixture components, kl_balance 1, the weight average, scheduled sampling) at its 24 tokens
a step (tokenizer groups 6 x code_dim 8), and `listen_options_one_component` for those
with DreamerV2's one-component prior (the config in sessions 14-16);
`torch_gru` for the default preset with nn.GRUCell instead of the LayerNorm cell
(`dreamer.gru`); `cuda_large`
with the same for the `large` preset when CUDA is present; RLlib's torch DreamerV3
learner update on a comparable problem (`rllib_dreamerv3_updates_per_s`, or
`rllib_dreamerv3_error` with the reason it could not be measured); and, with
--toy-train-s, the open-loop CE table of the default model trained that long on the
toy token source (B=16, T=32) against the unigram/bigram/repeat baselines.
The machine may be shared: `load_avg_1m` is recorded next to each figure. Runs with one
torch thread by default, as the learner actor does (Ray sets OMP_NUM_THREADS=num_cpus).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiodream.config.schema import DreamerConfig, TokenizerConfig  # noqa: E402
from audiodream.worldmodel import WorldModelTrainer, evaluate_world_model  # noqa: E402
from audiodream.worldmodel.toy_source import ToySequenceSampler, ToyTokenSource, oracle_ce  # noqa: E402

K, V, N_ACTIONS = 48, 1024, 24


def load_avg() -> float:
    return float(os.getloadavg()[0])


def toy_data(seed: int, tokens_per_step: int = K) -> tuple[ToyTokenSource, list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    source = ToyTokenSource(tokens_per_step=tokens_per_step, vocab_size=V, n_actions=N_ACTIONS, seed=seed)
    return source, source.episodes(600, 16, 40, seed=seed + 1), source.episodes(64, 24, 40, seed=seed + 2)


# The world-model options and token shape of listen_synthetic (README "World model"): same sizes.
LISTEN_OPTIONS: dict[str, Any] = {
    "codebook_tied": True,
    "prior_sample_prob": 0.15,
    "model_ema_power": 1.0,
    "model_ema_start": 500,
    "model_adam_beta2": 0.99,
    "kl_balance": 1.0,
    "prior_components": 4,
}
LISTEN_TOKENS = {"tokens_per_step": 24, "code_dim": 8}


def measure_throughput(
    preset: str,
    device: str,
    batch_size: int,
    seq_len: int,
    updates: int,
    warmup: int,
    tokens_per_step: int = K,
    code_dim: int = TokenizerConfig().code_dim,
    **options: Any,
) -> dict[str, Any]:
    """Updates/s of one world-model trainer; `options`: extra DreamerConfig keys (a codebook-tied
    model gets a random unit codebook of `code_dim`)."""
    _, train, _ = toy_data(0, tokens_per_step)
    sampler = ToySequenceSampler(train, seed=0)
    codebook = torch.nn.functional.normalize(torch.randn(V, code_dim, generator=torch.Generator().manual_seed(0)), dim=-1)
    trainer = WorldModelTrainer.from_config(DreamerConfig(preset=preset, **options), tokens_per_step, V, N_ACTIONS, device=device, codebook=codebook)
    batches = [sampler.sample(batch_size, seq_len) for _ in range(4)]
    for i in range(warmup):
        trainer.train_step(batches[i % len(batches)])
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(updates):
        trainer.train_step(batches[i % len(batches)])
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    ups = updates / seconds
    return {
        "updates_per_s": ups,
        "tokens_per_s": ups * batch_size * seq_len * tokens_per_step,
        "tokens_per_step": tokens_per_step,
        "env_steps_per_s": ups * batch_size * seq_len,
        "preset": preset,
        "device": str(trainer.device),
        "batch_size": batch_size,
        "seq_len": seq_len,
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "timed_updates": updates,
        "options": options,
        "load_avg_1m": load_avg(),
    }


def measure_rllib_dreamerv3(batch_size: int, seq_len: int, updates: int, warmup: int) -> dict[str, Any]:
    """RLlib's torch DreamerV3 learner (model_size XS, the smallest near our default)
    on a Box observation of one flattened log-mel chunk (RLlib cannot take our tokens)
    and 24 discrete actions. Its update also trains the actor-critic in imagination
    (horizon 15), so it does more work per update than our world-model-only update."""
    try:
        import gymnasium as gym
        from ray.rllib.algorithms.dreamerv3 import DreamerV3Config
        from ray.rllib.policy.sample_batch import SampleBatch
        from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME
    except Exception as err:  # noqa: BLE001 - any import failure is the reported reason
        return {"rllib_dreamerv3_error": f"import failed: {type(err).__name__}: {err}"}
    obs_space = gym.spaces.Box(-10.0, 10.0, (80 * 16,), np.float32)
    act_space = gym.spaces.Discrete(N_ACTIONS)
    try:
        config = (
            DreamerV3Config()
            .framework("torch")
            .environment(observation_space=obs_space, action_space=act_space)
            .learners(num_learners=0, num_gpus_per_learner=1 if torch.cuda.is_available() else 0)
            .training(model_size="XS", training_ratio=64, batch_size_B=batch_size, batch_length_T=seq_len, horizon_H=15)
        )
        learner = config.build_learner(spaces={"default_policy": (obs_space, act_space)})
        rng = np.random.default_rng(0)
        actions = rng.integers(0, N_ACTIONS, size=(batch_size, seq_len))
        is_first = np.zeros((batch_size, seq_len), dtype=bool)
        is_first[:, 0] = True
        sample = {
            "obs": rng.standard_normal((batch_size, seq_len, 80 * 16)).astype(np.float32),
            "actions": np.eye(N_ACTIONS, dtype=np.float32)[actions],
            "actions_ints": actions,
            "rewards": rng.random((batch_size, seq_len)).astype(np.float32),
            "is_first": is_first,
            "is_last": np.zeros((batch_size, seq_len), dtype=bool),
            "is_terminated": np.zeros((batch_size, seq_len), dtype=bool),
        }
        batch = SampleBatch(sample).as_multi_agent()
        timesteps = {NUM_ENV_STEPS_SAMPLED_LIFETIME: batch_size * seq_len}
        for _ in range(warmup):
            learner.update(batch=batch, timesteps=timesteps)
        start = time.perf_counter()
        for _ in range(updates):
            learner.update(batch=batch, timesteps=timesteps)
        seconds = time.perf_counter() - start
    except Exception as err:  # noqa: BLE001 - the failure is the result we report
        return {"rllib_dreamerv3_error": f"{type(err).__name__}: {err}"[:500]}
    parameters = sum(p.numel() for p in learner.module["default_policy"].parameters())
    return {
        "rllib_dreamerv3_updates_per_s": updates / seconds,
        "rllib_dreamerv3_setup": f"RLlib DreamerV3 torch learner, model_size XS ({parameters} parameters), B={batch_size} T={seq_len}, Box(1280) obs, 24 actions, world model + actor-critic per update",
        "rllib_dreamerv3_load_avg_1m": load_avg(),
    }


def train_on_toy(seconds: float, n_samples: int) -> dict[str, Any]:
    torch.manual_seed(0)
    source, train, test = toy_data(0)
    sampler = ToySequenceSampler(train, seed=0)
    trainer = WorldModelTrainer.from_config(DreamerConfig(), K, V, N_ACTIONS)
    start = time.perf_counter()
    metrics: dict[str, float] = {}
    while time.perf_counter() - start < seconds:
        metrics = trainer.train_step(sampler.sample(16, 32))
    trained_s = time.perf_counter() - start
    eval_start = time.perf_counter()
    result = evaluate_world_model(trainer.model, train, test, context=8, n_samples=n_samples)
    best = min(result["ce_baselines"][name]["1"] for name in result["ce_baselines"])
    return {
        "toy_train_s": trained_s,
        "toy_updates": trainer.step,
        "toy_updates_per_s": trainer.step / trained_s,
        "toy_final_metrics": metrics,
        "toy_eval": result,
        "toy_oracle_ce": oracle_ce(source, test, 8, [int(h) for h in result["ce_by_horizon"]]),
        "toy_eval_s": time.perf_counter() - eval_start,
        "toy_h1_vs_best_baseline": result["ce_by_horizon"]["1"] / best,
        "toy_beats_every_baseline_everywhere": all(
            result["ce_by_horizon"][h] < table[h] for table in result["ce_baselines"].values() for h in result["ce_by_horizon"]
        ),
        "toy_load_avg_1m": load_avg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="JSON file to write")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: what a Ray learner actor with num_cpus=1 gets; 0: torch's choice)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--updates", type=int, default=20, help="timed updates per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--skip-rllib", action="store_true", help="do not measure RLlib DreamerV3")
    parser.add_argument("--toy-train-s", type=float, default=0.0, help="also train on the toy source this long and report CE (0: skip)")
    parser.add_argument("--toy-samples", type=int, default=64, help="imagined rollouts per episode in the toy CE evaluation")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    result.update(measure_throughput("default", "cpu", args.batch_size, args.seq_len, args.updates, args.warmup))
    result["listen_options"] = measure_throughput("default", "cpu", args.batch_size, args.seq_len, args.updates, args.warmup, **LISTEN_TOKENS, **LISTEN_OPTIONS)
    result["listen_options_one_component"] = measure_throughput(
        "default", "cpu", args.batch_size, args.seq_len, args.updates, args.warmup, **LISTEN_TOKENS, **{**LISTEN_OPTIONS, "prior_components": 1}
    )
    result["torch_gru"] = measure_throughput("default", "cpu", args.batch_size, args.seq_len, args.updates, args.warmup, gru="torch")
    if torch.cuda.is_available():
        result["cuda_large"] = measure_throughput("large", "cuda", args.batch_size, args.seq_len, args.updates, args.warmup)
    if not args.skip_rllib:
        result.update(measure_rllib_dreamerv3(args.batch_size, args.seq_len, max(3, args.updates // 4), 1))
    if args.toy_train_s > 0:
        result.update(train_on_toy(args.toy_train_s, args.toy_samples))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
