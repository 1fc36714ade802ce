"""The real pieces of a Dreamer run, as the distributed layer asks for them (distributed/parts.py).

The tokenizer checkpoint travels inside this (pickled) object as bytes and is written
to a node-local cache file where a worker needs it, so workers on other machines need
no shared filesystem. Environments that read corpus files from run.dir (Listen-v0)
still need that data on the node they run on; Complete-v0 and Echo-v0 synthesise
their audio and do not.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch

from audiodream.agent import AgentPolicy, RandomPolicy
from audiodream.config.schema import Config
from audiodream.dreamer.trainers import DreamerTrainers
from audiodream.tokenizer.model import read_checkpoint
from audiodream.tokenizer.stage import require_tokenizer_checkpoint


def tokenizer_geometry(path: Path) -> tuple[int, int, np.ndarray]:
    """(tokens per step, codebook size, (V, code_dim) unit code vectors) of a tokenizer checkpoint."""
    from audiodream.tokenizer.model import Tokenizer

    tokenizer = Tokenizer.load(path)
    codebook = tokenizer.quantizer.normalized_codebook().detach().cpu().numpy()
    return int(tokenizer.tokens_per_step), int(tokenizer.codebook_size), codebook


def _node_local_copy(data: bytes) -> Path:
    digest = hashlib.sha1(data).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "audiodream" / f"tokenizer-{digest}.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


@dataclass
class AudioDreamerParts:
    cfg: Config
    run_dir: str
    tokenizer_bytes: bytes
    tokens_per_step: int
    vocab_size: int
    n_actions: int
    codebook: np.ndarray  # (V, code_dim) the tokenizer's code vectors, for a codebook-tied world model

    @classmethod
    def from_run(cls, cfg: Config, run_dir: Path) -> "AudioDreamerParts":
        import envs

        path = require_tokenizer_checkpoint(run_dir, "the dreamer stage", "data, tokenizer, dreamer")
        read_checkpoint(path)  # a clear error for an unreadable file
        tokens_per_step, vocab_size, codebook = tokenizer_geometry(path)
        probe = envs.make_env(cfg, None, run_dir)
        try:
            n_actions = int(getattr(probe.action_space, "n", 0))
        finally:
            probe.close()
        if n_actions < 1:
            raise ValueError(f"env.id {cfg.env.id!r}: Dreamer needs a Discrete action space, got {probe.action_space}")
        return cls(cfg, str(run_dir), path.read_bytes(), tokens_per_step, vocab_size, n_actions, codebook)

    def tokenizer_path(self) -> Path:
        return _node_local_copy(self.tokenizer_bytes)

    def make_vector_env(self, num_envs: int, seed: int) -> Any:
        import envs

        return envs.make_vector_env(self.cfg, num_envs, self.tokenizer_path(), self.run_dir)

    def random_policy(self, seed: int) -> RandomPolicy:
        return RandomPolicy(self.n_actions)

    def policy_from_weights(self, weights: Mapping[str, Any], previous: Optional[AgentPolicy]) -> AgentPolicy:
        if isinstance(previous, AgentPolicy):
            previous.load_weights(weights)
            return previous
        return AgentPolicy.from_weights(weights["spec"], weights, self.cfg.dreamer.explore_epsilon)

    def make_trainers(self, device: torch.device) -> DreamerTrainers:
        return DreamerTrainers(self.cfg.dreamer, self.tokens_per_step, self.vocab_size, self.n_actions, device, torch.tensor(self.codebook))  # a copy: arrays from Ray's object store are read-only
