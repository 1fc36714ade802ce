"""The distributed Dreamer system: replay, episode recording, pacing, and whole runs on real Ray.

Every component is the real one at tiny sizes: an (untrained) tokenizer checkpoint,
Complete-v0 with few voices, a small world model and actor-critic.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from audiodream.config import load_config
from audiodream.distributed import (
    Coordinator,
    EnvWorker,
    EpisodeRecorder,
    Learner,
    LearnerSettings,
    LocalHandle,
    ReplayBuffer,
    TokenPacker,
    TrainRatio,
    WorkerSettings,
)
from audiodream.config.loader import ConfigError
from audiodream.distributed.actors import LearnerPlacement, driver_node_id, kill_quietly, start_coordinator, start_learner, start_replay
from audiodream.distributed.cluster import ClusterInfo, check_cpus_fit, learner_placement
from audiodream.distributed.handles import Shared
from audiodream.distributed.replay_store import ReplayStoreMismatch
from audiodream.dreamer.checkpoint import load_checkpoint
from audiodream.dreamer.parts import AudioDreamerParts
from audiodream.dreamer.rows import REQUIRED_KEYS
from audiodream.dreamer.run import DreamerRun, validate
from audiodream.dreamer.stage import dreamer_stage
from audiodream.errors import MissingStageOutput
from audiodream.tokenizer.model import Tokenizer
from audiodream.tracking import Tracker

K, V = 48, 1024

TINY = [
    "dreamer.deter=32", "dreamer.embed=32", "dreamer.hidden=32", "dreamer.stoch=4", "dreamer.classes=4",
    "dreamer.token_embed=8", "dreamer.decoder_slot_dim=8", "dreamer.imag_horizon=3",
    "dreamer.batch_size=4", "dreamer.seq_len=8", "dreamer.prefill_steps=64", "dreamer.train_ratio=8",
    "dreamer.train_steps=12", "dreamer.log_every=4", "dreamer.checkpoint_every=8", "dreamer.publish_every=2",
    "dreamer.replay_capacity=5000",
    "env.id=audiodream/Complete-v0", "env.num_envs=4", "env.kwargs={voices: 3, takes: 1}",
    "ray.num_workers=2", "ray.worker_num_cpus=0.5", "learner.num_cpus=1", "ray.worker_sync_every=4",
    "tokenizer.hidden=16", "tokenizer.blocks=1", "run.progress=false",
]


def tiny_config(run_dir: Path, *extra: str):
    return load_config([], [*TINY, f"run.dir={run_dir}", *extra])


def with_tokenizer(cfg, run_dir: Path) -> Path:
    path = run_dir / "tokenizer" / "checkpoint.pt"
    if not path.is_file():
        torch.manual_seed(0)
        Tokenizer.from_config(cfg.tokenizer, cfg.features, cfg.env.chunk_frames).save(path)
    return path


def random_chunk(rng: np.random.Generator, lengths: list[int], first_id: int = 0) -> dict[str, np.ndarray]:
    """Episodes of the given lengths laid end to end, each step's reward = its index in the chunk."""
    steps = sum(lengths)
    is_first = np.zeros(steps, bool)
    terminals = np.zeros(steps, bool)
    ids = np.zeros(steps, np.int64)
    start = 0
    for number, length in enumerate(lengths):
        is_first[start] = True
        terminals[start + length - 1] = True
        ids[start : start + length] = first_id + number
        start += length
    return {
        "tokens": rng.integers(0, V, (steps, K)),
        "actions": np.where(is_first, 0, rng.integers(0, 5, steps)),
        "rewards": np.arange(steps, dtype=np.float32),
        "terminals": terminals,
        "is_first": is_first,
        "episode_ids": ids,
    }


# -- storage -------------------------------------------------------------------------------


def test_token_packing_round_trips_and_costs_ten_bits_per_token():
    packer = TokenPacker(K, V)
    tokens = np.random.default_rng(0).integers(0, V, (100, K))
    tokens[0] = V - 1
    tokens[1] = 0
    assert packer.bytes_per_step == K * 10 // 8
    assert np.array_equal(packer.unpack(packer.pack(tokens)), tokens)
    with pytest.raises(ValueError, match=r"\[0, 1024\)"):
        packer.pack(np.full((1, K), V))


def test_replay_samples_consecutive_stored_steps_with_episode_starts_marked():
    rng = np.random.default_rng(1)
    replay = ReplayBuffer(capacity=1000, tokens_per_step=K, vocab_size=V, n_actions=5, seed=0)
    chunk = random_chunk(rng, [10, 7, 13])
    assert replay.add(chunk) == 30
    batch = replay.sample(batch_size=16, seq_len=6)
    assert batch["tokens"].shape == (16, 6, K) and batch["actions"].shape == (16, 6)
    # rewards hold the stored position: every window is 6 consecutive stored steps
    assert np.all(np.diff(batch["rewards"], axis=1) == 1)
    positions = batch["rewards"].astype(int)
    assert np.array_equal(batch["is_first"], chunk["is_first"][positions])
    assert np.array_equal(batch["tokens"], chunk["tokens"][positions])
    assert np.array_equal(batch["terminals"], chunk["terminals"][positions])
    with pytest.raises(ValueError, match="dreamer.seq_len"):
        replay.sample(2, 31)


def test_replay_ring_keeps_the_newest_steps_and_reports_its_cost():
    rng = np.random.default_rng(2)
    replay = ReplayBuffer(capacity=50, tokens_per_step=K, vocab_size=V, n_actions=5)
    chunks = [random_chunk(rng, [8, 12], first_id=2 * i) for i in range(4)]
    for chunk in chunks:
        replay.add(chunk)
    stored = replay.all_steps()
    newest = np.concatenate([c["tokens"] for c in chunks])[-50:]
    assert replay.counts() == (50, 80)
    assert np.array_equal(stored["tokens"], newest)
    # tokens are tiny: a million steps in tens of MB (DreamerV2's 64x64x3 images: ~12 GB)
    assert replay.bytes_per_step * 1_000_000 < 100e6
    assert replay.stats()["bytes_per_step"] == replay.bytes_per_step


def test_replay_persists_to_chunk_files_and_resumes(tmp_path):
    rng = np.random.default_rng(3)
    directory = tmp_path / "replay"
    replay = ReplayBuffer(capacity=40, tokens_per_step=K, vocab_size=V, n_actions=5, directory=directory, fingerprint="abc")
    for i in range(5):
        replay.add(random_chunk(rng, [6, 9], first_id=2 * i))
    files = sorted(directory.glob("chunk-*.npz"))
    assert 3 <= len(files) < 5  # files fully overwritten in the ring are pruned
    (directory / "chunk-000000099.npz.tmp").write_bytes(b"half a file")  # a write cut short by a kill
    again = ReplayBuffer(capacity=40, tokens_per_step=K, vocab_size=V, n_actions=5, directory=directory, fingerprint="abc")
    assert again.counts() == replay.counts() == (40, 75)
    for key, value in replay.all_steps().items():
        assert np.array_equal(again.all_steps()[key], value), key
    assert not list(directory.glob("*.tmp"))
    with pytest.raises(ReplayStoreMismatch, match="fingerprint"):
        ReplayBuffer(capacity=40, tokens_per_step=K, vocab_size=V, n_actions=5, directory=directory, fingerprint="other")


def test_replay_add_rejects_bad_chunks_by_key():
    replay = ReplayBuffer(capacity=10, tokens_per_step=K, vocab_size=V, n_actions=5)
    chunk = random_chunk(np.random.default_rng(4), [4])
    with pytest.raises(ValueError, match="'actions'"):
        replay.add({**chunk, "actions": np.full(4, 7)})
    with pytest.raises(ValueError, match="missing key"):
        replay.add({k: v for k, v in chunk.items() if k != "is_first"})


# -- acting side ---------------------------------------------------------------------------


def test_episode_recorder_follows_next_step_autoreset():
    rec = EpisodeRecorder(num_envs=2, tokens_per_step=1, max_segment_steps=4, episode_id_base=100)
    obs = lambda t: np.array([[t], [10 + t]])  # noqa: E731
    no = np.zeros(2, bool)
    first = rec.record(obs(0), np.zeros(2), np.zeros(2), no, no)  # reset
    assert first.tolist() == [True, True]
    rec.record(obs(1), np.array([1, 2]), np.array([0.5, 0.0]), np.array([True, False]), no)  # env 0 ends
    first = rec.record(obs(2), np.array([3, 3]), np.array([9.0, 1.0]), no, no)  # env 0 autoresets: action/reward ignored
    assert first.tolist() == [True, False]
    rec.record(obs(3), np.array([4, 4]), np.array([0.0, 0.0]), no, np.array([False, False]))  # env 1 hits 4 steps
    segments, finished = rec.drain()
    assert finished.returns == [0.5] and finished.lengths == [2]
    ep0, ep1 = segments
    assert ep0["tokens"][:, 0].tolist() == [0, 1] and ep0["actions"].tolist() == [0, 1]
    assert ep0["terminals"].tolist() == [False, True] and ep0["is_first"].tolist() == [True, False]
    assert ep1["tokens"][:, 0].tolist() == [10, 11, 12, 13] and ep1["rewards"].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert ep0["episode_ids"][0] != ep1["episode_ids"][0]
    # the rest of env 1's episode is a new piece: the model must reset where it starts
    rec.record(obs(4), np.array([1, 1]), np.zeros(2), no, np.array([False, True]))
    (piece,) = [s for s in rec.drain()[0] if s["tokens"][0, 0] == 14]
    assert piece["is_first"].tolist() == [True] and piece["episode_ids"][0] == ep1["episode_ids"][0]


def test_train_ratio_paces_both_sides():
    ratio = TrainRatio(batch_size=4, seq_len=8, train_ratio=8.0, prefill_steps=64, collect_margin_steps=16)
    assert ratio.env_steps_per_update == 4.0
    assert ratio.updates_allowed(63) == 0 and ratio.updates_allowed(64) == 1 and ratio.updates_allowed(72) == 3
    assert ratio.env_steps_allowed(0) == 80 and ratio.env_steps_allowed(10) == 64 + 40 + 16


def test_learner_takes_a_gpu_only_when_the_cluster_has_one():
    auto = load_config([]).learner
    assert learner_placement(auto, cluster_gpus=0) == LearnerPlacement("cpu", auto.num_cpus, 0.0)
    assert learner_placement(auto, cluster_gpus=2) == LearnerPlacement("cuda", auto.num_cpus, 1.0)
    cpu = load_config([], ["learner.device=cpu"]).learner
    assert learner_placement(cpu, cluster_gpus=2).num_gpus == 0.0
    with pytest.raises(ValueError, match="learner.device"):
        learner_placement(load_config([], ["learner.device=cuda"]).learner, cluster_gpus=0)


def test_learner_threads_follow_its_cpus_unless_set():
    assert learner_placement(load_config([], ["learner.num_cpus=2"]).learner, cluster_gpus=0).num_threads == 2
    assert learner_placement(load_config([], ["learner.num_cpus=0.5"]).learner, cluster_gpus=0).num_threads == 1
    two_on_one = learner_placement(load_config([], ["learner.num_cpus=1", "learner.num_threads=2"]).learner, cluster_gpus=0)
    assert (two_on_one.num_cpus, two_on_one.num_threads) == (1, 2)
    with pytest.raises(ConfigError, match="learner.num_threads"):
        load_config([], ["learner.num_threads=0"])


def test_actors_that_ask_for_more_cpus_than_the_cluster_has_are_refused():
    cfg = load_config([], ["learner.num_cpus=2", "ray.num_workers=2", "ray.worker_num_cpus=0.5"])
    placement = learner_placement(cfg.learner, cluster_gpus=0)
    check_cpus_fit(ClusterInfo("local", "node", None, True, {"CPU": 3.0}), placement, cfg.ray)
    with pytest.raises(ConfigError, match=r"'learner.num_cpus' \(2\) .* reserve 3 CPUs, but the Ray cluster has 2"):
        check_cpus_fit(ClusterInfo("local", "node", None, True, {"CPU": 2.0}), placement, cfg.ray)


def test_dreamer_parts_name_a_missing_tokenizer_checkpoint(tmp_path):
    with pytest.raises(MissingStageOutput, match=r"tokenizer[/\\]checkpoint.pt not found: the dreamer stage needs"):
        AudioDreamerParts.from_run(tiny_config(tmp_path), tmp_path)


def test_worker_and_learner_in_one_process(tmp_path):
    """Data flows worker -> replay -> learner and weights flow back, without Ray."""
    cfg = tiny_config(tmp_path)
    with_tokenizer(cfg, tmp_path)
    parts = AudioDreamerParts.from_run(cfg, tmp_path)
    replay = ReplayBuffer(5000, parts.tokens_per_step, parts.vocab_size, parts.n_actions)
    coordinator = Coordinator()
    ratio = TrainRatio(4, 8, 8.0, 64)
    worker = EnvWorker(WorkerSettings(0, 4, seed=1, sync_every=4, max_env_steps=96), LocalHandle(replay), LocalHandle(coordinator), parts)
    summary = worker.run()
    size, added = replay.counts()
    assert summary["env_steps"] >= 96 and 0 < size == added <= summary["env_steps"]
    assert coordinator.env_steps == added
    learner = Learner(parts, LearnerSettings(4, 8, publish_every=2, ratio=ratio, prefetch=False, distributed=False), LocalHandle(replay), LocalHandle(coordinator))
    result = learner.train(3)
    assert result["step"] == 3 and np.isfinite(result["loss_model"]) and np.isfinite(result["loss_actor"])
    assert coordinator.version == 2 and coordinator.learner_step == 3
    # The time budget is kept inside a call, even while the train ratio holds the learner
    # waiting for data no worker is collecting (without the deadline this call never returns).
    started = time.perf_counter()
    stopped = learner.train(10_000, seconds=1.0)
    assert 0 <= stopped["updates"] < 10_000 and time.perf_counter() - started < 4.0
    assert learner.train(5, seconds=0.0)["updates"] == 0
    worker2 = EnvWorker(WorkerSettings(1, 4, seed=2, sync_every=4, max_env_steps=32), LocalHandle(replay), LocalHandle(coordinator), parts)
    worker2.run()
    assert worker2.version == 2 and type(worker2.policy).__name__ == "AgentPolicy"
    assert coordinator.drain().policy_versions == {0: -1, 1: 2}
    # The driver's stop request reaches a running `train` in the coordinator's reply to the
    # learner's step report; in-process the reply is at once, so it stops after that update.
    asking = StopAtStep(stop_at=2)
    stopping = Learner(parts, LearnerSettings(4, 8, publish_every=100, ratio=TrainRatio(4, 8, 1e9, 0), prefetch=False, distributed=False), LocalHandle(replay), LocalHandle(asking))
    assert stopping.train(50)["updates"] == 2 and asking.learner_step == 2
    assert stopping.train(5)["updates"] == 0  # the run is ending: later calls return at once


class StopAtStep(Coordinator):
    """A coordinator whose driver asks the learner to stop once it reports update `stop_at`."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at = stop_at

    def set_learner_step(self, step: int) -> bool:
        if step >= self.stop_at:
            self.request_learner_stop()
        return super().set_learner_step(step)


# -- on a real local Ray -------------------------------------------------------------------


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "dreamer" / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished_stage(ray_session, tmp_path_factory):
    """One whole dreamer stage on the real local Ray: 12 updates, rows every 4, checkpoint at 8 and 12.
    Codebook-tied, so the tokenizer's codes travel from the parts to the learner and, in the
    published weights, to the workers' policies."""
    root = tmp_path_factory.mktemp("stage")
    run_dir = root / "run"
    cfg = tiny_config(run_dir, "dreamer.codebook_tied=true")
    with_tokenizer(cfg, run_dir)
    tracker = Tracker.start(run_dir, f"sqlite:///{root / 'mlflow.db'}", "test", "dreamer-stage")
    dreamer_stage(cfg, run_dir, tracker)
    return cfg, run_dir, tracker


def test_stage_on_ray_streams_data_to_the_learner_and_weights_back(finished_stage):
    cfg, run_dir, tracker = finished_stage
    rows = read_rows(run_dir)
    assert [r["step"] for r in rows] == [4, 8, 12]
    for row in rows:
        assert set(REQUIRED_KEYS) <= set(row)
        assert row["timer_train_model_s"] > 0 and row["timer_sample_s"] >= 0
    env_steps = [r["env_steps"] for r in rows]
    assert env_steps == sorted(env_steps) and env_steps[0] >= cfg.dreamer.prefill_steps
    assert all(np.isfinite(r["loss_model"]) and np.isfinite(r["loss_actor"]) for r in rows)
    # the learner never ran ahead of the train ratio: updates * B * T / (env_steps - prefill) <= ratio
    for row in rows:
        assert (row["step"] - 1) * 4 * 8 <= cfg.dreamer.train_ratio * (row["env_steps"] - cfg.dreamer.prefill_steps)
    # ...nor did the workers run far ahead of the learner: they wait, at each sync, while they are ahead
    # by more than the margin (one sync round of both workers); overshoot: one sync interval plus
    # the episodes still open at the previous sync (Complete-v0 episodes last at most 10 steps), per worker
    margin, overshoot = 2 * 4 * 4, 2 * (4 * 4 + 4 * 10)
    for row in rows:
        assert row["env_steps"] <= cfg.dreamer.prefill_steps + row["step"] * 4 + margin + overshoot
    # weights came back: by the last row every worker acts with published weights, and recent ones
    assert rows[-1]["policy_lag"] is not None and 0 <= rows[-1]["policy_lag"] <= 4 * cfg.dreamer.publish_every
    assert rows[-1]["replay_steps"] > 0 and sum(r["episodes"] for r in rows) > 0
    times = [r["time_s"] for r in rows]  # wall clock of the training, for the compare stage
    assert 0 < times[0] and times == sorted(times) and len(set(times)) == len(times)

    state = load_checkpoint(run_dir / "dreamer" / "checkpoint.pt")  # weights_only=True
    assert state["step"] == 12 and state["env_steps"] >= rows[-1]["env_steps"]
    codebook = Tokenizer.load(run_dir / "tokenizer" / "checkpoint.pt").quantizer.normalized_codebook()
    assert state["world_model"]["spec"]["code_dim"] == codebook.shape[1]
    assert torch.allclose(state["world_model"]["model"]["encoder.codebook"], codebook)
    assert set(state) >= {"world_model", "actor_critic", "fingerprint", "policy_version"}
    assert "optimizer" in state["world_model"] and "actor_optimizer" in state["actor_critic"]
    assert sorted(p.name for p in (run_dir / "replay").glob("chunk-*.npz"))

    history = tracker._client().get_metric_history(tracker.run_id, "loss_model")
    assert [m.step for m in history] == [4, 8, 12]
    artifacts = [a.path for a in tracker._client().list_artifacts(tracker.run_id, "dreamer")]
    assert "dreamer/metrics.jsonl" in artifacts


def test_the_learner_actor_stops_inside_a_train_call_when_the_driver_asks(finished_stage, tmp_path):
    """The learner actor runs one call at a time, on its main thread (torch's threads run
    slower on a pool thread), so the driver's stop request goes through the coordinator: a
    long `train` returns within two updates of it."""
    import ray

    cfg, run_dir, _ = finished_stage
    parts = AudioDreamerParts.from_run(cfg, run_dir)
    store = tmp_path / "replay"
    shutil.copytree(run_dir / "replay", store)
    node = driver_node_id()
    replay = start_replay(
        "stop-test-replay", node, capacity=cfg.dreamer.replay_capacity, tokens_per_step=parts.tokens_per_step, vocab_size=parts.vocab_size,
        n_actions=parts.n_actions, directory=str(store), fingerprint=json.loads((store / "meta.json").read_text())["fingerprint"], seed=0,
    )
    coordinator = start_coordinator("stop-test-coordinator", node)
    never_waits = TrainRatio(cfg.dreamer.batch_size, cfg.dreamer.seq_len, train_ratio=1e9, prefill_steps=0)
    settings = LearnerSettings(cfg.dreamer.batch_size, cfg.dreamer.seq_len, publish_every=100, ratio=never_waits, seed=0)
    learner = start_learner("stop-test-learner", learner_placement(cfg.learner, cluster_gpus=0), parts=Shared(parts), settings=settings, replay=replay, coordinator=coordinator)
    try:
        pending = learner.train.remote(100_000)
        deadline = time.monotonic() + 120
        while ray.get(coordinator.status.remote())["learner_step"] < 3:
            assert time.monotonic() < deadline, "the learner did not start training"
            time.sleep(0.02)
        ray.get(coordinator.request_learner_stop.remote())
        asked_at = ray.get(coordinator.status.remote())["learner_step"]
        result = ray.get(pending, timeout=60)
        assert asked_at <= result["step"] <= asked_at + 2 and result["updates"] == result["step"]
        assert ray.get(learner.train.remote(5), timeout=60)["updates"] == 0
        assert ray.get(learner.checkpoint_state.remote())["step"] == result["step"]
    finally:
        for handle in (learner, coordinator, replay):
            kill_quietly(handle)


def test_a_killed_worker_is_restarted_and_a_rerun_resumes_where_it_stopped(finished_stage, tmp_path):
    """Resume the finished run for 28 more updates (which need new data), killing a worker actor at the first row."""
    import ray

    cfg, finished_dir, _ = finished_stage
    run_dir = tmp_path / "run"
    shutil.copytree(finished_dir, run_dir)
    before = json.loads((run_dir / "dreamer" / "summary.json").read_text())
    longer = tiny_config(run_dir, "dreamer.codebook_tied=true", "dreamer.train_steps=40")  # the finished stage's config, longer
    killed = []

    def kill_a_worker(row, run):
        if not killed:
            ray.kill(run.workers[0], no_restart=False)
            killed.append(row["step"])

    summary = DreamerRun(longer, run_dir, Tracker.disabled(), AudioDreamerParts.from_run(longer, run_dir), on_row=kill_a_worker).run()
    assert killed == [16]
    assert summary.worker_restarts >= 1 and summary.step == 40
    assert summary.resumed_from_step == 12
    assert summary.env_steps > before["env_steps"]
    rows = read_rows(run_dir)
    assert [r["step"] for r in rows] == list(range(4, 41, 4))
    assert rows[3]["env_steps"] >= before["env_steps"]
    times = [r["time_s"] for r in rows]
    assert times == sorted(times) and rows[3]["time_s"] > rows[2]["time_s"]  # the clock carries on across the resume


def test_runtime_settings_and_an_older_fingerprint_keep_a_run_resumable(finished_stage, tmp_path):
    """Threads, device, worker processes and Griffin-Lim settings are left out of the fingerprint; a checkpoint and
    replay stamped the way runs made before that were (runtime keys hashed) still resume."""
    from audiodream.dreamer.checkpoint import LATER_RESUME_KEYS, RESUME_KEYS, resume_fingerprint, save_checkpoint
    from audiodream.pipeline.stages import fingerprint

    cfg, finished_dir, _ = finished_stage
    run_dir = tmp_path / "run"
    shutil.copytree(finished_dir, run_dir)
    resumed = tiny_config(run_dir, "dreamer.codebook_tied=true", "dreamer.train_steps=16")
    legacy = fingerprint(resumed, RESUME_KEYS, LATER_RESUME_KEYS, left_out=())
    assert legacy != resume_fingerprint(resumed)
    checkpoint_path = run_dir / "dreamer" / "checkpoint.pt"
    save_checkpoint(checkpoint_path, {**load_checkpoint(checkpoint_path), "fingerprint": legacy})
    meta_path = run_dir / "replay" / "meta.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "fingerprint": legacy}))
    oldest_chunk = min((run_dir / "replay").glob("chunk-*.npz"))
    oldest_bytes = oldest_chunk.read_bytes()

    summary = DreamerRun(resumed, run_dir, Tracker.disabled(), AudioDreamerParts.from_run(resumed, run_dir)).run()
    assert summary.resumed_from_step == 12 and summary.step == 16
    assert json.loads(meta_path.read_text())["fingerprint"] == resume_fingerprint(resumed)  # adopted, not set aside
    assert oldest_chunk.read_bytes() == oldest_bytes  # the stored steps stay where they were
    assert load_checkpoint(checkpoint_path)["fingerprint"] == resume_fingerprint(resumed)
    assert not list(run_dir.glob("*.stale-*"))  # nothing set aside

    elsewhere = tiny_config(run_dir, "dreamer.codebook_tied=true", "dreamer.train_steps=20", "tokenizer.num_threads=3",
                            "tokenizer.device=cpu", "data.num_workers=1", "features.griffin_lim_iters=8")
    assert resume_fingerprint(elsewhere) == resume_fingerprint(resumed)
    summary = DreamerRun(elsewhere, run_dir, Tracker.disabled(), AudioDreamerParts.from_run(elsewhere, run_dir)).run()
    assert summary.resumed_from_step == 16 and summary.step == 20
    retrained = tiny_config(run_dir, "dreamer.codebook_tied=true", "tokenizer.steps=7")
    assert resume_fingerprint(retrained) not in (resume_fingerprint(resumed), legacy)  # a real tokenizer change still counts


def test_a_spent_time_budget_ends_training_before_train_steps(finished_stage, tmp_path):
    """Resume the finished run with more updates to do but a budget its clock has already spent."""
    cfg, finished_dir, _ = finished_stage
    run_dir = tmp_path / "run"
    shutil.copytree(finished_dir, run_dir)
    assert json.loads((run_dir / "dreamer" / "summary.json").read_text())["stopped_by"] == "train_steps"
    spent = read_rows(run_dir)[-1]["time_s"]
    budget = tiny_config(run_dir, "dreamer.codebook_tied=true", "dreamer.train_steps=40", f"dreamer.train_seconds={spent}")
    summary = DreamerRun(budget, run_dir, Tracker.disabled(), AudioDreamerParts.from_run(budget, run_dir)).run()
    assert summary.step == 12 and summary.resumed_from_step == 12 and summary.stopped_by == "train_seconds"
    assert [r["step"] for r in read_rows(run_dir)] == [4, 8, 12]
    assert json.loads((run_dir / "dreamer" / "summary.json").read_text())["stopped_by"] == "train_seconds"


def test_a_launch_deadline_counts_the_stages_before_training(finished_stage, tmp_path):
    """dreamer.train_until_s is a deadline on the launch: one that began long enough ago (the
    stages before training took the time) trains no further, though its training clock has time left."""
    cfg, finished_dir, _ = finished_stage
    run_dir = tmp_path / "run"
    shutil.copytree(finished_dir, run_dir)
    spent = read_rows(run_dir)[-1]["time_s"]
    deadline = tiny_config(
        run_dir, "dreamer.codebook_tied=true", "dreamer.train_steps=40", f"dreamer.train_seconds={spent + 600}", "dreamer.train_until_s=300"
    )
    summary = DreamerRun(deadline, run_dir, Tracker.disabled(), AudioDreamerParts.from_run(deadline, run_dir), launch_started=time.perf_counter() - 400).run()
    assert summary.step == 12 and summary.stopped_by == "train_until_s"
    assert json.loads((run_dir / "dreamer" / "summary.json").read_text())["stopped_by"] == "train_until_s"


@pytest.mark.parametrize("key", ["train_seconds", "train_until_s"])
@pytest.mark.parametrize("bad", ["0", "-5", "true", "soon"])
def test_a_bad_time_budget_names_its_key(key, bad, tmp_path):
    with pytest.raises(ValueError, match=f"dreamer.{key}"):
        validate(tiny_config(tmp_path, f"dreamer.{key}={bad}"))


def test_a_checkpoint_the_models_cannot_load_is_set_aside_not_crashed_on(finished_stage, tmp_path):
    """Same config fingerprint, but written by other model code (here: a parameter missing)."""
    cfg, finished_dir, _ = finished_stage
    run_dir = tmp_path / "run"
    shutil.copytree(finished_dir, run_dir)
    run = DreamerRun(cfg, run_dir, Tracker.disabled(), AudioDreamerParts.from_run(cfg, run_dir))
    assert run._resume_state() is not None  # the finished stage's own checkpoint fits
    path = run_dir / "dreamer" / "checkpoint.pt"
    state = load_checkpoint(path)
    state["world_model"]["model"].pop(next(iter(state["world_model"]["model"])))
    torch.save(state, path)
    assert run._resume_state() is None
    assert not path.exists() and len(list(run_dir.glob("dreamer.stale-*"))) == 1
    assert (run_dir / "replay" / "meta.json").is_file()  # the replay's tokens are still good: kept
