"""Learner: trains on replayed batches, keeps the train ratio, publishes weights by reference.

A plain class; the Ray actor wraps it (actors.py) as an actor that runs one call at a
time, on its main thread. The driver asks it to stop through the coordinator, which
answers the learner's report after each update (and while it waits for data). Each update:
1. wait until the replay has enough collected steps for this update (train ratio);
2. take the batch sampled in the background during the previous update (prefetch),
   and at once ask the replay for the next one, so sampling and moving the batch
   overlap with training instead of adding to it;
3. one world-model (+ actor-critic) update (`Trainers.update`);
4. every `publish_every` updates, `ray.put` the policy weights once and hand the
   reference, with its version (this update's number), to the coordinator.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import torch

from audiodream.distributed.handles import Shared, is_ready, put, resolve, unshare
from audiodream.distributed.parts import DreamerParts
from audiodream.distributed.ratio import TrainRatio
from audiodream.distributed.timers import PhaseTimers

log = logging.getLogger(__name__)

WAIT_SLEEP_S = 0.05


@dataclass(frozen=True)
class LearnerSettings:
    batch_size: int
    seq_len: int
    publish_every: int
    ratio: TrainRatio
    prefetch: bool = True
    seed: int = 0
    distributed: bool = True  # weights go through the Ray object store


class Learner:
    def __init__(
        self,
        parts: DreamerParts | Shared,
        settings: LearnerSettings,
        replay: Any,
        coordinator: Any,
        device: str = "cpu",
        checkpoint: Optional[Mapping[str, Any]] = None,
        num_threads: int = 1,
    ) -> None:
        torch.set_num_threads(max(1, int(num_threads)))
        if settings.publish_every < 1:
            raise ValueError(f"dreamer.publish_every: must be >= 1, got {settings.publish_every}")
        self.settings = settings
        self.replay = replay
        self.coordinator = coordinator
        self.device = torch.device(device)
        self.trainers = unshare(parts).make_trainers(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(settings.seed)
        self.step = 0
        self.env_steps = 0
        self.version = -1
        self.timers = PhaseTimers()
        self._prefetched: Any = None
        self._stop_requested = False
        self._stop_reply: Any = None  # the coordinator's unread reply to the last step report
        if checkpoint is not None:
            self.trainers.load_state_dict(checkpoint)
            self.step = int(checkpoint["step"])
            self.publish()  # a resumed run acts with its trained policy from the start
        log.info("learner on %s, starting at update %d", self.device, self.step)

    # -- data -------------------------------------------------------------------------------

    def _request_batch(self) -> Any:
        return self.replay.sample_with_counts.remote(self.settings.batch_size, self.settings.seq_len)

    def _wait_for_data(self, deadline: float = math.inf) -> bool:
        """Block until the train ratio allows the next update; False if asked to stop, or the
        deadline (time.perf_counter()) passes, meanwhile."""
        ratio = self.settings.ratio
        with self.timers.phase("wait"):
            while self.step >= ratio.updates_allowed(self.env_steps):
                if self._stop_requested or time.perf_counter() >= deadline:
                    return False
                time.sleep(WAIT_SLEEP_S)
                _, self.env_steps = resolve(self.replay.counts.remote())
                if resolve(self.coordinator.set_learner_step.remote(self.step)):  # waiting anyway
                    self._stop_requested = True
        return True

    def _report_step(self) -> None:
        """Tell the coordinator the update count (the workers' train ratio reads it). Its reply,
        whether the driver asked this learner to stop, is read without waiting for it: before
        the next update if it has arrived, else before the next report (a whole update later)."""
        self._read_stop_reply()
        self._stop_reply = self.coordinator.set_learner_step.remote(self.step)

    def _read_stop_reply(self) -> None:
        if self._stop_reply is not None and is_ready(self._stop_reply):
            self._stop_requested = self._stop_requested or bool(resolve(self._stop_reply))
            self._stop_reply = None

    def _next_batch(self) -> dict[str, Any]:
        with self.timers.phase("sample"):
            ref = self._prefetched if self._prefetched is not None else self._request_batch()
            self._prefetched = None
            batch, self.env_steps = resolve(ref)
            batch = {key: np.array(value) for key, value in batch.items()}  # writable, and frees the object-store copy
            if self.settings.prefetch:
                self._prefetched = self._request_batch()
        return batch

    # -- training ---------------------------------------------------------------------------

    def train(self, updates: int, seconds: Optional[float] = None) -> dict[str, float]:
        """Run up to `updates` updates (fewer if stopped, or once `seconds` have passed: the
        run's time budget, kept to the update rather than to the next call); returns their
        mean metrics and per-update phase seconds."""
        sums: dict[str, float] = {}
        done = 0
        started = time.perf_counter()
        deadline = math.inf if seconds is None else started + seconds
        for _ in range(int(updates)):
            self._read_stop_reply()
            if self._stop_requested or time.perf_counter() >= deadline or not self._wait_for_data(deadline):
                break
            batch = self._next_batch()
            metrics, phases = self.trainers.update(batch, self.generator)
            for name, seconds in phases.items():
                self.timers.add(name, seconds)
            self.step += 1
            done += 1
            for name, value in metrics.items():
                sums[name] = sums.get(name, 0.0) + float(value)
            self._report_step()
            if self.step % self.settings.publish_every == 0:
                self.publish()
        result = {name: total / done for name, total in sums.items()} if done else {}
        for name, seconds in self.timers.drain().items():
            result[f"timer_{name}_s"] = seconds / max(done, 1)
        result.update(step=float(self.step), updates=float(done), env_steps_seen=float(self.env_steps), seconds=time.perf_counter() - started)
        return result

    def publish(self) -> bool:
        """Put the policy weights into the object store once and announce them; False if there is no policy yet."""
        with self.timers.phase("publish"):
            weights = self.trainers.policy_weights()
            if weights is None:
                return False
            ref = put(weights, self.settings.distributed)
            self.version = self.step
            resolve(self.coordinator.publish.remote(self.version, [ref], self.step))
        return True

    # -- state ------------------------------------------------------------------------------

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to resume training (CPU tensors and plain types)."""
        return {**_to_cpu(self.trainers.state_dict()), "step": self.step, "policy_version": self.version}

    def get_step(self) -> int:
        return self.step


def _to_cpu(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, Mapping):
        return {key: _to_cpu(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_cpu(value) for value in tree)
    return tree
