"""The model-free PPO baseline: its recurrent token network, RLlib module and stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from audiodream.baseline.network import TokenRecurrentNet
from audiodream.config import load_config
from audiodream.config.schema import FeaturesConfig
from audiodream.tokenizer.model import Tokenizer, TokenizerArchitecture
from audiodream.tracking import Tracker


def test_network_remembers_earlier_steps_and_is_causal() -> None:
    torch.manual_seed(0)
    net = TokenRecurrentNet(codebook_size=1024, tokens_per_step=48, n_actions=24, embed_dim=8, hidden=32)
    tokens = torch.randint(0, 1024, (2, 5, 48))
    logits, values, state = net(tokens, net.initial_state(2))
    assert logits.shape == (2, 5, 24) and values.shape == (2, 5) and state.shape == (2, 32)
    changed = tokens.clone()
    changed[:, 0] = torch.randint(0, 1024, (2, 48))
    logits_changed, _, _ = net(changed, net.initial_state(2))
    assert not torch.allclose(logits[:, 4], logits_changed[:, 4])  # step 0 still matters at step 4
    later = tokens.clone()
    later[:, 3:] = torch.randint(0, 1024, (2, 2, 48))
    logits_later, _, _ = net(later, net.initial_state(2))
    assert torch.allclose(logits[:, :3], logits_later[:, :3])  # the future never leaks back


def test_rl_module_step_by_step_equals_whole_sequence() -> None:
    """Sampling runs one step at a time with carried state; training runs whole sequences."""
    from ray.rllib.core.columns import Columns

    from audiodream.baseline.rl_module import TokenRecurrentPPOModule

    torch.manual_seed(0)
    module = TokenRecurrentPPOModule(
        observation_space=spaces.MultiDiscrete(np.full(48, 1024)),
        action_space=spaces.Discrete(24),
        model_config={"hidden": 32, "embed_dim": 8},
    )
    tokens = torch.randint(0, 1024, (3, 6, 48))
    h0 = torch.from_numpy(np.stack([module.get_initial_state()["h"]] * 3))
    whole = module.forward_train({Columns.OBS: tokens, Columns.STATE_IN: {"h": h0}})
    values = module.compute_values({Columns.OBS: tokens, Columns.STATE_IN: {"h": h0}})
    assert whole[Columns.ACTION_DIST_INPUTS].shape == (3, 6, 24) and values.shape == (3, 6)
    state, stepwise = {"h": h0}, []
    for t in range(6):
        out = module.forward_inference({Columns.OBS: tokens[:, t : t + 1], Columns.STATE_IN: state})
        stepwise.append(out[Columns.ACTION_DIST_INPUTS])
        state = out[Columns.STATE_OUT]
    assert torch.allclose(torch.cat(stepwise, dim=1), whole[Columns.ACTION_DIST_INPUTS], atol=1e-5)


def _tiny_tokenizer(run_dir: Path) -> None:
    torch.manual_seed(0)
    arch = TokenizerArchitecture(
        n_mels=80, chunk_frames=16, downsample=4, groups=12, code_dim=8, codebook_size=1024, hidden=32, blocks=1
    )
    Tokenizer(arch, FeaturesConfig()).save(run_dir / "tokenizer" / "checkpoint.pt")


def test_baseline_stage_logs_return_against_env_steps(tmp_path: Path, ray_session, mlflow_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from audiodream.baseline.stage import baseline_stage

    run_dir = tmp_path / "run"
    _tiny_tokenizer(run_dir)
    cfg = load_config(
        [],
        [
            f"run.dir={run_dir}",
            "env.id=audiodream/Complete-v0",
            "env.kwargs={voices: 2}",
            "env.num_envs=2",
            "baseline.env_steps=240",
            "baseline.train_batch_size=120",
            "baseline.minibatch_size=60",
            "baseline.num_epochs=1",
            "baseline.num_env_runners=1",
            "baseline.hidden=32",
        ],
    )
    tracker = Tracker.start(run_dir, mlflow_uri, "test-baseline", "baseline")
    baseline_stage(cfg, run_dir, tracker)

    rows = [json.loads(line) for line in (run_dir / "baseline" / "metrics.jsonl").read_text().splitlines()]
    steps = [row["env_steps"] for row in rows]
    assert len(rows) >= 2 and steps == sorted(set(steps)) and steps[-1] >= 240
    summary = json.loads((run_dir / "baseline" / "summary.json").read_text())
    assert summary["optimal_return"] > summary["blind_return"] > summary["random_return"] > 0
    returns = [row["return_mean"] for row in rows if row["return_mean"] is not None]
    assert returns and all(0.0 <= r <= 3.0 for r in returns)  # 3 answers, each a probability
    assert summary["return_mean"] == rows[-1]["return_mean"]
    history = MlflowClient(mlflow_uri).get_metric_history(tracker.run_id, "baseline.env_steps")
    assert [int(m.value) for m in history] == steps


def test_baseline_stage_needs_the_tokenizer(tmp_path: Path) -> None:
    from audiodream.baseline.stage import train_baseline

    with pytest.raises(FileNotFoundError, match="run.stages"):
        train_baseline(load_config([]), tmp_path, Tracker.disabled())
    _tiny_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="baseline.algo"):
        train_baseline(load_config([], ["baseline.algo=sac"]), tmp_path, Tracker.disabled())
