"""The world model's Adam settings (dreamer.lr_model, dreamer.model_adam_beta2): the config's
values reach the optimizer, are saved with it, and win over the checkpoint's on a resume."""

from __future__ import annotations

import pytest
import torch

from audiodream.config import ConfigError, load_config
from audiodream.worldmodel import WorldModel, WorldModelTrainer

from tests.test_model_ema import sampler, through_weights_only_load
from tests.test_worldmodel import K, V, A, tiny_spec


def betas_and_lr(trainer: WorldModelTrainer) -> set[tuple[tuple[float, float], float]]:
    return {(tuple(group["betas"]), group["lr"]) for group in trainer.optimizer.param_groups}


def test_config_beta2_reaches_the_optimizer_and_its_second_moments() -> None:
    cfg = load_config([], ["dreamer.model_adam_beta2=0.99", "dreamer.lr_model=0.002"])
    trainer = WorldModelTrainer.from_config(cfg.dreamer, K, V, A)
    assert betas_and_lr(trainer) == {((0.9, 0.99), 0.002)}
    assert betas_and_lr(WorldModelTrainer.from_config(load_config([], []).dreamer, K, V, A)) == {((0.9, 0.999), 0.003)}
    # After one update Adam's second moment is (1 - beta2) g^2: the decay is the one in use.
    trainer.train_step(sampler().sample(2, 6))
    for param in trainer.model.parameters():
        if param.grad is not None:
            expected = (1 - 0.99) * param.grad.pow(2)
            assert torch.allclose(trainer.optimizer.state[param]["exp_avg_sq"], expected, rtol=1e-5, atol=1e-12)


def test_resume_keeps_the_moments_but_takes_the_configs_lr_and_betas() -> None:
    batches = sampler()
    saved = WorldModelTrainer(WorldModel(tiny_spec()), lr=1e-3, adam_betas=(0.9, 0.999))
    saved.train_step(batches.sample(2, 6))
    state = through_weights_only_load(saved.state_dict())
    assert state["adam_betas"] == [0.9, 0.999]
    resumed = WorldModelTrainer(WorldModel(tiny_spec()), lr=2e-3, adam_betas=(0.9, 0.99))
    resumed.load_state_dict(state)
    assert betas_and_lr(resumed) == {((0.9, 0.99), 2e-3)}  # torch's load_state_dict alone would restore 0.999 and 1e-3
    compared = 0
    for param, saved_param in zip(resumed.model.parameters(), saved.model.parameters()):
        if saved_param in saved.optimizer.state:
            assert torch.equal(resumed.optimizer.state[param]["exp_avg_sq"], saved.optimizer.state[saved_param]["exp_avg_sq"])
            compared += 1
    assert compared > 0
    # A checkpoint alone rebuilds the trainer it was saved from; one saved before the key existed trained at 0.999.
    assert betas_and_lr(WorldModelTrainer.from_state_dict(state)) == {((0.9, 0.999), 1e-3)}
    del state["adam_betas"]
    assert betas_and_lr(WorldModelTrainer.from_state_dict(state)) == {((0.9, 0.999), 1e-3)}


@pytest.mark.parametrize("value", ["1.0", "0.0", "-0.5"])
def test_bad_beta2_names_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match=r"'dreamer.model_adam_beta2'.*must lie in \(0, 1\)"):
        load_config([], [f"dreamer.model_adam_beta2={value}"])
