"""The compare stage: results from the agents' metrics files, the env-steps check, RLlib DreamerV3."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audiodream.compare.results import (
    CompareError,
    assemble,
    check_env_steps,
    final_return,
    curve_from_rows,
    plot_learning_curves,
)
from audiodream.config import load_config
from audiodream.config.schema import FeaturesConfig
from audiodream.errors import UserFacingError
from audiodream.tokenizer.model import Tokenizer, TokenizerArchitecture
from audiodream.tracking import Tracker

REFERENCES = {"optimal_return": 2.27, "random_return": 0.125, "blind_return": 1.0}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def fake_agent_files(run_dir: Path, dreamer_steps: int = 1000, ppo_steps: int = 1000) -> None:
    """Metrics files as the dreamer, eval and baseline stages write them (only the keys compare reads, plus some)."""
    dreamer = [
        {"step": 50 * (i + 1), "env_steps": round(s * dreamer_steps), "time_s": 10.0 * (i + 1), "return_mean": r, "episodes": e, "loss_model": 1.0}
        for i, (s, r, e) in enumerate(
            [(0.2, None, 0), (0.4, 0.2, 20), (0.6, 0.5, 20), (0.8, 0.8, 20), (0.95, 1.0, 10), (1.0, 2.0, 30)]
        )
    ]
    write_jsonl(run_dir / "dreamer" / "metrics.jsonl", dreamer)
    (run_dir / "eval").mkdir(parents=True, exist_ok=True)
    (run_dir / "eval" / "metrics.json").write_text(json.dumps({"return_mean": 1.9, "ce_by_horizon": {}}))
    ppo = [
        {"iteration": i + 1, "env_steps": s, "time_s": 5.0 * (i + 1), "return_mean": r, "episodes": 40, "loss_value": 0.1}
        for i, (s, r) in enumerate([(ppo_steps // 2, 0.3), (ppo_steps, 0.6)])
    ]
    write_jsonl(run_dir / "baseline" / "metrics.jsonl", ppo)


def test_compare_configs_run_the_main_jobs_agent_against_both_baselines_at_the_same_env_steps() -> None:
    main = load_config(["dreamer_audio"])
    for name, env_id in (("compare_complete", "audiodream/Complete-v0"), ("compare_echo", "audiodream/Echo-v0")):
        cfg = load_config([name])
        assert cfg.env.id == env_id
        # our agent as in the main job, with only the budget (updates, ratio, prefill, checkpoints) cut to the shared env steps
        budget = {"train_steps", "train_ratio", "prefill_steps", "checkpoint_every"}
        differing = {key for key, value in vars(cfg.dreamer).items() if getattr(main.dreamer, key) != value}
        assert differing <= budget, differing
        assert cfg.run.stages == ["data", "tokenizer", "baseline", "dreamer", "eval", "compare"]
        assert cfg.baseline.env_steps == cfg.compare.env_steps and cfg.compare.agents == ["dreamer", "ppo", "dreamerv3"]
        # the dreamer stage collects about prefill + updates * B * T / ratio env steps (plus what workers run ahead)
        d = cfg.dreamer
        expected = d.prefill_steps + d.train_steps * d.batch_size * d.seq_len / d.train_ratio
        assert abs(expected - cfg.compare.env_steps) <= cfg.compare.env_steps_tolerance * cfg.compare.env_steps


def test_results_and_plot_from_the_agents_metrics_files(tmp_path: Path) -> None:
    import matplotlib.image

    fake_agent_files(tmp_path)
    v3_rows = [{"iteration": 1, "env_steps": 600, "time_s": 90.0, "return_mean": 0.1, "episodes": 50}, {"iteration": 2, "env_steps": 1010, "time_s": 200.0, "return_mean": 0.4, "episodes": 40}]
    write_jsonl(tmp_path / "compare" / "dreamerv3_metrics.jsonl", v3_rows)
    results = assemble(tmp_path, ["dreamer", "ppo", "dreamerv3"], "audiodream/Complete-v0", 1000, 0.1, 0.1, REFERENCES)

    ours, ppo, v3 = (results["algorithms"][k] for k in ("audiodream", "ppo", "dreamerv3"))
    # last 10% of 1000 env steps: the rows at 950 (1.0 x 10 episodes) and 1000 (2.0 x 30 episodes)
    assert ours["final_return"] == pytest.approx((1.0 * 10 + 2.0 * 30) / 40)
    assert ours["greedy_return"] == 1.9 and ours["wall_s"] == 60.0 and ours["env_steps"] == 1000
    assert [p["env_steps"] for p in ours["curve"]] == [200, 400, 600, 800, 950, 1000]
    assert ours["curve"][0]["return_mean"] is None and set(ours["curve"][0]) == {"env_steps", "time_s", "return_mean", "episodes"}
    assert ppo["final_return"] == pytest.approx(0.6) and ppo["greedy_return"] is None and ppo["wall_s"] == 10.0
    assert v3["final_return"] == pytest.approx(0.4) and v3["wall_s"] == 200.0
    assert results["checks"] == {"audiodream_beats_ppo": True, "audiodream_matches_dreamerv3": True, "audiodream_faster_than_dreamerv3": True}
    assert results["optimal_return"] == 2.27 and results["random_return"] == 0.125 and results["env_steps"] == 1000
    json.dumps(results)  # results.json must be plain JSON

    png = plot_learning_curves(results, tmp_path / "compare" / "learning_curves.png")
    image = matplotlib.image.imread(png)
    assert image.shape[0] == 450 and image.shape[1] == 1200  # two panels side by side, 12 x 4.5 in at 100 dpi
    assert image[..., :3].std() > 0.05  # something is drawn


def test_final_return_is_the_last_fraction_of_env_steps() -> None:
    curve = curve_from_rows([{"env_steps": s, "return_mean": r, "episodes": 1} for s, r in [(100, 0.0), (500, 1.0), (900, 2.0), (1000, 4.0)]])
    assert final_return(curve, 1000, 0.1) == pytest.approx(2.0 + 1.0)  # rows at 900 and 1000, equal weight
    assert final_return(curve, 1000, 0.6) == pytest.approx((1.0 + 2.0 + 4.0) / 3)
    sparse = curve_from_rows([{"env_steps": 100, "return_mean": 0.5}, {"env_steps": 1000, "return_mean": None}])
    assert final_return(sparse, 1000, 0.1) == 0.5  # no return in the window: the last row that has one


def test_agents_trained_for_other_env_steps_are_an_error_that_says_what_to_set(tmp_path: Path) -> None:
    check_env_steps("dreamer", 1090, 1000, 0.1)  # within 10%: fine
    with pytest.raises(CompareError, match=r"compare.env_steps=700.*dreamer.train_steps") as err:
        check_env_steps("dreamer", 700, 1000, 0.1)
    assert isinstance(err.value, UserFacingError)  # launch.py exits 2 with the message
    with pytest.raises(CompareError, match=r"baseline.env_steps=1000"):
        check_env_steps("ppo", 2000, 1000, 0.1)

    fake_agent_files(tmp_path, ppo_steps=2000)
    with pytest.raises(CompareError, match=r"RLlib PPO .* 2000 env steps"):
        assemble(tmp_path, ["dreamer", "ppo"], "audiodream/Complete-v0", 1000, 0.1, 0.1, REFERENCES)
    # the stage checks before it trains DreamerV3 (minutes): nothing of DreamerV3's is written
    from audiodream.compare.stage import compare_stage

    cfg = load_config([], [f"run.dir={tmp_path}", "compare.env_steps=1000"])
    with pytest.raises(CompareError, match="baseline.env_steps"):
        compare_stage(cfg, tmp_path, Tracker.disabled())
    assert not (tmp_path / "compare" / "dreamerv3_metrics.jsonl").exists()
    (tmp_path / "baseline" / "metrics.jsonl").unlink()
    with pytest.raises(CompareError, match="add baseline to run.stages"):
        compare_stage(cfg, tmp_path, Tracker.disabled())
    with pytest.raises(CompareError, match="compare.agents"):
        assemble(tmp_path, ["dreamer", "sac"], "audiodream/Complete-v0", 1000, 0.1, 0.1, REFERENCES)


def tiny_tokenizer(run_dir: Path) -> Path:
    torch.manual_seed(0)
    arch = TokenizerArchitecture(n_mels=80, chunk_frames=16, downsample=4, groups=12, code_dim=4, codebook_size=1024, hidden=32, blocks=1)
    return Tokenizer(arch, FeaturesConfig()).save(run_dir / "tokenizer" / "checkpoint.pt")


def test_dreamerv3_sees_code_vectors_and_every_episode_return_is_logged(tmp_path: Path) -> None:
    from audiodream.compare.dreamerv3 import drain_returns, make_code_vector_env
    from envs.tokenize import load_tokenizer

    path = tiny_tokenizer(tmp_path)
    cfg = load_config([], ["env.id=audiodream/Complete-v0", "env.kwargs={voices: 2}"])
    env = make_code_vector_env(cfg, str(path), None, "test-log", 2)
    tokenizer = load_tokenizer(path, cfg.features)
    codebook = tokenizer.quantizer.normalized_codebook().detach().numpy()
    assert env.single_observation_space.shape == (48 * 4,)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 192) and obs.dtype == np.float32 and np.abs(obs).max() <= 1.0 + 1e-6
    rows = obs.reshape(2, 48, 4)
    nearest = np.abs(rows[:, :, None, :] - codebook[None, None]).sum(-1).min(-1)
    assert nearest.max() < 1e-5  # every 4-float group is exactly one code

    rng = np.random.default_rng(0)
    sums, expected = np.zeros(2), []
    for _ in range(40):
        _, reward, terminated, truncated, _ = env.step(rng.integers(0, 24, size=2))
        sums += reward
        for i in np.flatnonzero(np.logical_or(terminated, truncated)):
            expected.append(sums[i])
            sums[i] = 0.0
    env.close()
    logged = drain_returns("test-log")
    assert len(logged) >= 4 and logged == pytest.approx(expected)
    assert drain_returns("test-log") == []


def test_compare_stage_trains_rllib_dreamerv3_and_writes_results(tmp_path: Path, ray_session, mlflow_uri: str) -> None:
    """A real (tiny) RLlib DreamerV3 run on the real local Ray, then the whole stage's outputs."""
    from mlflow.tracking import MlflowClient

    from audiodream.compare.stage import compare_stage

    run_dir = tmp_path / "run"
    tiny_tokenizer(run_dir)
    fake_agent_files(run_dir, dreamer_steps=96, ppo_steps=96)
    cfg = load_config(
        [],
        [
            f"run.dir={run_dir}",
            "run.progress=false",
            "env.id=audiodream/Complete-v0",
            "env.kwargs={voices: 2}",
            "env.num_envs=2",
            "compare.env_steps=96",
            "compare.dreamerv3_model_size=nano",
            "compare.dreamerv3_batch_size=2",
            "compare.dreamerv3_seq_len=8",
            "compare.dreamerv3_training_ratio=1.0",
            "compare.dreamerv3_horizon=3",
            "compare.dreamerv3_log_every=32",
        ],
    )
    tracker = Tracker.start(run_dir, mlflow_uri, "test-compare", "compare")
    compare_stage(cfg, run_dir, tracker)

    rows = [json.loads(line) for line in (run_dir / "compare" / "dreamerv3_metrics.jsonl").read_text().splitlines()]
    steps = [row["env_steps"] for row in rows]
    assert len(rows) >= 2 and steps == sorted(set(steps)) and 96 <= steps[-1] <= 96 + 32 + 16
    # the configured ratio holds (RLlib's own pacing would give one 16-step update per 2-step round: ratio 8)
    assert 1.0 <= rows[-1]["training_ratio"] < 1.6
    assert rows[-1]["updates"] >= 1 and all(np.isfinite(row["loss_world_model"]) for row in rows if row["loss_world_model"] is not None)
    assert sum(row["episodes"] for row in rows) >= 96 // 10  # Complete-v0 episodes last 8-10 steps
    assert all(0.0 <= row["return_mean"] <= 3.0 for row in rows if row["return_mean"] is not None)
    times = [row["time_s"] for row in rows]
    assert times == sorted(times) and times[0] > 0

    results = json.loads((run_dir / "compare" / "results.json").read_text())
    assert set(results["algorithms"]) == {"audiodream", "ppo", "dreamerv3"}
    assert results["algorithms"]["dreamerv3"]["env_steps"] == steps[-1]
    assert results["optimal_return"] > results["blind_return"] > results["random_return"] > 0
    assert (run_dir / "compare" / "learning_curves.png").stat().st_size > 10_000
    client = MlflowClient(mlflow_uri)
    history = client.get_metric_history(tracker.run_id, "compare.dreamerv3.return_mean")
    assert [m.step for m in history] == [p["env_steps"] for p in results["algorithms"]["dreamerv3"]["curve"] if p["return_mean"] is not None]
    assert client.get_run(tracker.run_id).data.metrics["compare.audiodream.final_return"] == pytest.approx(results["algorithms"]["audiodream"]["final_return"])
    assert "compare/results.json" in [a.path for a in client.list_artifacts(tracker.run_id, "compare")]
