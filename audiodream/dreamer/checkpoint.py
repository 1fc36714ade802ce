"""run.dir/dreamer/checkpoint.pt: written atomically, read with weights_only=True.

Contents (plain dicts, tensors and numbers): `format`, `fingerprint`, `step` (learner
updates), `env_steps`, `policy_version`, `world_model` (WorldModelTrainer.state_dict:
spec, model, optimiser), `actor_critic` (ActorCriticTrainer.state_dict, or None) and
`trainers_format`.

`fingerprint` hashes only the settings that make a checkpoint (and the replay's tokens)
meaningless under another config: corpus, features, tokenizer, env, model sizes.
Learning rates, train_steps or the train ratio may change between a run and its resume.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Collection, Mapping, Optional

import torch

from audiodream.config.schema import Config
from audiodream.pipeline.stages import TOKENIZER_KEYS, accepted_fingerprints, fingerprint
from audiodream.worldmodel.sizes import LATER_SPEC_KEYS, SIZE_KEYS

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "audiodream.dreamer/1"
CHECKPOINT_FILE = "checkpoint.pt"

RESUME_KEYS: tuple[str, ...] = TOKENIZER_KEYS + (
    "env.id",
    "env.kwargs",
    "env.split",
    "env.episode_steps",
    "dreamer.preset",
    "dreamer.actor_critic",
    "dreamer.codebook_tied",
    *(f"dreamer.{key}" for key in SIZE_KEYS),
)


# Model keys added after runs existed (key -> the value those runs had): each counts only away
# from that value, so a run made before the key was added still resumes and evaluates (with
# that value set).
LATER_RESUME_KEYS: dict[str, object] = {f"dreamer.{key}": value for key, value in LATER_SPEC_KEYS.items()}


def resume_fingerprint(cfg: Config) -> str:
    """What this version writes into checkpoints and replay meta."""
    return fingerprint(cfg, RESUME_KEYS, LATER_RESUME_KEYS)


def resume_fingerprints(cfg: Config) -> tuple[str, ...]:
    """The fingerprints a checkpoint or replay of this config may carry: this version's, and
    those of runs made while the Griffin-Lim settings (stages.RENDER_KEYS), and before that the
    runtime keys (stages.RUNTIME_KEYS), were still hashed."""
    return accepted_fingerprints(cfg, RESUME_KEYS, LATER_RESUME_KEYS)


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """torch.save to a temporary name, then rename: a kill never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **dict(state)}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: not a readable dreamer checkpoint ({err})") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a dreamer checkpoint of format {CHECKPOINT_FORMAT!r}")
    return state


def set_aside(path: Path, why: str) -> Path:
    """Move a stale checkpoint or replay folder out of the way (never delete a user's data)."""
    target = path.with_name(f"{path.name}.stale-{datetime.now():%Y%m%d-%H%M%S}")
    os.replace(path, target)
    log.warning("%s; moved it to %s and starting afresh", why, target)
    return target


def resumable_checkpoint(dreamer_dir: Path, accepted: Collection[str]) -> Optional[dict[str, Any]]:
    """The checkpoint in `dreamer_dir` if it carries one of the `accepted` fingerprints
    (`resume_fingerprints`); a stale folder is set aside."""
    path = dreamer_dir / CHECKPOINT_FILE
    if not path.is_file():
        return None
    state = load_checkpoint(path)
    if state.get("fingerprint") not in accepted:
        set_aside(dreamer_dir, f"{path} was made with a different tokenizer/env/model config")
        return None
    return state
