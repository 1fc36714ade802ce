"""RLlib adapter (new API stack) around TokenRecurrentNet; the only Ray-aware model code.

RLlib's default modules cannot take MultiDiscrete token observations (its one-hot
flattening would turn 48 x 1024 tokens into a 49k-wide input), so PPO gets this module.
State handling follows RLlib's LSTM example: a (B, hidden) state per sequence, inputs
with a time axis (B, T, K) in both sampling (T = 1) and training (T = max_seq_len).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from audiodream.baseline.network import TokenRecurrentNet


class TokenRecurrentPPOModule(TorchRLModule, ValueFunctionAPI):
    """model_config: embed_dim, hidden (and RLlib's max_seq_len)."""

    def setup(self) -> None:
        nvec = np.asarray(self.observation_space.nvec)
        self.net = TokenRecurrentNet(
            codebook_size=int(nvec.max()),
            tokens_per_step=int(nvec.shape[-1]),
            n_actions=int(self.action_space.n),
            embed_dim=int(self.model_config.get("embed_dim", 16)),
            hidden=int(self.model_config.get("hidden", 128)),
        )

    def get_initial_state(self) -> dict[str, np.ndarray]:
        return {"h": np.zeros(self.net.hidden, dtype=np.float32)}

    def _features(self, batch: dict[str, Any]):
        feats, last = self.net.features(batch[Columns.OBS], batch[Columns.STATE_IN]["h"])
        return feats, {"h": last}

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        feats, state_out = self._features(batch)
        return {Columns.ACTION_DIST_INPUTS: self.net.policy(feats), Columns.STATE_OUT: state_out}

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        feats, state_out = self._features(batch)
        return {Columns.ACTION_DIST_INPUTS: self.net.policy(feats), Columns.STATE_OUT: state_out, Columns.EMBEDDINGS: feats}

    def compute_values(self, batch: dict[str, Any], embeddings: Optional[Any] = None):
        if embeddings is None:
            embeddings, _ = self._features(batch)
        return self.net.value(embeddings).squeeze(-1)
