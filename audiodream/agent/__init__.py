"""DreamerV2 actor-critic learned in the world model's imagination, and the policies that act in real envs."""

from audiodream.agent.actor_critic import ActorCriticTrainer, actor_loss, critic_loss, validate_dreamer_config
from audiodream.agent.networks import Actor, Critic, categorical_entropy, categorical_log_probs, sample_categorical
from audiodream.agent.policy import ActingPolicy, AgentPolicy, RandomPolicy
from audiodream.agent.return_norm import ReturnNormalizer
from audiodream.agent.returns import discount_weights, lambda_returns
from audiodream.agent.target_critic import TargetCritic

__all__ = [
    "ActingPolicy",
    "Actor",
    "ActorCriticTrainer",
    "AgentPolicy",
    "Critic",
    "RandomPolicy",
    "ReturnNormalizer",
    "TargetCritic",
    "actor_loss",
    "categorical_entropy",
    "categorical_log_probs",
    "critic_loss",
    "discount_weights",
    "lambda_returns",
    "sample_categorical",
    "validate_dreamer_config",
]
