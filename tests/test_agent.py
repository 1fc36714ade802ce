"""Behaviour of the actor-critic in imagination: λ-returns, the direction of the actor's
gradient, the target critic's schedule, return normalisation, a full update on a tiny
world model (which must stay untouched), checkpoints, and the acting policies."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from audiodream.agent import (
    Actor,
    ActorCriticTrainer,
    AgentPolicy,
    Critic,
    RandomPolicy,
    ReturnNormalizer,
    TargetCritic,
    actor_loss,
    categorical_entropy,
    categorical_log_probs,
    discount_weights,
    lambda_returns,
)
from audiodream.config.schema import DreamerConfig
from audiodream.worldmodel import RSSMState, WorldModel, WorldModelSpec

K, V, A = 8, 64, 6


def tiny_spec() -> WorldModelSpec:
    return WorldModelSpec(tokens_per_step=K, vocab_size=V, n_actions=A, token_embed=8, embed=32, deter=32, stoch=4, classes=4, hidden=32, decoder_slot_dim=8)


def tiny_config(**changes: object) -> DreamerConfig:
    cfg = DreamerConfig(imag_horizon=4, hidden=16)
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def posterior_starts(model: WorldModel, b: int = 3, t: int = 5, seed: int = 0) -> RSSMState:
    gen = torch.Generator().manual_seed(seed)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    tokens = torch.randint(0, V, (b, t, K), generator=gen)
    actions = torch.randint(0, A, (b, t), generator=gen)
    with torch.no_grad():
        return model.observe(tokens, actions, is_first, generator=gen).states


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---------------------------------------------------------------- λ-returns


def test_lambda_returns_match_a_hand_computed_case_with_a_terminal_in_the_middle() -> None:
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[9.0, 1.0, 2.0, 3.0]])  # r_0 arrives with the start: never counted
    values = torch.tensor([[0.5, 4.0, 5.0, 6.0]])
    continues = torch.tensor([[1.0, 1.0, 0.0, 1.0]])  # s_2 is terminal
    # G_3 = v_3 = 6
    # G_2 = r_3 + γ c_3 ((1-λ) v_3 + λ G_3) = 3 + 0.9 * (3 + 3)   = 8.4
    # G_1 = r_2 + γ c_2 (...)               = 2 + 0               = 2   (the episode ends at s_2)
    # G_0 = r_1 + γ c_1 ((1-λ) v_1 + λ G_1) = 1 + 0.9 * (2 + 1)   = 3.7
    expected = torch.tensor([[3.7, 2.0, 8.4]])
    assert torch.allclose(lambda_returns(rewards, values, continues, gamma, lam), expected)
    # w_t = γ^t c_0 ... c_t
    assert torch.allclose(discount_weights(continues, gamma), torch.tensor([[1.0, 0.9, 0.0]]))


def test_lambda_returns_limits_are_td_targets_and_discounted_sums() -> None:
    gen = torch.Generator().manual_seed(1)
    rewards, values = torch.randn(4, 6, generator=gen), torch.randn(4, 6, generator=gen)
    continues = torch.rand(4, 6, generator=gen)
    gamma = 0.8
    td = lambda_returns(rewards, values, continues, gamma, 0.0)
    assert torch.allclose(td, rewards[:, 1:] + gamma * continues[:, 1:] * values[:, 1:])
    full = lambda_returns(rewards, values, torch.ones(4, 6), gamma, 1.0)
    discounts = gamma ** torch.arange(5.0)
    expected_first = (rewards[:, 1:] * discounts).sum(1) + gamma**5 * values[:, -1]
    assert torch.allclose(full[:, 0], expected_first, atol=1e-5)


def test_lambda_returns_reject_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="values"):
        lambda_returns(torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(2, 4), 0.9, 0.9)


# ---------------------------------------------------------------- actor gradient


def test_actor_step_raises_probability_of_positive_advantage_and_lowers_negative() -> None:
    actor = Actor(feature_dim=5, n_actions=A, hidden=16)
    torch.nn.init.normal_(actor.net[-1].weight, std=0.1)
    features = torch.randn(2, 1, 5)
    actions = torch.tensor([[2], [4]])
    advantages = torch.tensor([[1.0], [-1.0]])
    weights = torch.ones(2, 1)
    before = actor(features).softmax(-1).detach()
    loss, _ = actor_loss(actor(features), actions, advantages, weights, entropy_coef=0.0)
    loss.backward()
    with torch.no_grad():
        for param in actor.parameters():
            param -= 0.05 * param.grad
    after = actor(features).softmax(-1).detach()
    assert after[0, 0, 2] > before[0, 0, 2]
    assert after[1, 0, 4] < before[1, 0, 4]


def test_entropy_bonus_alone_flattens_the_policy() -> None:
    actor = Actor(feature_dim=5, n_actions=A, hidden=16)
    torch.nn.init.normal_(actor.net[-1].weight, std=1.0)
    features = torch.randn(8, 1, 5)
    with torch.no_grad():
        entropy_before = float(categorical_entropy(categorical_log_probs(actor(features))).mean())
    loss, _ = actor_loss(actor(features), torch.zeros(8, 1, dtype=torch.long), torch.zeros(8, 1), torch.ones(8, 1), entropy_coef=1.0)
    loss.backward()
    with torch.no_grad():
        for param in actor.parameters():
            param -= 0.05 * param.grad
    with torch.no_grad():
        assert float(categorical_entropy(categorical_log_probs(actor(features))).mean()) > entropy_before


def test_all_action_reward_term_raises_the_best_rewarded_action_without_sampling_it() -> None:
    actor = Actor(feature_dim=5, n_actions=A, hidden=16)
    features = torch.randn(4, 1, 5)
    action_rewards = torch.zeros(4, 1, A)
    action_rewards[..., 2] = 1.0
    before = actor(features).softmax(-1).detach()
    # Action 0 was sampled with a zero advantage: REINFORCE alone would not move the policy.
    loss, _ = actor_loss(actor(features), torch.zeros(4, 1, dtype=torch.long), torch.zeros(4, 1), torch.ones(4, 1), 0.0, action_rewards)
    loss.backward()
    with torch.no_grad():
        for param in actor.parameters():
            param -= 0.1 * param.grad
    after = actor(features).softmax(-1).detach()
    assert bool((after[..., 2] > before[..., 2]).all())


def _advantages_for_every_action(mode: str) -> tuple[ActorCriticTrainer, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One state, one imagined step, each row taking a different action a: reward r(a),
    what follows F(a), return r(a) + F(a); value 0.3 for every row."""
    trainer = ActorCriticTrainer(tiny_config(actor_reward_gradient=mode, return_norm=False), feature_dim=5, n_actions=A)
    reward_of = torch.tensor([0.6, 0.0, 0.2, 0.0, 0.1, 0.0])
    follows = torch.tensor([0.0, 0.5, 0.1, 0.0, 0.0, 0.3])
    actions = torch.arange(A).unsqueeze(1)
    rewards = torch.stack([torch.zeros(A), reward_of], dim=1)
    action_rewards = reward_of.expand(A, 2, A).clone()
    returns = (reward_of + follows).unsqueeze(1)
    values = torch.full((A, 1), 0.3)
    return trainer, actions, returns, values, rewards, action_rewards


def test_all_action_advantage_leaves_out_the_sampled_reward_by_hand() -> None:
    logits = torch.zeros(A, 1, A)  # uniform policy: E_pi r = (0.6 + 0.2 + 0.1) / 6 = 0.15
    trainer, _, returns, values, rewards, action_rewards = _advantages_for_every_action("all_actions")
    advantage, per_action = trainer._advantages(returns, values, rewards, action_rewards, logits)
    # action 1: G = 0.5, V = 0.3, r = 0: 0.5 - 0.3 - 0 + 0.15; action 0: 0.6 - 0.3 - 0.6 + 0.15
    assert torch.allclose(advantage[:, 0], torch.tensor([-0.15, 0.35, -0.05, -0.15, -0.15, 0.15]), atol=1e-6)
    assert per_action is not None and torch.allclose(per_action, action_rewards[:, :-1])
    sampled = _advantages_for_every_action("sampled")[0]
    plain, none = sampled._advantages(returns, values, rewards, action_rewards, logits)
    assert none is None and torch.allclose(plain, returns - values)


def test_all_action_gradient_equals_reinforce_in_expectation() -> None:
    """Summed over every action weighted by its probability (the exact expectation over
    the sampled action), both actor gradients are the same: the all-action term lowers
    variance, it adds no bias."""
    base_logits = torch.tensor([0.3, -0.2, 0.8, 0.0, -1.0, 0.4])
    gradients = {}
    for mode in ("sampled", "all_actions"):
        logits = base_logits.clone().requires_grad_(True)
        trainer, actions, returns, values, rewards, action_rewards = _advantages_for_every_action(mode)
        row_logits = logits.expand(A, 1, A)
        advantage, per_action = trainer._advantages(returns, values, rewards, action_rewards, row_logits.detach())
        weights = torch.softmax(base_logits, -1).unsqueeze(1) * A  # P(a) per row; actor_loss averages over rows
        loss, _ = actor_loss(row_logits, actions, advantage, weights, 0.0, per_action)
        (gradients[mode],) = torch.autograd.grad(loss, logits)
    assert gradients["sampled"].abs().max() > 1e-3
    assert torch.allclose(gradients["sampled"], gradients["all_actions"], atol=1e-6)


def test_bad_actor_reward_gradient_is_named() -> None:
    with pytest.raises(ValueError, match="dreamer.actor_reward_gradient"):
        ActorCriticTrainer(tiny_config(actor_reward_gradient="dynamics"), feature_dim=5, n_actions=A)


# ---------------------------------------------------------------- target critic


def _nudge(critic: Critic, amount: float) -> None:
    with torch.no_grad():
        for param in critic.parameters():
            param += amount


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_hard_target_copies_every_n_updates_and_lags_in_between() -> None:
    critic = Critic(feature_dim=5, hidden=8)
    target = TargetCritic(critic, update_every=3, tau=1.0)
    assert _same(_params(target.network), _params(critic))
    last_copy = _params(critic)
    for update in range(1, 7):
        _nudge(critic, 0.1)
        moved = target.update(critic)
        if update % 3 == 0:
            assert moved and _same(_params(target.network), _params(critic))
            last_copy = _params(critic)
        else:
            assert not moved and _same(_params(target.network), last_copy)
            assert not _same(_params(target.network), _params(critic))


def test_soft_target_moves_tau_of_the_way_each_update() -> None:
    critic = Critic(feature_dim=5, hidden=8)
    target = TargetCritic(critic, update_every=100, tau=0.1)
    for _ in range(3):
        _nudge(critic, 1.0)
        before, source = _params(target.network), _params(critic)
        target.update(critic)
        for old, new, src in zip(before, _params(target.network), source):
            assert torch.allclose(new, old + 0.1 * (src - old), atol=1e-6)


def test_trainer_target_critic_follows_the_configured_period() -> None:
    model = WorldModel(tiny_spec())
    trainer = ActorCriticTrainer(tiny_config(target_update_every=3, target_tau=1.0, lr_critic=1e-2), model.spec.feature_dim, A)
    starts = posterior_starts(model)
    for update in range(1, 7):
        trainer.train_step(model, starts)
        synced = _same(_params(trainer.target_critic.network), _params(trainer.critic))
        assert synced == (update % 3 == 0), f"update {update}"


def test_bad_target_settings_are_named() -> None:
    model = WorldModel(tiny_spec())
    with pytest.raises(ValueError, match="dreamer.target_tau"):
        ActorCriticTrainer(tiny_config(target_tau=0.0), model.spec.feature_dim, A)
    with pytest.raises(ValueError, match="dreamer.gamma"):
        ActorCriticTrainer(tiny_config(gamma=1.5), model.spec.feature_dim, A)


# ---------------------------------------------------------------- return normalisation


def test_return_normalizer_scale_is_the_running_5_to_95_percentile_range() -> None:
    norm = ReturnNormalizer(decay=0.5)
    norm.update(torch.linspace(0.0, 10.0, 1001))  # P5 = 0.5, P95 = 9.5
    assert math.isclose(float(norm.scale), 9.0, rel_tol=1e-5)
    assert torch.allclose(norm(torch.tensor([9.0, -4.5])), torch.tensor([1.0, -0.5]))
    norm.update(torch.linspace(0.0, 20.0, 1001))  # P5 = 1, P95 = 19: halfway with decay 0.5
    assert math.isclose(float(norm.scale), (19.0 + 9.5) / 2 - (1.0 + 0.5) / 2, rel_tol=1e-5)


def test_return_normalizer_leaves_small_returns_alone() -> None:
    norm = ReturnNormalizer()
    norm.update(torch.linspace(0.0, 0.5, 101))
    assert float(norm.scale) == 1.0


# ---------------------------------------------------------------- full update on a tiny world model


@pytest.mark.parametrize(
    "changes", [{}, {"actor_reward_gradient": "all_actions", "actor_reward_prior": True}], ids=["dreamerv2", "all_actions_with_prior"]
)
def test_train_step_updates_actor_and_critic_but_never_the_world_model(changes: dict[str, object]) -> None:
    model = WorldModel(tiny_spec())
    world_before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = ActorCriticTrainer(tiny_config(**changes), model.spec.feature_dim, A)
    actor_before, critic_before = _params(trainer.actor), _params(trainer.critic)
    starts = posterior_starts(model)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        metrics = trainer.train_step(model, starts, generator=gen)
    for key in ("loss_actor", "loss_critic", "policy_entropy", "imagined_return", "value_mean", "advantage_std"):
        assert math.isfinite(metrics[key]), key
    assert 0.0 < metrics["policy_entropy"] <= math.log(A) + 1e-6
    for name, p in model.named_parameters():
        assert p.grad is None, name
        assert torch.equal(p, world_before[name]), name
    assert not _same(_params(trainer.actor), actor_before)
    assert not _same(_params(trainer.critic), critic_before)


def test_start_continues_zero_silence_the_losses() -> None:
    model = WorldModel(tiny_spec())
    trainer = ActorCriticTrainer(tiny_config(entropy_coef=0.1), model.spec.feature_dim, A)
    starts = posterior_starts(model)
    metrics = trainer.train_step(model, starts, start_continues=torch.zeros(3, 5))
    assert metrics["loss_actor"] == 0.0 and metrics["loss_critic"] == 0.0


def test_max_starts_imagines_from_a_subset_keeping_its_continuations() -> None:
    model = WorldModel(tiny_spec())
    trainer = ActorCriticTrainer(tiny_config(), model.spec.feature_dim, A, max_starts=4)
    continues = torch.zeros(3, 5)
    metrics = trainer.train_step(model, posterior_starts(model), start_continues=continues)
    assert metrics["imagined_starts"] == 4.0
    assert metrics["loss_critic"] == 0.0  # the subset kept its (zero) continuations
    with pytest.raises(ValueError, match="start_continues"):
        trainer.train_step(model, posterior_starts(model), start_continues=torch.ones(7))


def test_checkpoint_round_trip_with_weights_only_load() -> None:
    model = WorldModel(tiny_spec())
    trainer = ActorCriticTrainer(tiny_config(), model.spec.feature_dim, A)
    trainer.train_step(model, posterior_starts(model))
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    buffer.seek(0)
    restored = ActorCriticTrainer(tiny_config(), model.spec.feature_dim, A)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.step == trainer.step == 1
    features = torch.randn(4, model.spec.feature_dim)
    assert torch.equal(restored.actor(features), trainer.actor(features))
    assert torch.equal(restored.target_critic(features), trainer.target_critic(features))
    assert torch.equal(restored.normalizer.scale, trainer.normalizer.scale)
    other = ActorCriticTrainer(tiny_config(hidden=8), model.spec.feature_dim, A)
    with pytest.raises(ValueError, match="sizes"):
        other.load_state_dict(trainer.state_dict())


def test_resume_keeps_the_optimizers_moments_but_takes_the_configs_learning_rates() -> None:
    model = WorldModel(tiny_spec())
    trainer = ActorCriticTrainer(tiny_config(lr_actor=1e-3, lr_critic=2e-3), model.spec.feature_dim, A)
    trainer.train_step(model, posterior_starts(model))
    state = trainer.state_dict()
    restored = ActorCriticTrainer(tiny_config(lr_actor=5e-4, lr_critic=7e-4), model.spec.feature_dim, A)
    restored.load_state_dict(state)  # torch's Optimizer.load_state_dict alone would bring back 1e-3 and 2e-3
    assert [g["lr"] for g in restored.actor_optimizer.param_groups] == [5e-4]
    assert [g["lr"] for g in restored.critic_optimizer.param_groups] == [7e-4]
    for mine, saved in ((restored.actor_optimizer, trainer.actor_optimizer), (restored.critic_optimizer, trainer.critic_optimizer)):
        moments = [(mine.state[p]["exp_avg_sq"], saved.state[q]["exp_avg_sq"]) for p, q in zip(mine.param_groups[0]["params"], saved.param_groups[0]["params"])]
        assert moments and all(torch.equal(a, b) for a, b in moments)


# ---------------------------------------------------------------- acting policies


def _trained_policy() -> tuple[AgentPolicy, ActorCriticTrainer]:
    model = WorldModel(tiny_spec())
    trainer = ActorCriticTrainer(tiny_config(), model.spec.feature_dim, A)
    torch.nn.init.normal_(trainer.actor.net[-1].weight, std=1.0)  # a non-uniform policy
    weights = trainer.policy_weights(model)
    return AgentPolicy.from_weights(model.spec.to_dict(), weights), trainer


def test_agent_policy_acts_in_range_and_greedy_is_the_argmax() -> None:
    policy, trainer = _trained_policy()
    n = 5
    rng = np.random.default_rng(0)
    state = policy.initial_state(n)
    prev = np.zeros(n, dtype=np.int64)
    first = np.ones(n, dtype=bool)
    for step in range(4):
        tokens = rng.integers(0, V, size=(n, K))
        gen = torch.Generator().manual_seed(step)
        sampled, _ = policy.act(tokens, prev, first, state, greedy=False, generator=gen)
        assert sampled.shape == (n,) and sampled.dtype == np.int64
        assert sampled.min() >= 0 and sampled.max() < A
        greedy_a, state_a = policy.act(tokens, prev, first, state, greedy=True, generator=torch.Generator().manual_seed(7))
        greedy_b, state_b = policy.act(tokens, prev, first, state, greedy=True, generator=torch.Generator().manual_seed(7))
        assert np.array_equal(greedy_a, greedy_b) and torch.equal(state_a.h, state_b.h)
        expected = trainer.actor.cpu()(state_a.features).argmax(-1).numpy()
        assert np.array_equal(greedy_a, expected)
        state, prev, first = state_a, greedy_a, np.zeros(n, dtype=bool)


def test_agent_policy_resets_the_state_where_is_first() -> None:
    policy, _ = _trained_policy()
    rng = np.random.default_rng(1)
    state = policy.initial_state(2)
    tokens = rng.integers(0, V, size=(2, K))
    _, state = policy.act(tokens, np.zeros(2, dtype=np.int64), np.ones(2, dtype=bool), state)
    _, state = policy.act(rng.integers(0, V, size=(2, K)), np.array([1, 2]), np.zeros(2, dtype=bool), state)
    # Env 0 starts a new episode with the very first observation again: its deterministic
    # state must equal a fresh start's; env 1 continues and must differ.
    _, fresh = policy.act(np.stack([tokens[0], tokens[0]]), np.array([3, 3]), np.array([True, False]), state)
    _, from_scratch = policy.act(tokens[:1], np.zeros(1, dtype=np.int64), np.ones(1, dtype=bool), policy.initial_state(1))
    assert torch.allclose(fresh.h[0], from_scratch.h[0])
    assert not torch.allclose(fresh.h[1], from_scratch.h[0])


def test_agent_policy_rejects_bad_input_naming_it() -> None:
    policy, _ = _trained_policy()
    state = policy.initial_state(2)
    with pytest.raises(ValueError, match="tokens"):
        policy.act(np.zeros((2, K + 1), dtype=np.int64), np.zeros(2, dtype=np.int64), np.ones(2, dtype=bool), state)
    with pytest.raises(ValueError, match="prev_actions"):
        policy.act(np.zeros((2, K), dtype=np.int64), np.array([0, A]), np.zeros(2, dtype=bool), state)


def test_load_weights_replaces_the_policy() -> None:
    policy, trainer = _trained_policy()
    features = torch.randn(3, trainer.feature_dim)
    with torch.no_grad():
        trainer.actor.net[-1].bias += torch.arange(float(A)) * 10.0
    policy.load_weights(trainer.policy_weights(WorldModel(tiny_spec())))
    assert torch.equal(policy.actor(features).argmax(-1), torch.full((3,), A - 1))


def test_explore_epsilon_mixes_uniform_actions_into_sampling_but_not_into_greedy() -> None:
    """A policy that always names action A-1 still shows the replay every action when exploring."""
    model = WorldModel(tiny_spec())
    trainer = ActorCriticTrainer(tiny_config(), model.spec.feature_dim, A)
    with torch.no_grad():
        trainer.actor.net[-1].bias += torch.arange(float(A)) * 100.0  # certain of action A-1
    weights = trainer.policy_weights(model)
    n = 600
    tokens, prev, first = np.zeros((n, K), dtype=np.int64), np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
    counts = {}
    for epsilon in (0.0, 0.5):
        policy = AgentPolicy.from_weights(model.spec.to_dict(), weights, explore_epsilon=epsilon)
        sampled, _ = policy.act(tokens, prev, first, policy.initial_state(n), generator=torch.Generator().manual_seed(1))
        greedy, _ = policy.act(tokens, prev, first, policy.initial_state(n), greedy=True, generator=torch.Generator().manual_seed(1))
        assert set(greedy.tolist()) == {A - 1}
        counts[epsilon] = np.bincount(sampled, minlength=A)
    assert counts[0.0][A - 1] == n
    # epsilon 0.5: half the actions uniform, so each other action ~ n * 0.5 / A = 50 times
    assert set(np.flatnonzero(counts[0.5]).tolist()) == set(range(A))
    assert abs(counts[0.5][A - 1] / n - (0.5 + 0.5 / A)) < 0.08
    with pytest.raises(ValueError, match="explore_epsilon"):
        AgentPolicy(model, trainer.actor, explore_epsilon=1.5)


def test_random_policy_covers_every_action() -> None:
    policy = RandomPolicy(A)
    gen = torch.Generator().manual_seed(0)
    state = policy.initial_state(64)
    actions, state = policy.act(np.zeros((64, K), dtype=np.int64), np.zeros(64, dtype=np.int64), np.ones(64, dtype=bool), state, generator=gen)
    assert actions.shape == (64,) and actions.dtype == np.int64
    assert set(actions.tolist()) == set(range(A))


# ---------------------------------------------------------------- reward prior


def _world_model_paying_for(action: int) -> WorldModel:
    """A tiny world model whose reward head says `action` pays 1 in every state, the others 0."""
    model = WorldModel(tiny_spec())
    last = model.heads[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[1 + action] = 1.0  # output 0 is the continuation logit
    return model


def test_reward_prior_adds_predicted_rewards_over_entropy_coef_to_the_logits() -> None:
    model = _world_model_paying_for(3)
    trainer = ActorCriticTrainer(tiny_config(actor_reward_prior=True, entropy_coef=0.05), model.spec.feature_dim, A)
    features = torch.randn(4, model.spec.feature_dim)
    logits = trainer.actor.policy_logits(features, model)
    # A fresh actor's network outputs zeros: the logits are the prior alone, 1 / 0.05 = 20 on action 3.
    assert torch.allclose(logits[:, 3], torch.full((4,), 20.0)) and torch.allclose(logits[:, :3], torch.zeros(4, 3))
    with pytest.raises(ValueError, match="policy_logits"):
        trainer.actor(features)
    plain = ActorCriticTrainer(tiny_config(), model.spec.feature_dim, A)
    assert torch.equal(plain.actor.policy_logits(features, model), torch.zeros(4, A))


def test_reward_prior_travels_with_published_weights_and_checkpoints() -> None:
    model = _world_model_paying_for(2)
    trainer = ActorCriticTrainer(tiny_config(actor_reward_prior=True, entropy_coef=0.1), model.spec.feature_dim, A)
    policy = AgentPolicy.from_weights(model.spec.to_dict(), trainer.policy_weights(model))
    n = 6
    greedy, _ = policy.act(np.zeros((n, K), dtype=np.int64), np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool), policy.initial_state(n), greedy=True)
    assert set(greedy.tolist()) == {2}
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    from audiodream.evaluation.trained_run import actor_from_state

    assert float(actor_from_state(state).reward_prior_scale) == pytest.approx(10.0)
    # An actor saved before the prior existed (no scale in its state dict) loads as prior-free.
    old = {**state, "actor": {k: v for k, v in state["actor"].items() if k != "reward_prior_scale"}}
    assert float(actor_from_state(old).reward_prior_scale) == 0.0 and not actor_from_state(old).uses_reward_prior
    # Resuming under a config without the prior: the config wins.
    plain = ActorCriticTrainer(tiny_config(), model.spec.feature_dim, A)
    plain.load_state_dict(state)
    assert not plain.actor.uses_reward_prior and float(plain.actor.reward_prior_scale) == 0.0


def test_reward_prior_needs_a_positive_entropy_coef() -> None:
    with pytest.raises(ValueError, match="dreamer.actor_reward_prior"):
        ActorCriticTrainer(tiny_config(actor_reward_prior=True, entropy_coef=0.0), feature_dim=5, n_actions=A)
