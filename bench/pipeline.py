"""Throughput of the distributed pipeline on a local Ray cluster.

- env_steps_per_s_1 / env_steps_per_s_2: env steps per second that 1 and 2 EnvWorker
  actors collect into the ReplayBuffer actor, with tokenisation (one batched tokenizer
  forward per vector step) and inference of the agent's policy (world-model posterior
  + actor, one batched forward per vector step; weights published through the object
  store as in a run). Timed from the first step to the last chunk stored, after the
  actors are up and each has stepped its env `--warmup-steps` times (unrecorded): the
  synthetic envs synthesise each (voice, syllable) on first use and cache it, a
  one-time cost per worker process that a long run amortises.
- learner_updates_per_s_prefetch / _no_prefetch: Learner actor updates (world model +
  actor-critic at the configured sizes) per second on the collected replay, with the
  next batch sampled while training on the current one, and without.
- replay_bytes_per_step: memory one stored step costs in the replay buffer.

Sizes come from the config like launch.py's (`--config NAME`, `key=value`). The
tokenizer is `--tokenizer PATH` (e.g. runs/x/tokenizer/checkpoint.pt) or, without one,
an untrained tokenizer of the configured architecture (same cost per forward).

    python bench/pipeline.py --out bench/out/pipeline.json
    python bench/pipeline.py --out bench/out/pipeline.json env.num_envs=16 --env-steps 6000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402
import torch  # noqa: E402

from audiodream.config import load_config  # noqa: E402
from audiodream.config.schema import Config  # noqa: E402
from audiodream.distributed.actors import driver_node_id, kill_quietly, start_coordinator, start_learner, start_replay, start_worker  # noqa: E402
from audiodream.distributed.cluster import connect, disconnect, learner_placement  # noqa: E402
from audiodream.distributed.handles import Shared  # noqa: E402
from audiodream.distributed.learner import LearnerSettings  # noqa: E402
from audiodream.distributed.ratio import TrainRatio  # noqa: E402
from audiodream.distributed.worker import WorkerSettings  # noqa: E402
from audiodream.dreamer.parts import AudioDreamerParts  # noqa: E402
from audiodream.tokenizer.model import Tokenizer  # noqa: E402


def build_parts(cfg: Config, tokenizer: str | None, scratch: Path) -> AudioDreamerParts:
    run_dir = scratch / "run"
    path = run_dir / "tokenizer" / "checkpoint.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if tokenizer:
        path.write_bytes(Path(tokenizer).read_bytes())
    else:
        Tokenizer.from_config(cfg.tokenizer, cfg.features, cfg.env.chunk_frames).save(path)
    return AudioDreamerParts.from_run(cfg, run_dir)


def publish_initial_weights(parts: AudioDreamerParts, coordinator: Any) -> None:
    """Workers act with the agent policy (not the random prefill one), as after prefill in a run."""
    weights = parts.make_trainers(torch.device("cpu")).policy_weights()
    if weights is None:
        raise SystemExit("bench: dreamer.actor_critic is off, so there is no agent policy to benchmark")
    ray.get(coordinator.publish.remote(0, [ray.put(weights)], 0))


@dataclass
class Collection:
    env_steps_per_s: float
    env_steps_per_worker_cpu_s: float  # what the workers achieve per CPU-second they got: shows contention
    load_average: float  # 1-minute load average after the measurement (other processes on the machine)


def collect(cfg: Config, parts_ref: Any, parts: AudioDreamerParts, n_workers: int, env_steps: int, worker_cpus: float, warmup_steps: int, repeats: int) -> tuple[Collection, Any]:
    """Throughput of `n_workers` workers collecting `env_steps` in all, best of `repeats` runs
    (other processes on a shared machine only ever slow a run down); returns it and the replay."""
    node = driver_node_id()
    replay = start_replay(f"bench-replay-{n_workers}", node, capacity=max(env_steps * 2, 1000), tokens_per_step=parts.tokens_per_step, vocab_size=parts.vocab_size, n_actions=parts.n_actions)
    coordinator = start_coordinator(f"bench-coordinator-{n_workers}", node, parts=parts_ref)
    publish_initial_weights(parts, coordinator)
    workers = [
        start_worker(
            f"bench-worker-{n_workers}-{i}", worker_cpus, replay=f"bench-replay-{n_workers}", coordinator=f"bench-coordinator-{n_workers}",
            settings=WorkerSettings(i, cfg.env.num_envs, seed=i, sync_every=cfg.ray.worker_sync_every, max_env_steps=env_steps // n_workers),
        )
        for i in range(n_workers)
    ]
    ray.get([w.warm_up.remote(warmup_steps) for w in workers])  # actors built, envs made and warm
    best: Optional[Collection] = None
    for attempt in range(repeats):
        started = time.perf_counter()
        summaries = ray.get([w.run.remote() for w in workers])
        seconds = time.perf_counter() - started
        steps = sum(s["env_steps"] for s in summaries)
        per_cpu_s = steps / max(sum(s["cpu_seconds"] for s in summaries), 1e-9)
        drained = ray.get(coordinator.drain.remote())
        vector_steps = max(drained.timers.pop("vector_steps", 0.0), 1.0)
        phases = {name: round(1000 * total / vector_steps, 2) for name, total in drained.timers.items()}
        print(
            f"  {n_workers} worker(s), run {attempt + 1}/{repeats}: {steps} env steps in {seconds:.1f} s -> {steps / seconds:.0f} steps/s "
            f"({per_cpu_s:.0f} per worker CPU-second); ms per vector step: {phases}",
            flush=True,
        )
        result = Collection(steps / seconds, per_cpu_s, os.getloadavg()[0])
        if best is None or result.env_steps_per_s > best.env_steps_per_s:
            best = result
    for handle in [*workers, coordinator]:
        kill_quietly(handle)
    assert best is not None
    return best, replay


def learner_rate(cfg: Config, parts_ref: Any, replay: Any, prefetch: bool, updates: int) -> float:
    coordinator = start_coordinator(f"bench-coordinator-learner-{prefetch}", driver_node_id())
    d = cfg.dreamer
    ratio = TrainRatio(d.batch_size, d.seq_len, train_ratio=1e9, prefill_steps=0)  # never wait for data
    settings = LearnerSettings(d.batch_size, d.seq_len, d.publish_every, ratio, prefetch=prefetch, seed=0)
    placement = learner_placement(cfg.learner, cluster_gpus=0)
    learner = start_learner(f"bench-learner-{prefetch}", placement, parts=parts_ref, settings=settings, replay=replay, coordinator=coordinator)
    ray.get(learner.train.remote(2))  # warm-up
    started = time.perf_counter()
    result = ray.get(learner.train.remote(updates))
    seconds = time.perf_counter() - started
    kill_quietly(learner)
    kill_quietly(coordinator)
    timers = {k: round(v, 4) for k, v in result.items() if k.startswith("timer_")}
    print(f"  learner, prefetch={prefetch}: {updates} updates in {seconds:.1f} s -> {updates / seconds:.2f} updates/s {timers}", flush=True)
    return updates / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="JSON file to write")
    parser.add_argument("--config", action="append", default=[], metavar="NAME")
    parser.add_argument("--tokenizer", default=None, help="tokenizer checkpoint (default: an untrained one)")
    parser.add_argument("--env-steps", type=int, default=8000, help="env steps collected per measurement")
    parser.add_argument("--warmup-steps", type=int, default=4000, help="env steps each worker takes (unrecorded) before it is timed")
    parser.add_argument("--repeats", type=int, default=3, help="timed collection runs per worker count; the best is reported")
    parser.add_argument("--updates", type=int, default=6, help="learner updates per measurement")
    parser.add_argument("--worker-cpus", type=float, default=1.0, help="CPUs reserved per worker actor")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    torch.set_num_threads(1)
    info = connect(cfg.ray, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="audiodream-bench-") as scratch:
            parts = build_parts(cfg, args.tokenizer, Path(scratch))
            parts_ref = Shared(parts)
            print(f"collecting with env.num_envs={cfg.env.num_envs} envs per worker ({cfg.env.id})", flush=True)
            one, replay_1 = collect(cfg, parts_ref, parts, 1, args.env_steps, args.worker_cpus, args.warmup_steps, args.repeats)
            kill_quietly(replay_1)
            two, replay = collect(cfg, parts_ref, parts, 2, args.env_steps, args.worker_cpus, args.warmup_steps, args.repeats)
            stats = ray.get(replay.stats.remote())
            with_prefetch = learner_rate(cfg, parts_ref, replay, True, args.updates)
            without_prefetch = learner_rate(cfg, parts_ref, replay, False, args.updates)
            kill_quietly(replay)
    finally:
        disconnect(info)
    result = {
        "env_steps_per_s_1": round(one.env_steps_per_s, 1),
        "env_steps_per_s_2": round(two.env_steps_per_s, 1),
        "speedup_2_workers": round(two.env_steps_per_s / one.env_steps_per_s, 3),
        "env_steps_per_worker_cpu_s_1": round(one.env_steps_per_worker_cpu_s, 1),
        "env_steps_per_worker_cpu_s_2": round(two.env_steps_per_worker_cpu_s, 1),
        "load_average_1": round(one.load_average, 2),
        "load_average_2": round(two.load_average, 2),
        "learner_updates_per_s_prefetch": round(with_prefetch, 4),
        "learner_updates_per_s_no_prefetch": round(without_prefetch, 4),
        "replay_bytes_per_step": stats["bytes_per_step"],
        "replay_mb_per_million_steps": round(stats["bytes_per_step"], 1),  # bytes per step x 1e6 / 1e6
        "setup": {
            "env": cfg.env.id,
            "num_envs_per_worker": cfg.env.num_envs,
            "env_steps_per_measurement": args.env_steps,
            "warmup_steps_per_worker": args.warmup_steps,
            "collection_repeats (best reported)": args.repeats,
            "updates_per_measurement": args.updates,
            "batch": [cfg.dreamer.batch_size, cfg.dreamer.seq_len],
            "preset": cfg.dreamer.preset,
            "tokenizer": args.tokenizer or "untrained (same architecture)",
            "cpus": os.cpu_count(),
            "machine": platform.platform(),
            "cluster_cpus": info.resources.get("CPU"),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
