"""Behaviour of the RSSM world model over tokens: shapes, learning, KL balancing and free
nats, deterministic imagination, resets, evaluation and checkpoints."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from audiodream.config.schema import DreamerConfig
from audiodream.worldmodel import (
    RSSMState,
    WorldModel,
    WorldModelSpec,
    WorldModelTrainer,
    balanced_kl_loss,
    baseline_ce,
    evaluate_world_model,
    fit_baselines,
    spec_from_config,
)
from audiodream.worldmodel.batch import to_sequence_batch
from audiodream.worldmodel.distributions import categorical_kl
from audiodream.worldmodel.losses import transition_reward_loss
from audiodream.worldmodel.networks import sample_tokens
from audiodream.worldmodel.toy_source import ToySequenceSampler, ToyTokenSource

K, V, A = 8, 64, 6


def tiny_spec(**changes: float) -> WorldModelSpec:
    sizes = dict(tokens_per_step=K, vocab_size=V, n_actions=A, token_embed=8, embed=32, deter=32, stoch=4, classes=4, hidden=32, decoder_slot_dim=8)
    sizes.update(changes)
    return WorldModelSpec(**sizes)


def tiny_source() -> ToyTokenSource:
    return ToyTokenSource(n_syllables=6, tokens_per_step=K, vocab_size=V, n_actions=A, n_speakers=2, speaker_slots=1, slot_pool=16, seed=3)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def random_batch(b: int = 3, t: int = 5) -> dict[str, torch.Tensor]:
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return {
        "tokens": torch.randint(0, V, (b, t, K)),
        "actions": torch.randint(0, A, (b, t)),
        "rewards": torch.rand(b, t),
        "terminals": torch.zeros(b, t, dtype=torch.bool),
        "is_first": is_first,
    }


def test_shapes_of_observe_decode_and_imagine() -> None:
    spec = tiny_spec()
    model = WorldModel(spec)
    batch = random_batch(3, 5)
    post = model.observe(batch["tokens"], batch["actions"], batch["is_first"])
    assert post.features.shape == (3, 5, spec.deter + spec.stoch * spec.classes)
    assert post.post_log_probs.shape == post.prior_log_probs.shape == (3, 5, spec.stoch, spec.classes)
    assert torch.allclose(post.z.view(3, 5, spec.stoch, spec.classes).sum(-1), torch.ones(3, 5, spec.stoch))
    assert model.decode(post.features).shape == (3, 5, K, V)
    start = post.states.flatten()
    traj = model.imagine(start, lambda f, g: torch.zeros(f.shape[0], dtype=torch.long), horizon=4, with_tokens=True)
    assert traj.features.shape == (15, 5, spec.feature_dim)
    assert traj.actions.shape == (15, 4) and traj.action_one_hot.shape == (15, 4, A)
    assert traj.rewards.shape == traj.continues.shape == (15, 5)
    assert traj.tokens is not None and traj.tokens.shape == (15, 4, K)
    assert int(traj.tokens.max()) < V
    assert torch.equal(traj.features[:, 0], start.features)


def test_loss_decreases_on_tiny_problem() -> None:
    source = tiny_source()
    sampler = ToySequenceSampler(source.episodes(60, 10, 20, seed=1), seed=2)
    trainer = WorldModelTrainer(WorldModel(tiny_spec()), lr=3e-3)
    losses = [trainer.train_step(sampler.sample(8, 12))["loss_tokens"] for _ in range(40)]
    assert all(math.isfinite(x) for x in losses)
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.7 * first, (first, last)


def test_train_step_reports_the_named_metrics() -> None:
    trainer = WorldModelTrainer(WorldModel(tiny_spec()))
    metrics = trainer.train_step(random_batch())
    for name in ("loss_model", "loss_kl", "loss_tokens", "loss_reward", "loss_cont", "entropy_prior", "entropy_post"):
        assert math.isfinite(metrics[name]), name
    assert metrics["ce_tokens"] == pytest.approx(metrics["loss_tokens"] / K, rel=1e-4)
    assert math.isfinite(metrics["ce_predictive"]) and metrics["ce_predictive"] > 0
    assert trainer.step == 1


def test_predictive_head_never_sees_the_step_it_predicts() -> None:
    """p(tokens_t | h_t) must not depend on tokens_t (else open-loop CE would be a
    reconstruction score), but must depend on earlier steps."""
    model = WorldModel(tiny_spec()).eval()
    batch = random_batch(2, 4)
    target = torch.randint(0, V, (2, K))

    def predictive_at_step_2(tokens: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(5)
        post = model.observe(tokens, batch["actions"], batch["is_first"], generator=generator)
        return model.predictive_log_prob(post.h[:, 2], target)

    reference = predictive_at_step_2(batch["tokens"])
    same_past = batch["tokens"].clone()
    same_past[:, 2:] = torch.randint(0, V, (2, 2, K))
    assert torch.allclose(predictive_at_step_2(same_past), reference)
    other_past = batch["tokens"].clone()
    other_past[:, 1] = (other_past[:, 1] + 1) % V
    assert not torch.allclose(predictive_at_step_2(other_past), reference)


def test_predictive_head_learns_the_next_step_on_a_tiny_problem() -> None:
    source = tiny_source()
    sampler = ToySequenceSampler(source.episodes(60, 10, 20, seed=1), seed=2)
    trainer = WorldModelTrainer(WorldModel(tiny_spec()), lr=3e-3)
    ce = [trainer.train_step(sampler.sample(8, 12))["ce_predictive"] for _ in range(60)]
    assert np.mean(ce[-5:]) < 0.8 * math.log(V), ce[-5:]  # well below knowing nothing (uniform)


def _hand_made_latents(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    post = (torch.randn(2, 3, 4, generator=generator) * scale).log_softmax(-1).requires_grad_()
    prior = (torch.randn(2, 3, 4, generator=generator) * scale).log_softmax(-1).requires_grad_()
    return post, prior


def test_kl_balancing_splits_gradient_between_prior_and_posterior() -> None:
    post, prior = _hand_made_latents(3.0)
    loss = balanced_kl_loss(post, prior, kl_balance=0.8, free_nats=0.0).loss.sum()
    loss.backward()
    grad_post, grad_prior = post.grad.clone(), prior.grad.clone()
    post.grad, prior.grad = None, None
    categorical_kl(post, prior).sum().backward()
    assert torch.allclose(grad_prior, 0.8 * prior.grad, atol=1e-6)
    assert torch.allclose(grad_post, 0.2 * post.grad, atol=1e-6)
    assert float(loss.detach()) == pytest.approx(float(categorical_kl(post, prior).sum().detach()), rel=1e-5)


def test_free_nats_apply_per_step_and_stop_gradients_below() -> None:
    # Step 0: prior close to posterior (KL well under 1 nat); step 1: far apart.
    generator = torch.Generator().manual_seed(2)
    post_logits = torch.randn(2, 3, 4, generator=generator)
    prior_logits = post_logits + torch.randn(2, 3, 4, generator=generator) * torch.tensor([0.1, 3.0]).view(2, 1, 1)
    post = post_logits.log_softmax(-1).requires_grad_()
    prior = prior_logits.log_softmax(-1).requires_grad_()
    kl = categorical_kl(post, prior).detach()
    assert float(kl.min()) < 1.0 < float(kl.max())
    free_nats = 1.0
    balanced = balanced_kl_loss(post, prior, kl_balance=0.8, free_nats=free_nats)
    loss = balanced.loss
    assert torch.allclose(loss, torch.clamp(kl, min=free_nats), atol=1e-6)
    assert torch.allclose(balanced.kl, kl, atol=1e-6) and not balanced.kl.requires_grad  # the metric: unclamped
    loss.sum().backward()
    below = kl < free_nats
    assert torch.all(post.grad[below] == 0) and torch.all(prior.grad[below] == 0)
    assert torch.all(prior.grad[~below].abs().sum(-1) > 0)


def test_imagination_is_deterministic_under_a_fixed_generator() -> None:
    model = WorldModel(tiny_spec())
    batch = random_batch(2, 4)
    start = model.observe(batch["tokens"], batch["actions"], batch["is_first"]).last_state

    def random_policy(features: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randint(0, A, (features.shape[0],), generator=generator)

    def rollout(seed: int) -> tuple[torch.Tensor, ...]:
        traj = model.imagine(start, random_policy, 6, generator=torch.Generator().manual_seed(seed), with_tokens=True)
        return traj.z, traj.tokens, traj.actions

    first, again, other = rollout(7), rollout(7), rollout(8)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], other[1])


def test_state_resets_at_is_first() -> None:
    model = WorldModel(tiny_spec())
    batch = random_batch(2, 6)
    batch["is_first"][:, 3] = True
    changed = {key: value.clone() for key, value in batch.items()}
    changed["tokens"][:, :3] = torch.randint(0, V, (2, 3, K))
    changed["actions"][:, :3] = (batch["actions"][:, :3] + 1) % A

    def observe(data: dict[str, torch.Tensor]) -> torch.Tensor:
        post = model.observe(data["tokens"], data["actions"], data["is_first"], generator=torch.Generator().manual_seed(0))
        return torch.cat([post.features, post.post_log_probs.flatten(-2)], dim=-1)

    base, other = observe(batch), observe(changed)
    assert not torch.allclose(base[:, :3], other[:, :3])
    assert torch.equal(base[:, 3:], other[:, 3:])
    changed["is_first"][:, 3] = False
    batch["is_first"][:, 3] = False
    assert not torch.allclose(observe(batch)[:, 3], observe(changed)[:, 3])


def test_evaluate_returns_all_horizons_with_finite_values() -> None:
    source = tiny_source()
    train, test = source.episodes(20, 12, 16, seed=1), source.episodes(4, 12, 12, seed=2)
    result = evaluate_world_model(WorldModel(tiny_spec()), train, test, context=3, horizons=(1, 2, 4, 8), n_samples=4)
    assert set(result["ce_by_horizon"]) == set(result["ce_by_horizon_sampled"]) == {"1", "2", "4", "8"}
    assert set(result["ce_baselines"]) == {"unigram", "bigram", "repeat"}
    assert set(result["ce_lag_bigram"]) == {"1", "2", "4", "8"}
    tables = [result["ce_by_horizon"], result["ce_by_horizon_sampled"], result["ce_lag_bigram"], *result["ce_baselines"].values()]
    values = [v for table in tables for v in table.values()]
    assert all(v is not None and math.isfinite(v) and v > 0 for v in values)
    assert result["steps_by_horizon"]["8"] == 4


def test_unigram_and_repeat_baselines_match_hand_computed_values() -> None:
    vocab = 4
    train = [{"tokens": np.array([[0, 1], [0, 2], [1, 2]]), "actions": np.zeros(3, dtype=int)}]
    test = [{"tokens": np.array([[0, 1], [0, 3]]), "actions": np.zeros(2, dtype=int)}]
    baselines = fit_baselines(train, vocab, horizons=(1,))
    result = baseline_ce(baselines, test, context=1, horizons=(1,))
    # Slot 0 counts (+1): token0 3/7. Slot 1 counts (+1): token3 1/7. Predicted step is [0, 3].
    expected_unigram = -(math.log(3 / 7) + math.log(1 / 7)) / 2
    assert result["unigram"]["1"] == pytest.approx(expected_unigram)
    # Lag-1 training pairs: slot0 0->0, 0->1; slot1 1->2, 2->2: 2 mismatches of 4, eps = 0.5.
    expected_repeat = -(math.log(0.5) + math.log(0.5 / 3)) / 2
    assert result["repeat"]["1"] == pytest.approx(expected_repeat)


def test_bigram_baseline_propagates_the_smoothed_chain_h_steps() -> None:
    # One slot, one training episode (so the smoothing strength beta stays 1).
    train = [{"tokens": np.array([[0], [1], [0], [1], [2]]), "actions": np.zeros(5, dtype=int)}]
    test = [{"tokens": np.array([[0], [1], [2]]), "actions": np.zeros(3, dtype=int)}]
    baselines = fit_baselines(train, 3, horizons=(1, 2))
    result = baseline_ce(baselines, test, context=1, horizons=(1, 2))
    unigram = np.array([3.0, 3.0, 2.0]) / 8.0  # counts 2, 2, 1, plus one each
    counts = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # 0->1 twice, 1->0, 1->2
    chain = (counts + unigram[None, :]) / (counts.sum(1, keepdims=True) + 1.0)
    assert result["bigram"]["1"] == pytest.approx(-math.log(chain[0, 1]))
    assert result["bigram"]["2"] == pytest.approx(-math.log((chain @ chain)[0, 2]))


def test_checkpoint_round_trips_through_weights_only_load() -> None:
    source = tiny_source()
    sampler = ToySequenceSampler(source.episodes(10, 10, 12, seed=1), seed=2)
    trainer = WorldModelTrainer(WorldModel(tiny_spec()))
    trainer.train_step(sampler.sample(2, 6))
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    buffer.seek(0)
    restored = WorldModelTrainer.from_state_dict(torch.load(buffer, weights_only=True))
    assert restored.spec == trainer.spec and restored.step == 1
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, restored.model.state_dict()[name]), name
    batch = sampler.sample(2, 6)
    torch.manual_seed(5)
    after_original = trainer.train_step(batch)["loss_model"]
    torch.manual_seed(5)
    after_restored = restored.train_step(batch)["loss_model"]
    assert after_restored == pytest.approx(after_original, rel=1e-5)


def test_bad_batches_fail_naming_the_key() -> None:
    trainer = WorldModelTrainer(WorldModel(tiny_spec()))
    batch = random_batch()
    del batch["rewards"]
    with pytest.raises(KeyError, match="rewards"):
        trainer.train_step(batch)
    batch = random_batch()
    batch["tokens"] = batch["tokens"][..., :3]
    with pytest.raises(ValueError, match="tokens"):
        trainer.train_step(batch)
    batch = random_batch()
    batch["actions"][0, 0] = A
    with pytest.raises(ValueError, match="actions"):
        trainer.train_step(batch)


def test_presets_resolve_and_explicit_sizes_win() -> None:
    default = spec_from_config(DreamerConfig(), 48, 1024, 24)
    large = spec_from_config(DreamerConfig(preset="large", deter=512), 48, 1024, 24)
    assert large.deter == 512 and large.hidden > default.hidden
    with pytest.raises(ValueError, match="dreamer.preset"):
        spec_from_config(DreamerConfig(preset="huge"), 48, 1024, 24)


def test_reward_loss_scores_each_transition_by_the_action_taken_inside_episodes() -> None:
    # B=1, T=4, A=2: r(s_t, .) predicted at every step; a_{t-1} stored with step t.
    action_rewards = torch.tensor([[[0.1, 0.9], [0.5, 0.0], [0.2, 0.4], [7.0, 7.0]]])
    actions = torch.tensor([[0, 1, 0, 1]])
    rewards = torch.tensor([[0.0, 1.0, 0.0, 0.3]])
    is_first = torch.tensor([[True, False, True, False]])  # step 2 starts a new episode
    # scored: t=1 (r(s_0, a=1) = 0.9 vs 1.0) and t=3 (r(s_2, a=1) = 0.4 vs 0.3); t=2 is not
    expected = ((0.9 - 1.0) ** 2 + (0.4 - 0.3) ** 2) / 2
    assert float(transition_reward_loss(action_rewards, actions, rewards, is_first)) == pytest.approx(expected)


def test_imagined_rewards_are_the_reward_of_the_action_taken_in_the_previous_state() -> None:
    model = WorldModel(tiny_spec()).eval()
    batch = random_batch(2, 3)
    post = model.observe(batch["tokens"], batch["actions"], batch["is_first"])
    schedule = torch.randint(0, A, (6, 4))
    traj = model.imagine(post.states.flatten(), schedule, 4, torch.Generator().manual_seed(0))
    table = model.predict_action_rewards(traj.features[:, :-1])  # (6, 4, A)
    assert torch.allclose(traj.rewards[:, 1:], table.gather(-1, schedule.unsqueeze(-1)).squeeze(-1))
    assert torch.all(traj.rewards[:, 0] == 0)


def test_scheduled_sampling_feeds_the_gru_prior_samples_in_training_only() -> None:
    """dreamer.prior_sample_prob: a step fed from the prior passes nothing of its observation
    on to later states; the heads still see the posterior, and observe() outside training
    (eval, acting) never samples the prior."""
    model = WorldModel(tiny_spec(prior_sample_prob=0.99)).eval()
    batch = random_batch(2, 4)
    other_tokens = torch.randint(0, V, batch["tokens"].shape)
    assert bool((torch.rand(4, generator=torch.Generator().manual_seed(1)) < 0.99).all())  # seed 1 feeds every step from the prior

    def observe(tokens: torch.Tensor, prob: float):
        return model.observe(tokens, batch["actions"], batch["is_first"], generator=torch.Generator().manual_seed(1), prior_sample_prob=prob)

    scheduled, scheduled_other = observe(batch["tokens"], 0.99), observe(other_tokens, 0.99)
    assert torch.equal(scheduled.h, scheduled_other.h)  # later states never saw an observation
    assert not torch.allclose(scheduled.post_log_probs, scheduled_other.post_log_probs)  # the posterior did
    plain, plain_other = observe(batch["tokens"], 0.0), observe(other_tokens, 0.0)
    assert not torch.allclose(plain.h[:, 1:], plain_other.h[:, 1:])
    default = model.observe(batch["tokens"], batch["actions"], batch["is_first"], generator=torch.Generator().manual_seed(1))
    assert torch.equal(default.h, plain.h)  # the spec's probability applies in loss() only
    with pytest.raises(ValueError, match="dreamer.prior_sample_prob"):
        tiny_spec(prior_sample_prob=1.0)
    loss, metrics, _ = model.loss(to_sequence_batch(batch, model.spec, "cpu"))
    assert torch.isfinite(loss) and metrics["loss_kl"] > 0


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_token_sampling_draws_from_the_tempered_softmax(temperature):
    """Decoded tokens are exact draws of softmax(logits / T) (Gumbel-max), the same under one seed."""
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0]).expand(50_000, 2, 4)
    draws = sample_tokens(logits, temperature, torch.Generator().manual_seed(3))
    assert draws.shape == (50_000, 2)
    frequencies = torch.bincount(draws.flatten(), minlength=4).double() / draws.numel()
    expected = torch.softmax(logits[0, 0].double() / temperature, dim=-1)
    assert torch.allclose(frequencies, expected, atol=0.006), (frequencies, expected)
    assert torch.equal(draws, sample_tokens(logits, temperature, torch.Generator().manual_seed(3)))
    assert torch.equal(sample_tokens(logits, 0.0), torch.zeros(50_000, 2, dtype=torch.long))


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_mean_code_vectors_average_the_codes_under_the_tempered_token_distribution(temperature) -> None:
    """token_draw "mean": each slot's vector is sum_v softmax(log p / T)_v c_v, however many
    steps (more than one block of MEAN_CODE_ROWS here), and at T = 0 the most likely code's own vector."""
    from audiodream.worldmodel.model import MEAN_CODE_ROWS

    model = WorldModel(tiny_spec())
    codes = torch.nn.functional.normalize(torch.randn(V, 3), dim=-1)
    features = torch.randn(2, MEAN_CODE_ROWS // 2 + 7, model.spec.feature_dim)
    with torch.no_grad():
        means = model.mean_code_vectors(features, codes, temperature)
        expected = torch.softmax(model.decode(features) / temperature, dim=-1) @ codes
        assert means.shape == (*features.shape[:2], K, 3)
        assert torch.allclose(means, expected, atol=1e-5)
        assert torch.equal(model.mean_code_vectors(features, codes, 0.0), codes[model.sample_tokens(features, 0.0)])
    assert means.norm(dim=-1).max() <= 1.0 + 1e-5  # a mean of unit vectors: inside the sphere, not on it
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        model.mean_code_vectors(features, codes, -1.0)
    with pytest.raises(ValueError, match=rf"codebook: expected shape \({V}, 3\)"):
        model.mean_code_vectors(features, codes[:-1], 1.0)
