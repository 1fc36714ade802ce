"""RSSM world model over audio tokens (DreamerV2-style), trainable in-process without Ray.

    trainer = WorldModelTrainer.from_config(cfg.dreamer, tokens_per_step=48, vocab_size=1024, n_actions=24)
    update = trainer.update(batch)            # batch: tokens (B,T,K), actions, rewards, terminals, is_first
    starts = update.posterior.states.flatten()  # every posterior state, detached
    traj = trainer.model.imagine(starts, policy, horizon=15, generator=g)   # traj.features = concat(h, z)
    report = evaluate_world_model(trainer.model, train_episodes, test_episodes)

Time convention (pydreamer): actions[:, t] is the action that led to step t.
"""

from audiodream.worldmodel.batch import SequenceBatch, to_sequence_batch
from audiodream.worldmodel.evaluate import baseline_ce, evaluate_world_model, fit_baselines, open_loop_ce
from audiodream.worldmodel.losses import balanced_kl_loss
from audiodream.worldmodel.model import ImaginedTrajectory, Policy, WorldModel
from audiodream.worldmodel.networks import sample_tokens
from audiodream.worldmodel.rssm import RSSMState, PosteriorSequence
from audiodream.worldmodel.sizes import PRESETS, WorldModelSpec, resolve_sizes, spec_from_config
from audiodream.worldmodel.trainer import WorldModelTrainer, WorldModelUpdate, resolve_device

__all__ = [
    "ImaginedTrajectory",
    "PRESETS",
    "Policy",
    "PosteriorSequence",
    "RSSMState",
    "SequenceBatch",
    "WorldModel",
    "WorldModelSpec",
    "WorldModelTrainer",
    "WorldModelUpdate",
    "balanced_kl_loss",
    "baseline_ce",
    "evaluate_world_model",
    "fit_baselines",
    "open_loop_ce",
    "resolve_device",
    "resolve_sizes",
    "sample_tokens",
    "spec_from_config",
    "to_sequence_batch",
]
