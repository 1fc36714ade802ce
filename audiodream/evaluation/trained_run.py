"""What eval and generate read back from a finished run.dir: tokenizer, world model, actor.

Both stages rebuild the models from the files the earlier stages wrote
(`tokenizer/checkpoint.pt`, `dreamer/checkpoint.pt`), never from the config alone, so
they evaluate exactly what was trained. A dreamer checkpoint made under different
tokenizer/env/model settings (its `fingerprint`) is refused: its tokens and actions
would mean something else under this config, and the numbers would be quietly wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from audiodream.agent import Actor, AgentPolicy
from audiodream.config.schema import Config
from audiodream.dreamer.checkpoint import CHECKPOINT_FILE, LATER_RESUME_KEYS, load_checkpoint, resume_fingerprints
from audiodream.errors import MissingStageOutput
from audiodream.tokenizer.model import Tokenizer
from audiodream.tokenizer.stage import require_tokenizer_checkpoint
from audiodream.worldmodel import WorldModel, WorldModelSpec

DREAMER_CHECKPOINT = Path("dreamer") / CHECKPOINT_FILE


@dataclass
class TrainedRun:
    """The trained models of one run.dir, ready for inference (eval mode, no gradients)."""

    tokenizer: Tokenizer
    world_model: WorldModel
    actor: Optional[Actor]  # None: the run trained the world model only
    tokenizer_path: Path
    step: int  # learner updates behind these weights
    model_ema_decay: Optional[float] = None  # the world model's weights are this moving average (None: the last weights)
    model_ema_power: Optional[float] = None  # ... or this power-function average (weight_average.py)
    model_ema_start: int = 0  # ... of the updates after this one

    @property
    def device(self) -> torch.device:
        return self.world_model.device

    @property
    def n_actions(self) -> int:
        return self.world_model.spec.n_actions

    def agent_policy(self) -> Optional[AgentPolicy]:
        """The acting policy for real envs (CPU copies), or None without an actor."""
        return None if self.actor is None else AgentPolicy(self.world_model, self.actor)


def tokenizer_checkpoint(run_dir: Path) -> Path:
    return require_tokenizer_checkpoint(run_dir, "eval/generate", "data, tokenizer, dreamer, eval")


def world_model_from_state(state: Mapping[str, Any]) -> WorldModel:
    """A WorldModel from the `world_model` entry of a dreamer checkpoint (WorldModelTrainer.state_dict):
    its moving-average weights when the run kept them (dreamer.model_ema_decay / model_ema_power), else its last weights."""
    model = WorldModel(WorldModelSpec.from_dict(state["spec"]))
    averaged = state.get("model_ema")
    model.load_state_dict(state["model"] if averaged is None else averaged)
    return model


def actor_from_state(state: Mapping[str, Any]) -> Actor:
    """An Actor from the `actor_critic` entry of a dreamer checkpoint (ActorCriticTrainer.state_dict)."""
    actor = Actor(int(state["feature_dim"]), int(state["n_actions"]), int(state["hidden"]), int(state["layers"]))
    actor.load_state_dict(state["actor"])  # sets the reward prior scale the actor was saved with
    return actor


def load_trained_run(cfg: Config, run_dir: Path, device: torch.device | str = "cpu") -> TrainedRun:
    """Tokenizer + world model (+ actor) of `run_dir`; clear errors for missing or foreign files."""
    run_dir = Path(run_dir)
    tok_path = tokenizer_checkpoint(run_dir)
    tokenizer = Tokenizer.load(tok_path, features=cfg.features, device="cpu")
    tokenizer.requires_grad_(False)
    ckpt_path = run_dir / DREAMER_CHECKPOINT
    if not ckpt_path.is_file():
        raise MissingStageOutput(f"{ckpt_path}: dreamer checkpoint not found; run the dreamer stage first (run.stages=[..., dreamer, eval])")
    state = load_checkpoint(ckpt_path)
    if state.get("fingerprint") not in resume_fingerprints(cfg):
        raise ValueError(
            f"{ckpt_path}: made with different corpus/features/tokenizer/env/model settings than this config; "
            f"evaluate it with the config it was trained with ({run_dir / 'config.yaml'}); a run made before "
            f"model keys were added opens with their old values: {' '.join(f'{k}={v}' for k, v in LATER_RESUME_KEYS.items())}"
        )
    try:
        world_model = world_model_from_state(state["world_model"])
        actor_state = state.get("actor_critic")
        actor = actor_from_state(actor_state) if actor_state is not None else None
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise ValueError(f"{ckpt_path}: dreamer checkpoint does not fit this code's models ({type(err).__name__}: {err})") from err
    spec = world_model.spec
    if spec.tokens_per_step != tokenizer.tokens_per_step or spec.vocab_size != tokenizer.codebook_size:
        raise ValueError(
            f"{ckpt_path}: world model expects {spec.tokens_per_step} tokens per step from a codebook of {spec.vocab_size}, "
            f"but {tok_path} gives {tokenizer.tokens_per_step} from {tokenizer.codebook_size}"
        )
    world_model = world_model.to(device).eval().requires_grad_(False)
    if actor is not None:
        actor = actor.to(device).eval().requires_grad_(False)
    # WorldModelTrainer.state_dict writes ema_decay, ema_power and ema_start when it writes model_ema (older checkpoints lack them).
    saved = state["world_model"]
    return TrainedRun(
        tokenizer, world_model, actor, tok_path, int(state.get("step", 0)), saved.get("ema_decay"), saved.get("ema_power"), int(saved.get("ema_start", 0))
    )
