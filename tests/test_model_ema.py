"""The world model's averaged weights (dreamer.model_ema_decay, model_ema_power, model_ema_start): how they follow the
live weights, survive a checkpoint and a resume, and are what eval loads."""

from __future__ import annotations

import io

import pytest
import torch

from audiodream.config import ConfigError, load_config
from audiodream.config.schema import DreamerConfig
from audiodream.evaluation.trained_run import world_model_from_state
from audiodream.worldmodel import WorldModel, WorldModelTrainer
from audiodream.worldmodel.toy_source import ToySequenceSampler

from tests.test_worldmodel import K, V, A, tiny_source, tiny_spec


def sampler() -> ToySequenceSampler:
    return ToySequenceSampler(tiny_source().episodes(10, 10, 12, seed=1), seed=2)


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def power_recursion(history: list[list[torch.Tensor]], power: float) -> list[torch.Tensor]:
    """EDM2's recursion written out independently of weight_average: the first weights, then
    decay (1 - 1/t)^(power + 1) when the t-th join."""
    averaged = history[0]
    for t, live in enumerate(history[1:], start=2):
        decay = (1.0 - 1.0 / t) ** (power + 1.0)
        averaged = [decay * a + (1 - decay) * w for a, w in zip(averaged, live)]
    return averaged


def through_weights_only_load(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_average_is_the_exponential_average_of_the_weights_after_each_update() -> None:
    torch.manual_seed(0)
    decay = 0.8
    trainer = WorldModelTrainer(WorldModel(tiny_spec()), lr=3e-3, ema_decay=decay)
    batches = sampler()
    expected: list[torch.Tensor] = []
    for update in range(4):
        trainer.train_step(batches.sample(2, 6))
        live = weights(trainer.model)
        expected = live if update == 0 else [decay * e + (1 - decay) * w for e, w in zip(expected, live)]
    averaged = weights(trainer.evaluated_model)
    for got, want in zip(averaged, expected):
        assert torch.allclose(got, want, atol=1e-6)
    assert any(not torch.allclose(a, w) for a, w in zip(averaged, weights(trainer.model))), "the average must lag the live weights"


def test_without_an_average_eval_uses_the_live_weights() -> None:
    trainer = WorldModelTrainer(WorldModel(tiny_spec()))
    trainer.train_step(sampler().sample(2, 6))
    state = through_weights_only_load(trainer.state_dict())
    assert trainer.evaluated_model is trainer.model and state["model_ema"] is None
    loaded = world_model_from_state(state)
    for got, want in zip(weights(loaded), weights(trainer.model)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("average", [{"ema_decay": 0.9}, {"ema_power": 4.0}, {"ema_power": 1.0, "ema_start": 2}])
def test_average_survives_a_checkpoint_resumes_identically_and_is_what_eval_loads(average: dict[str, float]) -> None:
    torch.manual_seed(0)
    batches = sampler()
    trainer = WorldModelTrainer(WorldModel(tiny_spec()), **average)
    for _ in range(3):
        trainer.train_step(batches.sample(2, 6))
    state = through_weights_only_load(trainer.state_dict())
    restored = WorldModelTrainer.from_state_dict(state)
    assert (restored.ema_decay, restored.ema_power, restored.ema_start) == (average.get("ema_decay"), average.get("ema_power"), average.get("ema_start", 0))
    assert int(restored.averaged.n_averaged) == 3
    for got, want in zip(weights(world_model_from_state(state)), weights(trainer.evaluated_model)):
        assert torch.equal(got, want)
    batch = batches.sample(2, 6)
    for t in (trainer, restored):
        torch.manual_seed(5)
        t.train_step(batch)
    for got, want in zip(weights(restored.evaluated_model), weights(trainer.evaluated_model)):
        assert torch.allclose(got, want, atol=1e-6)


def test_switching_the_average_on_when_resuming_starts_it_from_the_loaded_weights() -> None:
    batches = sampler()
    plain = WorldModelTrainer(WorldModel(tiny_spec()))
    plain.train_step(batches.sample(2, 6))
    resumed = WorldModelTrainer(WorldModel(tiny_spec()), ema_decay=0.99)
    resumed.load_state_dict(through_weights_only_load(plain.state_dict()))
    resumed.train_step(batches.sample(2, 6))
    for got, want in zip(weights(resumed.evaluated_model), weights(resumed.model)):
        assert torch.equal(got, want)  # not 0.99 x this trainer's fresh initialisation + 0.01 x the weights


def test_config_takes_the_decay_for_world_model_only_runs() -> None:
    cfg = load_config([], ["dreamer.actor_critic=false", "dreamer.model_ema_decay=0.995"])
    assert cfg.dreamer.model_ema_decay == 0.995
    trainer = WorldModelTrainer.from_config(cfg.dreamer, K, V, A)
    assert trainer.ema_decay == 0.995
    assert WorldModelTrainer.from_config(DreamerConfig(), K, V, A).averaged is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["dreamer.actor_critic=false", "dreamer.model_ema_decay=1.0"], "must lie in \\(0, 1\\)"),
        (["dreamer.actor_critic=true", "dreamer.model_ema_decay=0.99"], "world-model-only runs"),
    ],
)
def test_bad_decay_names_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=f"'dreamer.model_ema_decay'.*{message}"):
        load_config([], overrides)


# ----------------------------------------------------- power-function average (model_ema_power)


def test_power_zero_is_the_plain_mean_and_a_power_weighs_later_updates_more() -> None:
    torch.manual_seed(0)
    batches = sampler()
    runs = {power: WorldModelTrainer(WorldModel(tiny_spec()), lr=3e-3, ema_power=power) for power in (0.0, 2.0)}
    torch.manual_seed(1)
    reference = WorldModelTrainer(WorldModel(tiny_spec()), lr=3e-3)
    for trainer in runs.values():
        trainer.model.load_state_dict(reference.model.state_dict())
    history: list[list[torch.Tensor]] = []
    for _ in range(5):
        batch = batches.sample(2, 6)
        for trainer in (reference, *runs.values()):
            torch.manual_seed(7)
            trainer.train_step(batch)
        history.append(weights(reference.model))
    mean = [torch.stack(ws).mean(0) for ws in zip(*history)]
    for got, want in zip(weights(runs[0.0].evaluated_model), mean):
        assert torch.allclose(got, want, atol=1e-6)
    later = weights(runs[2.0].evaluated_model)
    for got, want in zip(later, power_recursion(history, 2.0)):
        assert torch.allclose(got, want, atol=1e-6)
    last = history[-1]
    assert sum((g - w).norm() for g, w in zip(later, last)) < sum((m - w).norm() for m, w in zip(mean, last)), "power 2 must sit nearer the last weights than the plain mean"


def test_a_start_keeps_the_first_updates_out_of_the_average() -> None:
    torch.manual_seed(0)
    batches = sampler()
    power, start = 1.0, 2
    trainer = WorldModelTrainer(WorldModel(tiny_spec()), lr=3e-3, ema_power=power, ema_start=start)
    history: list[list[torch.Tensor]] = []
    for update in range(1, 6):
        trainer.train_step(batches.sample(2, 6))
        history.append(weights(trainer.model))
        if update <= start + 1:  # up to the start a copy of the live weights; update start + 1 begins the average
            for got, want in zip(weights(trainer.evaluated_model), history[-1]):
                assert torch.equal(got, want)
    # the power recursion counted from the start: update start + 1's weights are its first
    for got, want in zip(weights(trainer.evaluated_model), power_recursion(history[start:], power)):
        assert torch.allclose(got, want, atol=1e-6)
    from_zero = power_recursion(history, power)  # what the same power without a start gives: the first updates weigh in
    assert not all(torch.allclose(g, z, atol=1e-6) for g, z in zip(weights(trainer.evaluated_model), from_zero))


def test_config_takes_the_power_for_world_model_only_runs() -> None:
    cfg = load_config([], ["dreamer.actor_critic=false", "dreamer.model_ema_power=4", "dreamer.model_ema_start=300"])
    trainer = WorldModelTrainer.from_config(cfg.dreamer, K, V, A)
    assert trainer.ema_power == 4.0 and trainer.ema_decay is None and trainer.averaged is not None
    assert trainer.ema_start == 300


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["dreamer.actor_critic=false", "dreamer.model_ema_power=1", "dreamer.model_ema_start=-5"], "must be >= 0"),
        (["dreamer.actor_critic=false", "dreamer.model_ema_decay=0.99", "dreamer.model_ema_start=500"], "set dreamer.model_ema_power too"),
        (["dreamer.actor_critic=false", "dreamer.model_ema_power=1", "dreamer.model_ema_start=5.5"], "expected an integer"),
    ],
)
def test_bad_start_names_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=f"'dreamer.model_ema_start'.*{message}"):
        load_config([], overrides)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["dreamer.actor_critic=false", "dreamer.model_ema_power=-1"], "must lie in \\[0, 1000\\)"),
        (["dreamer.actor_critic=false", "dreamer.model_ema_power=4", "dreamer.model_ema_decay=0.99"], "not both"),
        (["dreamer.actor_critic=true", "dreamer.model_ema_power=4"], "world-model-only runs"),
    ],
)
def test_bad_power_names_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=f"'dreamer.model_ema_power'.*{message}"):
        load_config([], overrides)
