"""EnvWorker: steps one vector env with the newest policy and streams episodes to replay.

Throughput comes from batching: each vector step is one tokenizer forward (inside the
env's tokenising wrapper) and one policy forward for all sub-envs. Every `sync_every`
vector steps the worker hands its finished segments to the replay (asynchronously,
with at most one add in flight, which is also its back-pressure), reports to the
coordinator, picks up newer weights by reference, and waits while it is ahead of the
learner's train ratio. It acts randomly until the learner has published weights.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from audiodream.distributed.chunks import concat_chunks
from audiodream.distributed.coordinator import NO_WEIGHTS, SyncReply, WorkerReport
from audiodream.distributed.episodes import EpisodeRecorder, FinishedEpisodes
from audiodream.distributed.handles import Shared, lookup, resolve, unshare
from audiodream.distributed.parts import ActingPolicy, DreamerParts
from audiodream.distributed.ratio import TrainRatio
from audiodream.distributed.timers import PhaseTimers

log = logging.getLogger(__name__)

THROTTLE_MIN_SLEEP_S = 0.01  # while ahead of the learner, poll the coordinator with a growing pause
THROTTLE_MAX_SLEEP_S = 0.1


@dataclass(frozen=True)
class WorkerSettings:
    worker_index: int
    num_envs: int
    seed: int
    sync_every: int = 16  # vector steps between replay pushes / coordinator syncs
    max_segment_steps: int = 256  # longer episodes are stored in pieces
    ratio: Optional[TrainRatio] = None  # None: collect as fast as possible
    max_env_steps: Optional[int] = None  # a run() stops after this many steps (benchmarks); None: when told to stop


class EnvWorker:
    def __init__(self, settings: WorkerSettings, replay: Any, coordinator: Any, parts: DreamerParts | Shared | None = None) -> None:
        """`replay` and `coordinator`: handles, or the names of Ray actors; `parts`: None
        takes the coordinator's (what a worker restarted by Ray does)."""
        torch.set_num_threads(1)
        self.settings = settings
        self.replay = lookup(replay)
        self.coordinator = lookup(coordinator)
        self.incarnation = int(resolve(self.coordinator.register_worker.remote(settings.worker_index)))
        parts = unshare(resolve(self.coordinator.shared_parts.remote()) if parts is None else parts)
        if parts is None:
            raise ValueError("EnvWorker: no parts given and the coordinator holds none")
        self.parts = parts
        seed = settings.seed + 7919 * settings.worker_index
        if self.incarnation:
            log.warning("env worker %d was restarted by Ray (restart %d); it carries on with a fresh env", settings.worker_index, self.incarnation)
            # A fresh seed, or the restarted worker would replay the episodes it already sent.
            seed = int.from_bytes(os.urandom(4), "little")
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.env = parts.make_vector_env(settings.num_envs, seed)
        self._episode_base = int.from_bytes(os.urandom(4), "little") >> 1 << 32  # unique ids across workers and restarts
        self.recorder = self._new_recorder()
        self.policy: ActingPolicy = parts.random_policy(seed)
        self.version = NO_WEIGHTS
        self.timers = PhaseTimers()
        self.env_steps = 0
        self.vector_steps = 0
        self._vector_steps_reported = 0
        self._pending_add: Any = None
        self._finished = FinishedEpisodes()

    def _new_recorder(self) -> EpisodeRecorder:
        settings = self.settings
        recorder = EpisodeRecorder(settings.num_envs, self.parts.tokens_per_step, settings.max_segment_steps, self._episode_base)
        self._episode_base += 1 << 24  # a later run() of this worker numbers its episodes apart
        return recorder

    def ping(self) -> int:
        return self.settings.worker_index

    def warm_up(self, env_steps: int) -> int:
        """Step the env with random actions, recording nothing: one-time costs (caches an env
        fills as it goes, first-call overheads) out of the way before a throughput measurement."""
        n = self.settings.num_envs
        self.env.reset(seed=self.seed + 1)
        warm_policy = self.parts.random_policy(self.seed + 1)
        stepped = 0
        while stepped < env_steps:
            actions, _ = warm_policy.act(None, None, np.zeros(n, bool), None, False, self.generator)
            self.env.step(np.asarray(actions, np.int64))
            stepped += n
        return stepped

    def run(self) -> dict[str, Any]:
        """Collect until the coordinator says stop (or max_env_steps this call); returns a summary."""
        n = self.settings.num_envs
        started, cpu_started, steps_before = time.perf_counter(), time.process_time(), self.env_steps
        self.recorder = self._new_recorder()  # episodes start afresh with the env reset below
        obs, _ = self.env.reset(seed=self.seed + self.vector_steps)
        zeros, no = np.zeros(n, np.int64), np.zeros(n, bool)
        first = self.recorder.record(obs, zeros, zeros.astype(np.float32), no, no)
        prev_actions = zeros
        state = self.policy.initial_state(n)
        self.env_steps += n
        keep_going = True
        while keep_going:
            with self.timers.phase("policy"):
                actions, state = self.policy.act(obs, prev_actions, first, state, False, self.generator)
            actions = np.asarray(actions, np.int64)
            with self.timers.phase("env"):
                obs, rewards, terminated, truncated, _ = self.env.step(actions)
            first = self.recorder.record(obs, actions, rewards, terminated, truncated)
            prev_actions = np.where(first, 0, actions)
            self.env_steps += n
            self.vector_steps += 1
            if self.vector_steps % self.settings.sync_every == 0:
                policy_before = self.policy
                keep_going = self._sync()
                if self.policy is not policy_before:
                    state = self.policy.initial_state(n)
            if self.settings.max_env_steps is not None and self.env_steps - steps_before >= self.settings.max_env_steps:
                keep_going = False
        self._sync(final=True)
        resolve(self._pending_add)
        seconds, steps = time.perf_counter() - started, self.env_steps - steps_before
        return {
            "worker_index": self.settings.worker_index,
            "env_steps": steps,
            "seconds": seconds,
            "cpu_seconds": time.process_time() - cpu_started,  # this process, all threads: < seconds when sharing a core
            "env_steps_per_s": steps / max(seconds, 1e-9),
        }

    def _flush(self) -> int:
        """Send finished segments to the replay; at most one add is in flight."""
        segments, finished = self.recorder.drain()
        self._finished.returns.extend(finished.returns)
        self._finished.lengths.extend(finished.lengths)
        if not segments:
            return 0
        chunk = concat_chunks(segments)
        with self.timers.phase("push"):
            if self._pending_add is not None:
                resolve(self._pending_add)
            self._pending_add = self.replay.add.remote(chunk)
        return len(chunk["actions"])

    def _report(self, steps: int) -> WorkerReport:
        finished, self._finished = self._finished, FinishedEpisodes()
        timers = self.timers.drain()
        timers["vector_steps"] = float(self.vector_steps - self._vector_steps_reported)
        self._vector_steps_reported = self.vector_steps
        return WorkerReport(
            worker_index=self.settings.worker_index,
            steps=steps,
            episode_returns=finished.returns,
            episode_lengths=finished.lengths,
            policy_version=self.version,
            timers=timers,
        )

    def _sync(self, final: bool = False) -> bool:
        """Push data, report, take newer weights, wait while ahead of the learner. False: stop."""
        steps = self._flush()
        reply: SyncReply = resolve(self.coordinator.sync.remote(self._report(steps), self.version))
        self._take_weights(reply)
        ratio = self.settings.ratio
        waited, pause = 0.0, THROTTLE_MIN_SLEEP_S
        while not final and not reply.stop and ratio is not None and reply.env_steps >= ratio.env_steps_allowed(reply.learner_step):
            time.sleep(pause)
            waited += pause
            pause = min(THROTTLE_MAX_SLEEP_S, pause * 1.5)
            still = WorkerReport(self.settings.worker_index, policy_version=self.version)  # no steps: only the version it acts with
            reply = resolve(self.coordinator.sync.remote(still, self.version))
            self._take_weights(reply)
        if waited:
            self.timers.add("throttle", waited)
        return not reply.stop

    def _take_weights(self, reply: SyncReply) -> None:
        if reply.weights is None or reply.version <= self.version:
            return
        with self.timers.phase("weights"):
            weights = resolve(reply.weights[0])
            previous = None if self.version == NO_WEIGHTS else self.policy
            self.policy = self.parts.policy_from_weights(weights, previous)
            self.version = reply.version
