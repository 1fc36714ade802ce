"""Actor-critic trained entirely in imagination (DreamerV2, discrete actions).

One `train_step`: from every start state (the detached posteriors of the world-model
batch) roll the world model's prior forward `dreamer.imag_horizon` steps with the
actor choosing actions; compute λ-returns bootstrapped from the target critic (DreamerV2);
regress the critic onto them and move the actor by REINFORCE with the critic as
baseline plus an entropy bonus. With `dreamer.actor_reward_gradient: all_actions` the
immediate reward's part of that gradient is computed exactly instead of sampled (see
`actor_loss`). The world model only supplies the dream: it runs
under no_grad and gets no gradient from here (REINFORCE needs none through the
dynamics), so the learner may interleave its own updates freely.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
from torch import nn

from audiodream.agent.networks import Actor, Critic, categorical_entropy, categorical_log_probs, sample_categorical
from audiodream.agent.return_norm import ReturnNormalizer
from audiodream.agent.returns import discount_weights, lambda_returns
from audiodream.agent.target_critic import TargetCritic
from audiodream.config.schema import ACTOR_REWARD_GRADIENTS, DreamerConfig
from audiodream.worldmodel.model import WorldModel
from audiodream.worldmodel.optimizer_state import load_moments_keeping_settings
from audiodream.worldmodel.rssm import RSSMState
from audiodream.worldmodel.sizes import resolve_sizes
from audiodream.worldmodel.trainer import mixed_precision, resolve_device

CHECKPOINT_FORMAT = 1
DEFAULT_LAYERS = 2  # hidden layers of actor and critic: cheap enough for 512 x 15 states per update on a CPU

__all__ = ["Actor", "ActorCriticTrainer", "Critic", "ReturnNormalizer", "TargetCritic", "actor_loss", "critic_loss", "validate_dreamer_config"]


def validate_dreamer_config(cfg: DreamerConfig) -> None:
    """Reject actor-critic settings that would train nonsense, naming the key."""
    if int(cfg.imag_horizon) < 1:
        raise ValueError(f"dreamer.imag_horizon: must be >= 1, got {cfg.imag_horizon}")
    for key in ("gamma", "lambda_"):
        value = float(getattr(cfg, key))
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"dreamer.{key}: must lie in [0, 1], got {value}")
    for key in ("lr_actor", "lr_critic", "grad_clip"):
        value = float(getattr(cfg, key))
        if not value > 0.0:
            raise ValueError(f"dreamer.{key}: must be > 0, got {value}")
    if cfg.actor_reward_gradient not in ACTOR_REWARD_GRADIENTS:
        raise ValueError(f"dreamer.actor_reward_gradient: must be one of {', '.join(ACTOR_REWARD_GRADIENTS)}, got {cfg.actor_reward_gradient!r}")
    if float(cfg.entropy_coef) < 0.0:
        raise ValueError(f"dreamer.entropy_coef: must be >= 0, got {cfg.entropy_coef}")
    if cfg.actor_reward_prior and not float(cfg.entropy_coef) > 0.0:
        raise ValueError("dreamer.actor_reward_prior: needs dreamer.entropy_coef > 0 (the prior is r / entropy_coef)")
    if int(cfg.target_update_every) < 1:
        raise ValueError(f"dreamer.target_update_every: must be >= 1, got {cfg.target_update_every}")
    if not 0.0 < float(cfg.target_tau) <= 1.0:
        raise ValueError(f"dreamer.target_tau: must lie in (0, 1], got {cfg.target_tau}")


class _RecordingPolicy:
    """The actor as an imagination policy that keeps its logits, with gradients.

    Imagination runs under no_grad (for the world model); re-enabling gradients for
    the actor's forward pass alone gives the log-probabilities REINFORCE needs without
    running the actor over the trajectory a second time.
    """

    def __init__(self, actor: Actor, world_model: WorldModel) -> None:
        self.actor = actor
        self.world_model = world_model
        self.logits: list[torch.Tensor] = []

    def __call__(self, features: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        with torch.enable_grad():
            logits = self.actor.policy_logits(features.detach(), self.world_model)
        self.logits.append(logits)
        return sample_categorical(logits.detach(), generator)


def critic_loss(values: torch.Tensor, returns: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Discount-weighted squared error to the (fixed) λ-returns: a unit-variance Gaussian NLL, as in DreamerV2."""
    return (weights * 0.5 * (values - returns.detach()).pow(2)).mean()


def actor_loss(
    logits: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    entropy_coef: float,
    action_rewards: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE with a baseline plus an entropy bonus, discount-weighted; also returns the entropies.

    loss = -mean(w * (log π(a|s) * sg(advantage) + entropy_coef * H[π(.|s)])): actions
    that did better than the baseline become more probable, worse ones less.

    action_rewards (..., A), optional: the reward of every action in each state, on the
    advantages' scale. Then the loss also has -w * Σ_a π(a|s) r(s, a), the exact
    gradient of the immediate reward (the all-action policy gradient of Mean
    Actor-Critic), and `advantages` must leave that reward out (see
    `ActorCriticTrainer._advantages`). Why: a sampled action tells REINFORCE about one
    of A answers per state; the reward head already scores all of them, so with 24
    answers the actor follows what the world model knows ~A times more directly.
    """
    log_probs = categorical_log_probs(logits)
    chosen = log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    entropy = categorical_entropy(log_probs)
    objective = chosen * advantages.detach() + entropy_coef * entropy
    if action_rewards is not None:
        objective = objective + (log_probs.exp() * action_rewards.detach()).sum(-1)
    loss = -(weights * objective).mean()
    return loss, entropy


@dataclass
class ImaginationTargets:
    """What the losses of one update need, all (N, H) over states s_0 .. s_{H-1}."""

    returns: torch.Tensor  # λ-returns G_t, bootstrapped from the target critic
    weights: torch.Tensor  # discount weights w_t


class ActorCriticTrainer:
    def __init__(
        self,
        cfg: DreamerConfig,
        feature_dim: int,
        n_actions: int,
        device: str | torch.device = "cpu",
        layers: int = DEFAULT_LAYERS,
        max_starts: Optional[int] = None,
    ) -> None:
        """max_starts: imagine from at most this many start states per update, a random
        subset (None: from every one, as DreamerV2). The update's cost is linear in the
        number of starts, and on a CPU it is several world-model updates' worth."""
        validate_dreamer_config(cfg)
        if max_starts is not None and int(max_starts) < 1:
            raise ValueError(f"actor-critic: max_starts must be >= 1 or None, got {max_starts}")
        self.max_starts = None if max_starts is None else int(max_starts)
        self.device = resolve_device(device)
        self.horizon = int(cfg.imag_horizon)
        self.gamma = float(cfg.gamma)
        self.lambda_ = float(cfg.lambda_)
        self.entropy_coef = float(cfg.entropy_coef)
        self.grad_clip = float(cfg.grad_clip)
        self.return_norm = bool(cfg.return_norm)
        self.all_action_rewards = cfg.actor_reward_gradient == "all_actions"
        hidden = resolve_sizes(cfg)["hidden"]
        prior_scale = 1.0 / float(cfg.entropy_coef) if cfg.actor_reward_prior else 0.0
        self.actor = Actor(feature_dim, n_actions, hidden, layers, reward_prior_scale=prior_scale).to(self.device)
        self.critic = Critic(feature_dim, hidden, layers).to(self.device)
        self.target_critic = TargetCritic(self.critic, cfg.target_update_every, cfg.target_tau).to(self.device)
        self.normalizer = ReturnNormalizer().to(self.device)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=float(cfg.lr_actor), eps=1e-5)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=float(cfg.lr_critic), eps=1e-5)
        self.step = 0

    @property
    def feature_dim(self) -> int:
        return self.actor.feature_dim

    @property
    def n_actions(self) -> int:
        return self.actor.n_actions

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return mixed_precision(self.device)

    def _check_inputs(self, world_model: WorldModel, starts: RSSMState) -> None:
        spec = world_model.spec
        if spec.feature_dim != self.feature_dim or spec.n_actions != self.n_actions:
            raise ValueError(
                f"actor-critic: built for features {self.feature_dim} and {self.n_actions} actions, "
                f"but the world model has features {spec.feature_dim} and {spec.n_actions} actions"
            )
        if starts.h.shape[-1] != spec.deter or starts.z.shape[-1] != spec.stoch_dim or starts.h.shape[:-1] != starts.z.shape[:-1]:
            raise ValueError(f"actor-critic: start states need h (..., {spec.deter}) and z (..., {spec.stoch_dim}), got {tuple(starts.h.shape)} and {tuple(starts.z.shape)}")

    def _targets(self, features: torch.Tensor, rewards: torch.Tensor, continues: torch.Tensor) -> ImaginationTargets:
        with torch.no_grad(), self.autocast():
            target_values = self.target_critic(features).float()
        returns = lambda_returns(rewards, target_values, continues, self.gamma, self.lambda_)
        return ImaginationTargets(returns=returns, weights=discount_weights(continues, self.gamma))

    def _apply(self, loss: torch.Tensor, module: nn.Module, optimizer: torch.optim.Optimizer) -> float:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
        optimizer.step()
        return float(grad_norm)

    def _advantages(
        self, returns: torch.Tensor, values: torch.Tensor, rewards: torch.Tensor, action_rewards: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(advantage of each imagined step, per-action rewards for `actor_loss` or None), both normalised.

        The baseline is the online critic, not the target. The target lags by up to
        target_update_every updates (at first it is the zero-initialised critic), and a
        stale baseline leaves every advantage positive, which drives the policy to
        collapse onto whatever it happened to sample (seen on the toy task).

        With all-action rewards, the sampled action's own reward r(s, a) leaves the
        advantage, and its expectation under the policy leaves the baseline: REINFORCE
        then credits the action only with what follows it, while `actor_loss` adds the
        immediate reward's exact gradient. The estimate stays unbiased (the baseline
        still depends on the state alone).
        """
        advantage = returns - values
        per_action: Optional[torch.Tensor] = None
        if self.all_action_rewards:
            per_action = action_rewards[:, :-1].detach().float()
            expected = (torch.softmax(logits.detach().float(), dim=-1) * per_action).sum(-1)
            advantage = advantage - rewards[:, 1:] + expected
        if self.return_norm:
            advantage = self.normalizer(advantage)
            per_action = None if per_action is None else self.normalizer(per_action)
        return advantage, per_action

    def train_step(
        self,
        world_model: WorldModel,
        start_states: RSSMState,
        generator: Optional[torch.Generator] = None,
        start_continues: Optional[torch.Tensor] = None,
    ) -> dict[str, float]:
        """One actor and one critic update from imagination starting at `start_states`.

        start_states: any leading shape, e.g. the (B, T) posteriors of
        `WorldModelUpdate.posterior.states`; they are flattened and detached.
        start_continues: optional 1 - terminal flag of each start (same leading shape);
        without it the continuation head's prediction for the start is used, so
        imagination from a real terminal step counts for (almost) nothing.
        """
        starts = RSSMState(*(part.to(self.device) for part in start_states)).flatten().detach()
        self._check_inputs(world_model, starts)
        flat_continues = None if start_continues is None else start_continues.reshape(-1).to(self.device, torch.float32)
        if flat_continues is not None and flat_continues.shape[0] != starts.h.shape[0]:
            raise ValueError(f"actor-critic: start_continues has {flat_continues.shape[0]} entries for {starts.h.shape[0]} start states")
        if self.max_starts is not None and starts.h.shape[0] > self.max_starts:
            where = generator.device if generator is not None else self.device
            chosen = torch.randperm(starts.h.shape[0], generator=generator, device=where)[: self.max_starts].to(self.device)
            starts = RSSMState(starts.h[chosen], starts.z[chosen])
            flat_continues = None if flat_continues is None else flat_continues[chosen]
        policy = _RecordingPolicy(self.actor, world_model)
        with torch.no_grad(), self.autocast():
            trajectory = world_model.imagine(starts, policy, self.horizon, generator)
        features = trajectory.features.detach()
        rewards = trajectory.rewards.detach().float()
        continues = trajectory.continues.detach().float()
        if flat_continues is not None:
            continues[:, 0] = flat_continues
        targets = self._targets(features, rewards, continues)

        with self.autocast():
            values = self.critic(features[:, :-1]).float()
        loss_critic = critic_loss(values, targets.returns, targets.weights)

        if self.return_norm:
            self.normalizer.update(targets.returns)
        logits = torch.stack(policy.logits, dim=1)
        advantage, action_rewards = self._advantages(targets.returns, values.detach(), rewards, trajectory.action_rewards, logits)
        loss_actor, entropy = actor_loss(logits, trajectory.actions, advantage, targets.weights, self.entropy_coef, action_rewards)

        grad_norm_critic = self._apply(loss_critic, self.critic, self.critic_optimizer)
        grad_norm_actor = self._apply(loss_actor, self.actor, self.actor_optimizer)
        self.target_critic.update(self.critic)
        self.step += 1
        return {
            "loss_actor": float(loss_actor.detach()),
            "loss_critic": float(loss_critic.detach()),
            "policy_entropy": float(entropy.detach().mean()),
            "imagined_return": float(targets.returns[:, 0].mean()),
            "imagined_reward": float(rewards[:, 1:].mean()),
            "value_mean": float(values.detach().mean()),
            "advantage_std": float(advantage.std()),
            "return_scale": float(self.normalizer.scale) if self.return_norm else 1.0,
            "imagined_starts": float(starts.h.shape[0]),
            "grad_norm_actor": grad_norm_actor,
            "grad_norm_critic": grad_norm_critic,
        }

    def policy_weights(self, world_model: WorldModel) -> dict[str, Any]:
        """CPU weights for `AgentPolicy.from_weights(world_model.spec.to_dict(), weights)`:
        what the learner publishes to the env workers."""
        return {
            "world_model": {name: tensor.detach().cpu() for name, tensor in world_model.state_dict().items()},
            "actor": {name: tensor.detach().cpu() for name, tensor in self.actor.state_dict().items()},
            "actor_hidden": self.actor.hidden,
            "actor_layers": self.actor.layers,
        }

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain types only, so torch.load(..., weights_only=True) reads it."""
        return {
            "format": CHECKPOINT_FORMAT,
            "feature_dim": self.feature_dim,
            "n_actions": self.n_actions,
            "hidden": self.actor.hidden,
            "layers": self.actor.layers,
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "step": self.step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"actor-critic checkpoint: format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
        saved = {key: int(state[key]) for key in ("feature_dim", "n_actions", "hidden", "layers")}
        mine = {"feature_dim": self.feature_dim, "n_actions": self.n_actions, "hidden": self.actor.hidden, "layers": self.actor.layers}
        if saved != mine:
            raise ValueError(f"actor-critic checkpoint: sizes {saved} do not match this actor-critic's {mine}")
        configured_prior = float(self.actor.reward_prior_scale)
        self.actor.load_state_dict(state["actor"])
        # The config's reward prior wins over the checkpoint's, as its learning rates do.
        self.actor.set_reward_prior_scale(configured_prior)
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.normalizer.load_state_dict(state["normalizer"])
        load_moments_keeping_settings(self.actor_optimizer, state["actor_optimizer"])
        load_moments_keeping_settings(self.critic_optimizer, state["critic_optimizer"])
        self.step = int(state["step"])
