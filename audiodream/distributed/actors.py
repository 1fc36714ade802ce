"""The Ray actors: the plain classes of this package, placed and made fault tolerant.

- ReplayBuffer: pinned to the driver's node (hard node affinity), so run.dir/replay
  is a local folder to it on any cluster without a shared filesystem; no CPU reserved
  (it only copies arrays).
- Coordinator: tiny, no CPU reserved, also beside the driver.
- Learner: the GPU when there is one (see cluster.learner_placement); one call at a
  time, so `train` runs on the actor's main thread. In a threaded actor (methods run on
  a pool thread) an update with two torch threads took 0.50 to 1.9 s against 0.36 to
  0.43 s on the main thread (README "Distribution"); the driver's stop request goes
  through the coordinator instead (learner.py).
- EnvWorker: `ray.num_workers` of them with fractional CPUs; Ray restarts a dead one
  (max_restarts=-1) and re-runs the `run` call it was executing (max_task_retries=-1).

Actors get readable names (`<prefix>-worker-0`, ...) for the Ray dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from audiodream.distributed.coordinator import Coordinator
from audiodream.distributed.learner import Learner
from audiodream.distributed.replay import ReplayBuffer
from audiodream.distributed.worker import EnvWorker

RemoteReplayBuffer = ray.remote(ReplayBuffer)
RemoteCoordinator = ray.remote(Coordinator)
RemoteLearner = ray.remote(Learner)
RemoteEnvWorker = ray.remote(EnvWorker)


def on_node(node_id: str) -> NodeAffinitySchedulingStrategy:
    """Hard placement on one node (soft=False: fail rather than run where run.dir is not)."""
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def driver_node_id() -> str:
    return ray.get_runtime_context().get_node_id()


@dataclass(frozen=True)
class LearnerPlacement:
    device: str
    num_cpus: float
    num_gpus: float
    num_threads: int = 1  # torch CPU threads


def start_replay(name: str, node_id: str, **kwargs: Any) -> Any:
    return RemoteReplayBuffer.options(name=name, num_cpus=0, scheduling_strategy=on_node(node_id), max_concurrency=1).remote(**kwargs)


def start_coordinator(name: str, node_id: str, **kwargs: Any) -> Any:
    return RemoteCoordinator.options(name=name, num_cpus=0, scheduling_strategy=on_node(node_id)).remote(**kwargs)


def start_learner(name: str, placement: LearnerPlacement, **kwargs: Any) -> Any:
    return RemoteLearner.options(
        name=name, num_cpus=placement.num_cpus, num_gpus=placement.num_gpus, max_concurrency=1, max_restarts=0
    ).remote(device=placement.device, num_threads=placement.num_threads, **kwargs)


def start_worker(name: str, num_cpus: float, **kwargs: Any) -> Any:
    return RemoteEnvWorker.options(name=name, num_cpus=num_cpus, max_restarts=-1, max_task_retries=-1).remote(**kwargs)


def kill_quietly(handle: Optional[Any]) -> None:
    if handle is None:
        return
    try:
        ray.kill(handle, no_restart=True)
    except Exception:  # already gone
        pass
