"""audiodream's Gymnasium "spectrogram environments".

Importing this package registers with Gymnasium:

* ``audiodream/Listen-v0``   stream clips of a corpus split (passive; for world-model learning)
* ``audiodream/Complete-v0`` continue a syllable sequence; exact optimal/random returns
* ``audiodream/Echo-v0``     repeat a spoken word (memory)

Every env emits z-scored log-mel chunks, ``Box(float32, (n_mels, chunk_frames))``, one
chunk per step (see envs.base). `make_env` / `make_vector_env` build the env named by
the config's ``env.id`` (a registered id or ``module:Class``), optionally tokenised;
`register_rllib_envs` / `register_configured_env` expose them to RLlib.
This package depends on audiodream's features, corpora and tokenizer only.
"""

from __future__ import annotations

import gymnasium as gym

from envs.factory import AUDIODREAM_IDS, EnvConfigError, make_env, make_vector_env, resolve_env_spec
from envs.rllib import register_configured_env, register_rllib_envs
from envs.tokenize import TokenizeObservation, TokenizeVectorObservation, load_tokenizer

_ENTRY_POINTS = {
    "audiodream/Listen-v0": "envs.listen:ListenEnv",
    "audiodream/Complete-v0": "envs.complete:CompleteEnv",
    "audiodream/Echo-v0": "envs.echo:EchoEnv",
}

for _env_id, _entry_point in _ENTRY_POINTS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point)

__all__ = [
    "AUDIODREAM_IDS",
    "EnvConfigError",
    "make_env",
    "make_vector_env",
    "resolve_env_spec",
    "register_rllib_envs",
    "register_configured_env",
    "TokenizeObservation",
    "TokenizeVectorObservation",
    "load_tokenizer",
]
