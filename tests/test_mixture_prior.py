"""The mixture prior (`dreamer.prior_components`): its KL bound, its samples, and why it exists
(one sample commits to one outcome where a factorised prior makes chimeras)."""

from __future__ import annotations

import itertools

import pytest
import torch

from audiodream.worldmodel import WorldModel, WorldModelTrainer, balanced_kl_loss
from audiodream.worldmodel.distributions import categorical_kl
from audiodream.worldmodel.prior import LatentPrior, latent_prior
from audiodream.worldmodel.rssm import RSSMState
from tests.test_worldmodel import random_batch, tiny_spec

STOCH, CLASSES = 2, 3


def _random_prior(components: int, seed: int, scale: float = 2.0) -> LatentPrior:
    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn(components, STOCH, CLASSES, generator=generator) * scale
    return latent_prior(latent, torch.randn(components, generator=generator) * scale if components > 1 else None, unimix=0.0)


def _joint_log_probs(prior: LatentPrior) -> torch.Tensor:
    """log p(z) for every one of the CLASSES ** STOCH latent configurations, by enumeration."""
    rows = []
    for config in itertools.product(range(CLASSES), repeat=STOCH):
        per_component = sum(prior.component_log_probs[:, i, c] for i, c in enumerate(config))
        rows.append(torch.logsumexp(prior.log_weights + per_component, dim=-1))
    return torch.stack(rows)


def _factorised_joint(log_probs: torch.Tensor) -> torch.Tensor:
    return torch.stack([sum(log_probs[i, c] for i, c in enumerate(config)) for config in itertools.product(range(CLASSES), repeat=STOCH)])


def test_one_component_is_the_plain_categorical_kl() -> None:
    prior = _random_prior(1, seed=0)
    post = torch.randn(STOCH, CLASSES).log_softmax(-1)
    assert prior.n_components == 1
    assert torch.allclose(prior.kl_from(post), categorical_kl(post, prior.component_log_probs[0]))
    assert torch.allclose(prior.marginal_log_probs(), prior.component_log_probs[0])
    tensor_loss = balanced_kl_loss(post, prior.component_log_probs[0], kl_balance=0.8, free_nats=0.0).loss
    assert torch.allclose(balanced_kl_loss(post, prior, kl_balance=0.8, free_nats=0.0).loss, tensor_loss)


@pytest.mark.parametrize("seed", range(5))
def test_mixture_kl_bound_lies_between_the_exact_kl_and_the_best_single_component(seed: int) -> None:
    prior = _random_prior(3, seed)
    post = (torch.randn(STOCH, CLASSES, generator=torch.Generator().manual_seed(100 + seed)) * 2).log_softmax(-1)
    exact = (_factorised_joint(post).exp() * (_factorised_joint(post) - _joint_log_probs(prior))).sum()
    bound = prior.kl_from(post)
    per_component = categorical_kl(post.unsqueeze(0), prior.component_log_probs)
    assert exact - 1e-5 <= bound <= (per_component - prior.log_weights).min() + 1e-5
    assert bound < per_component.max()  # the mixture is not scored as its worst component


def test_marginals_are_the_mixture_of_the_components() -> None:
    prior = _random_prior(3, seed=7)
    joint = _joint_log_probs(prior).exp().view(CLASSES, CLASSES)
    marginal = prior.marginal_log_probs().exp()
    assert torch.allclose(marginal[0], joint.sum(1), atol=1e-6)
    assert torch.allclose(marginal[1], joint.sum(0), atol=1e-6)


def test_samples_follow_the_joint_not_the_product_of_marginals() -> None:
    # Component 0 mostly (0, 0), component 1 mostly (2, 2), weights 0.6 / 0.4.
    component_logits = torch.full((2, STOCH, CLASSES), -2.0)
    component_logits[0, :, 0], component_logits[1, :, 2] = 2.0, 2.0
    prior = LatentPrior(torch.tensor([0.6, 0.4]).log(), component_logits.log_softmax(-1))
    n = 20000
    samples = LatentPrior(prior.log_weights.expand(n, -1), prior.component_log_probs.expand(n, -1, -1, -1)).sample(torch.Generator().manual_seed(0))
    index = samples.view(n, STOCH, CLASSES).argmax(-1)
    counts = torch.bincount(index[:, 0] * CLASSES + index[:, 1], minlength=CLASSES**STOCH).float() / n
    joint = _joint_log_probs(prior).exp()
    product = _factorised_joint(prior.marginal_log_probs()).exp()
    assert 0.5 * (counts - joint).abs().sum() < 0.02
    assert 0.5 * (joint - product).abs().sum() > 0.2  # the test tells the two apart


def _three_distinct_components() -> LatentPrior:
    """Weights 0.5 / 0.3 / 0.2; component k's latents most likely class k, with real spread."""
    logits = torch.randn(3, STOCH, CLASSES, generator=torch.Generator().manual_seed(5)) * 0.3
    for k in range(3):
        logits[k, :, k] += 1.5
    return LatentPrior(torch.tensor([0.5, 0.3, 0.2]).log(), logits.log_softmax(-1))


def _expand(prior: LatentPrior, n: int) -> LatentPrior:
    return LatentPrior(prior.log_weights.expand(n, -1), prior.component_log_probs.expand(n, -1, -1, -1))


def test_latent_temperature_zero_draws_each_component_mode_at_its_weight() -> None:
    """eval.latent_temperature 0: a step is one of the K component modes, drawn as often as
    the mixture weighs it, never a mix of several components' latents."""
    prior, n = _three_distinct_components(), 20000
    index = _expand(prior, n).sample(torch.Generator().manual_seed(0), latent_temperature=0.0).view(n, STOCH, CLASSES).argmax(-1)
    modes = prior.component_log_probs.argmax(-1)  # (3, STOCH)
    which = (index[:, None, :] == modes[None]).all(-1)  # (n, 3)
    assert bool(which.any(-1).all()), "every draw is a component's mode"
    frequencies = which.float().mean(0)
    assert torch.allclose(frequencies, prior.log_weights.exp(), atol=0.015), frequencies
    sampled = _expand(prior, n).sample(torch.Generator().manual_seed(0)).view(n, STOCH, CLASSES).argmax(-1)
    assert float((sampled[:, None, :] == modes[None]).all(-1).any(-1).float().mean()) < 0.8  # at 1 the latents spread


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_latent_temperature_tempers_each_latent_of_the_chosen_component(temperature: float) -> None:
    prior, n = _random_prior(1, seed=3, scale=1.0), 40000
    index = _expand(prior, n).sample(torch.Generator().manual_seed(1), latent_temperature=temperature).view(n, STOCH, CLASSES).argmax(-1)
    for latent in range(STOCH):
        counts = torch.bincount(index[:, latent], minlength=CLASSES).float() / n
        expected = torch.softmax(prior.component_log_probs[0, latent] / temperature, -1)
        assert 0.5 * float((counts - expected).abs().sum()) < 0.015, latent


def test_latent_temperature_one_is_the_trained_draw_and_negative_ones_are_refused() -> None:
    prior = _expand(_three_distinct_components(), 64)
    assert torch.equal(prior.sample(torch.Generator().manual_seed(2)), prior.sample(torch.Generator().manual_seed(2), latent_temperature=1.0))
    with pytest.raises(ValueError, match="latent temperature"):
        prior.sample(None, latent_temperature=-0.5)


def _fit_prior_to_two_outcomes(components: int) -> float:
    """Fit a free prior to posteriors that are outcome A = (0, 0) 70 % of the time and
    B = (1, 1) 30 %; return the mass its samples put on the chimeras (0, 1) and (1, 0)."""
    torch.manual_seed(0)
    latent = (torch.randn(components, STOCH, CLASSES) * 0.5).requires_grad_()
    mixture = (torch.randn(components) * 0.5).requires_grad_() if components > 1 else None
    sharp = torch.full((STOCH, CLASSES), -9.0)
    outcome_a, outcome_b = sharp.clone(), sharp.clone()
    outcome_a[:, 0], outcome_b[:, 1] = 0.0, 0.0
    posts = torch.stack([outcome_a] * 7 + [outcome_b] * 3).log_softmax(-1)
    optimizer = torch.optim.Adam([latent] + ([mixture] if mixture is not None else []), lr=0.05)
    for _ in range(600):
        expand = len(posts), -1
        prior = latent_prior(latent.expand(*expand, -1, -1), mixture.expand(*expand) if mixture is not None else None, unimix=0.0)
        loss = balanced_kl_loss(posts, prior, kl_balance=1.0, free_nats=0.0).loss.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    prior = latent_prior(latent.detach(), mixture.detach() if mixture is not None else None, unimix=0.0)
    joint = _joint_log_probs(prior).exp().view(CLASSES, CLASSES)
    assert float(joint[0, 0] + joint[1, 1] + joint[0, 1] + joint[1, 0]) > 0.95
    return float(joint[0, 1] + joint[1, 0])


def test_a_mixture_prior_commits_where_a_factorised_one_makes_chimeras() -> None:
    assert _fit_prior_to_two_outcomes(1) > 0.35  # 2 * 0.7 * 0.3 = 0.42 at the optimum
    assert _fit_prior_to_two_outcomes(2) < 0.05


def test_world_model_with_a_mixture_prior_trains_imagines_and_round_trips() -> None:
    trainer = WorldModelTrainer(WorldModel(tiny_spec(prior_components=3, prior_sample_prob=0.5)), lr=3e-3)
    batch = random_batch(3, 6)
    metrics = [trainer.train_step(batch) for _ in range(30)]
    assert metrics[-1]["loss_model"] < metrics[0]["loss_model"]
    posterior, _ = trainer.observe(batch)
    assert posterior.prior.component_log_probs.shape == (3, 6, 3, 4, 4)
    assert posterior.prior_log_probs.shape == (3, 6, 4, 4)

    def rollout(model: WorldModel) -> torch.Tensor:
        start = posterior.last_state
        return model.imagine(start, torch.zeros(3, 5, dtype=torch.long), 5, generator=torch.Generator().manual_seed(4), with_tokens=True).tokens

    restored = WorldModelTrainer.from_state_dict(trainer.state_dict())
    assert restored.spec.prior_components == 3
    assert torch.equal(rollout(trainer.model), rollout(restored.model))

    # Tokens and latents at temperature 0: the only draw left is the component, so from one
    # start state an imagined step is one of at most 3 token sequences, whatever the seed.
    last = posterior.last_state
    start = RSSMState(last.h[:1], last.z[:1]).repeat(64)
    steps = set()
    for seed in range(3):
        traj = trainer.model.imagine(start, torch.zeros(64, 1, dtype=torch.long), 1, torch.Generator().manual_seed(seed), True, 0.0, 0.0)
        steps |= {tuple(row.tolist()) for row in traj.tokens[:, 0]}
    assert 1 <= len(steps) <= 3
    at_one = trainer.model.imagine(start, torch.zeros(64, 1, dtype=torch.long), 1, torch.Generator().manual_seed(0), True).tokens
    assert len({tuple(row.tolist()) for row in at_one[:, 0]}) > 3
    with pytest.raises(ValueError, match="prior_components"):
        tiny_spec(prior_components=0)


def test_entropy_bound_is_the_entropy_for_one_component_and_bounds_a_mixture() -> None:
    single = _random_prior(1, seed=2)
    joint = _joint_log_probs(single)
    assert torch.allclose(single.entropy_bound(), -(joint.exp() * joint).sum(), atol=1e-5)
    mixture = _random_prior(3, seed=2)
    joint = _joint_log_probs(mixture)
    assert -(joint.exp() * joint).sum() <= mixture.entropy_bound() + 1e-5


def test_resume_fingerprint_names_prior_components_only_away_from_the_default() -> None:
    from audiodream.config.loader import load_config
    from audiodream.dreamer.checkpoint import RESUME_KEYS, resume_fingerprint
    from audiodream.pipeline.stages import fingerprint

    cfg = load_config(["listen_synthetic"], ["dreamer.prior_components=1", "dreamer.gru=torch"])  # as runs made before the keys
    assert resume_fingerprint(cfg) == fingerprint(cfg, RESUME_KEYS)  # runs made before the key still match
    mixture = load_config(["listen_synthetic"], ["dreamer.prior_components=8"])
    assert resume_fingerprint(mixture) != resume_fingerprint(cfg)
