"""The driver of a distributed Dreamer run: start the actors, pace the learner, log, checkpoint.

The driver only orchestrates. Data flows workers -> replay -> learner and weights flow
learner -> object store -> workers without passing through it; it asks the learner
for `log_every` updates at a time (never past a checkpoint boundary), turns what the
actors report into a metrics row, and writes checkpoints from its own node, where
run.dir is. Faults:
- a worker that dies is restarted by Ray and re-runs its collection loop; the
  driver logs it and the run goes on;
- Ctrl-C stops the learner after its current update, checkpoints, shuts down, and
  re-raises KeyboardInterrupt (the pipeline then exits with status 130);
- after a kill -9, the same command resumes from dreamer/checkpoint.pt and the
  replay persisted in run.dir/replay/.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import ray
import torch

from audiodream.config.schema import Config
from audiodream.distributed.actors import (
    kill_quietly,
    start_coordinator,
    start_learner,
    start_replay,
    start_worker,
)
from audiodream.distributed.cluster import ClusterInfo, check_cpus_fit, connect, disconnect, learner_placement
from audiodream.distributed.handles import Shared
from audiodream.distributed.learner import LearnerSettings
from audiodream.distributed.parts import DreamerParts
from audiodream.distributed.ratio import TrainRatio
from audiodream.distributed.replay_store import adopt_fingerprint, mismatch_reason
from audiodream.distributed.worker import WorkerSettings
from audiodream.dreamer.checkpoint import CHECKPOINT_FILE, resumable_checkpoint, resume_fingerprint, resume_fingerprints, save_checkpoint, set_aside
from audiodream.dreamer.metrics_log import METRICS_FILE, MetricsLog
from audiodream.dreamer.rows import build_row
from audiodream.pipeline import launch_clock
from audiodream.tracking import Tracker

log = logging.getLogger(__name__)

TICK_S = 1.0
STOP_TIMEOUT_S = 120.0
SUMMARY_FILE = "summary.json"

RowHook = Callable[[dict[str, Any], "DreamerRun"], None]


@dataclass
class RunSummary:
    step: int
    env_steps: int
    replay_steps: int
    replay_bytes_per_step: int
    resumed_from_step: Optional[int]
    worker_restarts: int
    rows: int
    seconds: float
    stopped_by: str  # "train_steps", or the time budget that ended training first: "train_seconds" or "train_until_s"


@dataclass(frozen=True)
class BudgetLeft:
    key: str  # the dreamer config key of the budget
    seconds: float  # left of it (<= 0: spent)
    clock: str  # where its clock stands, for the log


def validate(cfg: Config) -> None:
    d = cfg.dreamer
    checks = {
        "dreamer.train_steps": d.train_steps >= 0,
        "dreamer.train_seconds": d.train_seconds is None or d.train_seconds > 0,  # the loader checks its type
        "dreamer.train_until_s": d.train_until_s is None or d.train_until_s > 0,
        "dreamer.batch_size": d.batch_size >= 1,
        "dreamer.seq_len": d.seq_len >= 2,
        "dreamer.prior_components": d.prior_components >= 1,
        "dreamer.log_every": d.log_every >= 1,
        "dreamer.checkpoint_every": d.checkpoint_every >= 1,
        "dreamer.publish_every": d.publish_every >= 1,
        "dreamer.prefill_steps": d.prefill_steps >= 0,
        "ray.num_workers": cfg.ray.num_workers >= 1,
        "ray.worker_sync_every": cfg.ray.worker_sync_every >= 1,
        "env.num_envs": cfg.env.num_envs >= 1,
    }
    bad = [key for key, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"config key '{bad[0]}': out of range ({getattr(getattr(cfg, bad[0].split('.')[0]), bad[0].split('.')[1])!r})")
    if d.replay_capacity < d.seq_len:
        raise ValueError(f"config key 'dreamer.replay_capacity': {d.replay_capacity} cannot hold one sequence of dreamer.seq_len={d.seq_len}")


def train_ratio(cfg: Config) -> TrainRatio:
    """Workers may run one sync round of every worker ahead of what the learner needs."""
    margin = cfg.ray.num_workers * cfg.env.num_envs * cfg.ray.worker_sync_every
    d = cfg.dreamer
    return TrainRatio(d.batch_size, d.seq_len, d.train_ratio, d.prefill_steps, margin)


class DreamerRun:
    def __init__(
        self, cfg: Config, run_dir: Path, tracker: Tracker, parts: DreamerParts, on_row: Optional[RowHook] = None,
        launch_started: Optional[float] = None,
    ) -> None:
        """`launch_started`: time.perf_counter() at the start of the launch, which
        `dreamer.train_until_s` counts from; None: the running launch's (launch_clock), or
        outside a launch this run's own start."""
        validate(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dreamer_dir = self.run_dir / "dreamer"
        self.replay_dir = self.run_dir / "replay"
        self.tracker = tracker
        self.parts = parts
        self.on_row = on_row
        self.fingerprint = resume_fingerprint(cfg)
        self.metrics = MetricsLog(self.dreamer_dir / METRICS_FILE, tracker)
        self.name_prefix = f"audiodream-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.cluster: Optional[ClusterInfo] = None
        self.replay: Any = None
        self.coordinator: Any = None
        self.learner: Any = None
        self.workers: list[Any] = []
        self.worker_runs: list[Any] = []
        self.step = 0
        self.env_steps = 0
        self._pending_train: Any = None
        self._known_restarts: dict[int, int] = {}
        self._rows = 0
        self._last_checkpoint: Optional[int] = None
        self._shared_parts: Optional[Shared] = None
        # rows' time_s: seconds of training since the cluster was up, continued across resumes
        self._clock_start = time.perf_counter()
        self._time_offset = 0.0
        self._launch_started = launch_started if launch_started is not None else launch_clock.launch_started()
        self._stopped_by = "train_steps"

    # -- set-up -----------------------------------------------------------------------------

    def _resume_state(self) -> Optional[dict[str, Any]]:
        accepted = resume_fingerprints(self.cfg)
        checkpoint = resumable_checkpoint(self.dreamer_dir, accepted)
        if checkpoint is not None:
            checkpoint = self._checkpoint_that_fits(checkpoint)
        if adopt_fingerprint(self.replay_dir, accepted, self.fingerprint):
            log.info("replay: %s was stored under this config's older fingerprint; it now carries this version's", self.replay_dir)
        meta = {"tokens_per_step": self.parts.tokens_per_step, "vocab_size": self.parts.vocab_size, "n_actions": self.parts.n_actions, "fingerprint": self.fingerprint}
        reason = mismatch_reason(self.replay_dir, meta)
        if reason:
            set_aside(self.replay_dir, reason)
        return checkpoint

    def _checkpoint_that_fits(self, checkpoint: dict[str, Any]) -> Optional[dict[str, Any]]:
        """The checkpoint if this code's models load it; else it is set aside. The fingerprint
        covers the config, not the code: a checkpoint from before a model change (a new head,
        say) has the right fingerprint and would crash the learner on load."""
        try:
            self.parts.make_trainers(torch.device("cpu")).load_state_dict(checkpoint)
        except (RuntimeError, ValueError, KeyError) as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            set_aside(self.dreamer_dir, f"{self.dreamer_dir / CHECKPOINT_FILE} does not fit this version's models ({first_line})")
            return None
        return checkpoint

    def _start_actors(self, checkpoint: Optional[dict[str, Any]]) -> None:
        cfg, prefix = self.cfg, self.name_prefix
        # Into the object store once. The coordinator keeps the reference for the whole run:
        # a worker that Ray re-creates fetches its parts from there again.
        self._shared_parts = Shared(self.parts)
        parts = self._shared_parts
        assert self.cluster is not None
        placement = learner_placement(cfg.learner, self.cluster.num_gpus)
        check_cpus_fit(self.cluster, placement, cfg.ray)
        node = self.cluster.node_id
        self.replay = start_replay(
            f"{prefix}-replay", node,
            capacity=cfg.dreamer.replay_capacity, tokens_per_step=self.parts.tokens_per_step, vocab_size=self.parts.vocab_size,
            n_actions=self.parts.n_actions, directory=str(self.replay_dir.resolve()), fingerprint=self.fingerprint, seed=cfg.run.seed,
        )
        stored, self.env_steps = ray.get(self.replay.counts.remote())
        if stored:
            log.info("replay: resuming with %d stored steps (%d env steps collected so far)", stored, self.env_steps)
        self.step = int(checkpoint["step"]) if checkpoint else 0
        self.coordinator = start_coordinator(f"{prefix}-coordinator", node, env_steps=self.env_steps, learner_step=self.step, parts=parts)
        ratio = train_ratio(cfg)
        settings = LearnerSettings(cfg.dreamer.batch_size, cfg.dreamer.seq_len, cfg.dreamer.publish_every, ratio, cfg.learner.prefetch, cfg.run.seed)
        self.learner = start_learner(f"{prefix}-learner", placement, parts=parts, settings=settings, replay=self.replay, coordinator=self.coordinator, checkpoint=checkpoint)
        log.info("learner: %s (%g CPUs, %g GPUs, %d torch threads)", placement.device, placement.num_cpus, placement.num_gpus, placement.num_threads)
        seed_base = cfg.run.seed * 1_000_003 + self.env_steps  # a resumed run does not replay the episodes it has
        for index in range(cfg.ray.num_workers):
            worker_settings = WorkerSettings(
                worker_index=index, num_envs=cfg.env.num_envs, seed=seed_base + index, sync_every=cfg.ray.worker_sync_every,
                max_segment_steps=max(4 * cfg.dreamer.seq_len, 64), ratio=ratio,
            )
            self.workers.append(
                # by name: a worker Ray restarts looks its peers (and its parts) up again
                start_worker(f"{prefix}-worker-{index}", cfg.ray.worker_num_cpus, settings=worker_settings, replay=f"{prefix}-replay", coordinator=f"{prefix}-coordinator")
            )
        self.worker_runs = [worker.run.remote() for worker in self.workers]

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> RunSummary:
        started = time.perf_counter()
        if self._launch_started is None:
            self._launch_started = started
        checkpoint = self._resume_state()
        resumed_from = int(checkpoint["step"]) if checkpoint else None
        self.cluster = connect(self.cfg.ray)
        try:
            self._clock_start = time.perf_counter()
            self._start_actors(checkpoint)
            if resumed_from is not None:
                log.info("dreamer: resuming from update %d (checkpoint %s)", resumed_from, self.dreamer_dir / CHECKPOINT_FILE)
            self.metrics.truncate_after(self.step)
            self._time_offset = self._resumed_time_s()
            try:
                self._train_loop()
            except KeyboardInterrupt:
                log.warning("interrupted at update %d: checkpointing and shutting down", self.step)
                self._stop_learner()
                self._checkpoint()
                raise
            if not self._checkpointed_at(self.step):
                self._checkpoint()
            self._stop_workers()
            summary = self._summary(resumed_from, time.perf_counter() - started)
            self._write_summary(summary)
            return summary
        finally:
            self._shutdown()

    def _train_loop(self) -> None:
        from tqdm import tqdm

        cfg = self.cfg.dreamer
        total = cfg.train_steps
        bar = tqdm(total=total, initial=self.step, desc="dreamer", unit="update", disable=not self.cfg.run.progress, dynamic_ncols=True)
        last_row_step, last_row_time = self.step, time.perf_counter()
        try:
            while self.step < total:
                left = self._budget_left()
                if left is not None and left.seconds <= 0:
                    log.warning(
                        "dreamer: the time budget dreamer.%s=%g is spent (%s): training stops at update %d of dreamer.train_steps=%d",
                        left.key, getattr(cfg, left.key), left.clock, self.step, total,
                    )
                    self._stopped_by = left.key
                    break
                n = min(total - self.step, cfg.log_every - self.step % cfg.log_every, cfg.checkpoint_every - self.step % cfg.checkpoint_every)
                self._pending_train = self.learner.train.remote(n, None if left is None else left.seconds)
                result = self._wait_for_train(bar)
                self._pending_train = None
                self.step = int(result["step"])
                bar.n = self.step
                stopped_early = int(result["updates"]) < n  # the budget ran out inside this call
                if self.step % cfg.log_every == 0 or self.step >= total or (stopped_early and int(result["updates"]) > 0):
                    now = time.perf_counter()
                    row = self._row(result, self.step - last_row_step, now - last_row_time)
                    last_row_step, last_row_time = self.step, now
                    bar.set_postfix_str(_postfix(row), refresh=True)
                if self.step % cfg.checkpoint_every == 0:
                    self._checkpoint()
        finally:
            bar.close()

    def _time_s(self) -> float:
        """Seconds of training since the cluster was up, carried across resumes (rows' time_s)."""
        return self._time_offset + time.perf_counter() - self._clock_start

    def _budget_left(self) -> Optional[BudgetLeft]:
        """Seconds of training left under the tighter of the two time budgets; None without one.

        `train_seconds` bounds training (rows' time_s, carried across resumes);
        `train_until_s` bounds the launch: training stops that many seconds after the
        launch began, whatever the stages before it took, so a budget for the whole
        command holds on a slower machine (launch_clock.py)."""
        d = self.cfg.dreamer
        budgets = []
        if d.train_seconds is not None:
            time_s = self._time_s()
            budgets.append(BudgetLeft("train_seconds", d.train_seconds - time_s, f"time_s {time_s:.1f}"))
        if d.train_until_s is not None:
            assert self._launch_started is not None
            launch_s = time.perf_counter() - self._launch_started
            budgets.append(BudgetLeft("train_until_s", d.train_until_s - launch_s, f"{launch_s:.1f} s since the launch began"))
        return min(budgets, key=lambda b: b.seconds) if budgets else None

    def _wait_for_train(self, bar: Any) -> dict[str, float]:
        while True:
            ready, _ = ray.wait([self._pending_train], timeout=TICK_S)
            self._check_workers()
            status = ray.get(self.coordinator.status.remote())
            self.env_steps = int(status["env_steps"])
            prefill = self.cfg.dreamer.prefill_steps
            bar.n = max(bar.n, int(status["learner_step"]))
            bar.set_description("dreamer" if self.env_steps >= prefill else f"dreamer (prefill {self.env_steps}/{prefill} env steps)", refresh=False)
            bar.refresh()
            if ready:
                return ray.get(ready[0])

    def _check_workers(self) -> None:
        """Surface a worker's error (Ray retries deaths, not exceptions) and log restarts."""
        finished, _ = ray.wait(self.worker_runs, num_returns=len(self.worker_runs), timeout=0)
        for ref in finished:
            ray.get(ref)  # raises the worker's exception
            raise RuntimeError("an env worker stopped collecting before the run ended")
        restarts = ray.get(self.coordinator.status.remote())["restarts"]
        for index, count in restarts.items():
            if count > self._known_restarts.get(index, 0):
                log.warning("env worker %d died and was restarted by Ray (%d restart(s) so far); the run goes on", index, count)
        self._known_restarts = dict(restarts)

    def _resumed_time_s(self) -> float:
        """time_s of the last row kept from an earlier run of this run.dir (0 for a fresh run)."""
        times = [row.get("time_s") for row in self.metrics.rows()]
        times = [float(t) for t in times if isinstance(t, (int, float))]
        return times[-1] if times else 0.0

    def _row(self, result: dict[str, float], updates_since: int, seconds_since: float) -> dict[str, Any]:
        drained = ray.get(self.coordinator.drain.remote())
        stats = ray.get(self.replay.stats.remote())
        row = build_row(self.step, result, drained, stats, updates_since, seconds_since)
        row["time_s"] = self._time_s()
        self.metrics.write(row)
        self._rows += 1
        if self.on_row is not None:
            self.on_row(row, self)
        return row

    # -- checkpoints and shutdown -----------------------------------------------------------

    def _checkpointed_at(self, step: int) -> bool:
        return self._last_checkpoint == step

    def _checkpoint(self) -> None:
        state = ray.get(self.learner.checkpoint_state.remote())
        stats = ray.get(self.replay.stats.remote())
        state.update(fingerprint=self.fingerprint, env_steps=int(stats["env_steps"]))
        save_checkpoint(self.dreamer_dir / CHECKPOINT_FILE, state)
        self._last_checkpoint = int(state["step"])
        log.info("checkpoint: update %d, %d env steps -> %s", state["step"], stats["env_steps"], self.dreamer_dir / CHECKPOINT_FILE)

    def _stop_learner(self) -> None:
        if self.learner is None:
            return
        self.coordinator.request_learner_stop.remote()  # answered to the learner after its next update
        if self._pending_train is not None:
            try:
                result = ray.get(self._pending_train, timeout=STOP_TIMEOUT_S)
                self.step = int(result["step"])
            except ray.exceptions.GetTimeoutError:
                log.warning("the learner did not stop within %.0f s", STOP_TIMEOUT_S)
            self._pending_train = None

    def _stop_workers(self) -> None:
        if self.coordinator is None:
            return
        ray.get(self.coordinator.request_stop.remote())
        if self.worker_runs:
            ray.wait(self.worker_runs, num_returns=len(self.worker_runs), timeout=30)

    def _summary(self, resumed_from: Optional[int], seconds: float) -> RunSummary:
        stats = ray.get(self.replay.stats.remote())
        restarts = ray.get(self.coordinator.status.remote())["restarts"]
        return RunSummary(
            step=self.step, env_steps=int(stats["env_steps"]), replay_steps=int(stats["replay_steps"]),
            replay_bytes_per_step=int(stats["bytes_per_step"]), resumed_from_step=resumed_from,
            worker_restarts=int(sum(restarts.values())), rows=self._rows, seconds=seconds,
            stopped_by="train_steps" if self.step >= self.cfg.dreamer.train_steps else self._stopped_by,
        )

    def _write_summary(self, summary: RunSummary) -> None:
        path = self.dreamer_dir / SUMMARY_FILE
        path.write_text(json.dumps(asdict(summary), indent=1))
        self.tracker.log_metrics({"dreamer.replay_bytes_per_step": summary.replay_bytes_per_step}, step=summary.step)
        self.tracker.log_artifacts([self.metrics.path, path], "dreamer")

    def _shutdown(self) -> None:
        if self.coordinator is not None:
            try:
                self._stop_workers()
            except Exception:  # the cluster may be going down already
                pass
        for handle in [*self.workers, self.learner, self.replay, self.coordinator]:
            kill_quietly(handle)
        if self.cluster is not None:
            disconnect(self.cluster)


def _postfix(row: dict[str, Any]) -> str:
    parts = [f"env {row['env_steps']}", f"replay {row['replay_steps']}"]
    if row.get("loss_model") is not None:
        parts.append(f"loss {row['loss_model']:.1f}")
    if row.get("return_mean") is not None:
        parts.append(f"return {row['return_mean']:.2f}")
    if row.get("updates_per_s") is not None:
        parts.append(f"{row['updates_per_s']:.2f} upd/s")
    return ", ".join(parts)
