"""Env throughput: env steps per second, raw and tokenised, one env and a vector env.

Random actions, resets included, after a warm-up that also fills the per-process voice
bank and clip pool (the steady state a long-running env worker is in). A vector step of
N envs counts as N env steps. The tokenised vector env encodes all chunks of a step in
one batched tokenizer call. Without --tokenizer an untrained tokenizer with the
config's architecture is used: the same cost per chunk as a trained one.

    python bench/envs.py --out bench/out/envs.json [--env-id audiodream/Complete-v0] [--seconds 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402
from audiodream.config import load_config  # noqa: E402
from audiodream.config.schema import Config  # noqa: E402
from audiodream.tokenizer.model import Tokenizer  # noqa: E402


def timed(step: Callable[[], int], seconds: float, warmup_steps: int) -> float:
    """Env steps per second of `step` (which returns the env steps it took) over ~`seconds`."""
    done = 0
    while done < warmup_steps:
        done += step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += step()
    return steps / (time.perf_counter() - start)


def single_env_rate(cfg: Config, tokenizer: Path | None, seconds: float, warmup: int) -> float:
    env = envs.make_env(cfg, tokenizer)
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> int:
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            env.reset()
        return 1

    return timed(step, seconds, warmup)


def vector_env_rate(cfg: Config, n: int, tokenizer: Path | None, seconds: float, warmup: int) -> float:
    vector = envs.make_vector_env(cfg, n, tokenizer)
    vector.reset(seed=0)
    rng = np.random.default_rng(0)
    n_actions = int(vector.single_action_space.n)

    def step() -> int:
        vector.step(rng.integers(n_actions, size=n))  # autoreset: next step resets finished envs
        return n

    return timed(step, seconds, warmup)


def measure(cfg: Config, tokenizer: Path, n_envs: int, seconds: float, warmup: int) -> dict[str, float]:
    return {
        "steps_per_s": single_env_rate(cfg, None, seconds, warmup),
        "tokenized_steps_per_s": single_env_rate(cfg, tokenizer, seconds, warmup // 4),
        "vector_steps_per_s": vector_env_rate(cfg, n_envs, None, seconds, warmup),
        "tokenized_vector_steps_per_s": vector_env_rate(cfg, n_envs, tokenizer, seconds, warmup // 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--env-id", action="append", help="env ids to measure (default: the three audiodream envs)")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer checkpoint (default: untrained, config architecture)")
    parser.add_argument("--num-envs", type=int, default=8, help="envs in the vector env")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    parser.add_argument("--warmup", type=int, default=4000, help="env steps before measuring (raw; tokenised: a quarter)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (env workers use 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    base = load_config([])
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = args.tokenizer
        if tokenizer is None:
            torch.manual_seed(0)
            model = Tokenizer.from_config(base.tokenizer, base.features, base.env.chunk_frames)
            tokenizer = model.save(Path(tmp) / "checkpoint.pt")
        results: dict[str, Any] = {}
        for env_id in args.env_id or list(envs.AUDIODREAM_IDS):
            cfg = copy.deepcopy(base)
            cfg.env.id = env_id
            results[env_id] = {k: round(v, 1) for k, v in measure(cfg, tokenizer, args.num_envs, args.seconds, args.warmup).items()}
            print(env_id, results[env_id], flush=True)
    default_id = base.env.id if base.env.id in results else next(iter(results))
    report = {
        **results[default_id],  # headline figures: the default env (env.id of defaults.yaml)
        "env_id": default_id,
        "num_envs": args.num_envs,
        "by_env": results,
        "tokenizer": str(args.tokenizer) if args.tokenizer else "untrained, architecture of configs/defaults.yaml",
        "torch_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("steps_per_s", "vector_steps_per_s", "tokenized_vector_steps_per_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
