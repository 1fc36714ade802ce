"""The control plane between the learner, the env workers and the driver.

One small actor (no CPU reserved) that the others talk to in one call each:
- the learner publishes weights: it `ray.put`s them once and hands over the
  ObjectRef with a version (the learner update it was taken at); workers that ask
  get the reference and fetch the weights straight from the object store, so weights
  never pass through files and never through this actor's memory;
- workers sync every few vector steps: they report what they collected (steps,
  finished episodes' returns, the weight version they acted with, phase timers) and
  get back the newest weights if theirs are older, the learner's update count (for
  the train ratio) and whether to stop;
- the learner reports its update count after every update and learns from the reply
  whether the driver asked it to stop (the learner actor runs one call at a time, so
  the driver cannot reach it while `train` runs; see actors.py);
- the driver drains the reports into metrics rows and learns of worker restarts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

NO_WEIGHTS = -1


@dataclass
class WorkerReport:
    worker_index: int
    steps: int = 0
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    policy_version: int = NO_WEIGHTS
    timers: dict[str, float] = field(default_factory=dict)  # seconds spent per phase since the last report


@dataclass
class SyncReply:
    version: int
    weights: Optional[list[Any]]  # [ObjectRef] when newer than the worker's, else None (a list keeps Ray from resolving it)
    learner_step: int
    env_steps: int
    stop: bool


@dataclass
class DrainedReports:
    """What the workers reported since the last drain, for one metrics row."""

    env_steps: int
    steps_since: int
    seconds_since: float
    episode_returns: list[float]
    episode_lengths: list[int]
    policy_versions: dict[int, int]
    timers: dict[str, float]
    restarts: dict[int, int]


class Coordinator:
    def __init__(self, env_steps: int = 0, learner_step: int = 0, parts: Any = None) -> None:
        self._parts = parts  # what workers build their env and policy from (handles.Shared), kept for restarts
        self.env_steps = int(env_steps)  # collected steps reported by workers (starts at the replay's count)
        self.learner_step = int(learner_step)
        self.version = NO_WEIGHTS
        self._weights: Optional[list[Any]] = None
        self.stop = False  # workers: stop collecting
        self.learner_stop = False  # the learner: return from `train` (it reads this within two updates)
        self.restarts: dict[int, int] = {}
        self._registrations: dict[int, int] = {}
        self.policy_versions: dict[int, int] = {}  # latest version each worker acted with
        self._reset_window()

    def _reset_window(self) -> None:
        self._steps_since = 0
        self._since = time.monotonic()
        self._returns: list[float] = []
        self._lengths: list[int] = []
        self._timers: dict[str, float] = {}

    def publish(self, version: int, weights: list[Any], learner_step: int) -> None:
        self.version = int(version)
        self._weights = weights
        self.learner_step = max(self.learner_step, int(learner_step))

    def set_learner_step(self, step: int) -> bool:
        """The learner's update count; returns whether the driver asked the learner to stop."""
        self.learner_step = max(self.learner_step, int(step))
        return self.learner_stop

    def sync(self, report: Optional[WorkerReport], known_version: int) -> SyncReply:
        if report is not None:
            self._take(report)
        newer = self._weights if self.version > known_version else None
        return SyncReply(self.version, newer, self.learner_step, self.env_steps, self.stop)

    def _take(self, report: WorkerReport) -> None:
        self.env_steps += report.steps
        self._steps_since += report.steps
        self._returns.extend(report.episode_returns)
        self._lengths.extend(report.episode_lengths)
        self.policy_versions[report.worker_index] = report.policy_version
        for name, seconds in report.timers.items():
            self._timers[name] = self._timers.get(name, 0.0) + seconds

    def shared_parts(self) -> Any:
        return self._parts

    def register_worker(self, worker_index: int) -> int:
        """Called by each worker as it starts; returns how often this worker was restarted before."""
        seen = self._registrations.get(worker_index, 0)
        self._registrations[worker_index] = seen + 1
        if seen:
            self.restarts[worker_index] = seen
        return seen

    def request_stop(self) -> None:
        self.stop = True

    def request_learner_stop(self) -> None:
        self.learner_stop = True

    def drain(self) -> DrainedReports:
        drained = DrainedReports(
            env_steps=self.env_steps,
            steps_since=self._steps_since,
            seconds_since=time.monotonic() - self._since,
            episode_returns=self._returns,
            episode_lengths=self._lengths,
            policy_versions=dict(self.policy_versions),
            timers=self._timers,
            restarts=dict(self.restarts),
        )
        self._reset_window()
        return drained

    def status(self) -> dict[str, Any]:
        return {"env_steps": self.env_steps, "learner_step": self.learner_step, "version": self.version, "restarts": dict(self.restarts)}
