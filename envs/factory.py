"""Building envs from the config: the one code path launch.py, the Ray workers and the
baseline use, for built-in and plug-in environments alike.

`env.id` is either a registered Gymnasium id (`audiodream/Complete-v0`, or any id some
imported module registered) or a `module:Class` entry point (any importable callable that
returns a gymnasium.Env). Both go through `gymnasium.make`, so plug-ins get the same
checks and wrappers as the built-ins. The constructor receives `env.kwargs` plus those of
the run's settings it declares as parameters (`features`, `chunk_frames`, `split`,
`episode_steps`, `run_dir`); `env.kwargs` wins where both name a key.
"""

from __future__ import annotations

from audiodream.errors import UserFacingError
import importlib
import inspect
from functools import partial
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec, load_env_creator
from gymnasium.vector import SyncVectorEnv, VectorEnv

from audiodream.config.schema import Config
from envs.base import check_audio_observation_space
from envs.tokenize import TokenizeObservation, TokenizeVectorObservation, load_tokenizer

AUDIODREAM_IDS: tuple[str, ...] = ("audiodream/Listen-v0", "audiodream/Complete-v0", "audiodream/Echo-v0")


class EnvConfigError(UserFacingError, ValueError):
    """An `env.id` / `env.kwargs` that cannot be turned into an environment."""


def resolve_env_spec(env_id: str) -> EnvSpec:
    """The EnvSpec of a registered id or of a `module:Class` entry point."""
    if ":" in env_id:
        module_name, attr = env_id.split(":", 1)
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise EnvConfigError(f"env.id {env_id!r}: cannot import module {module_name!r} ({err})") from err
        target = getattr(module, attr, None)
        if callable(target):
            return EnvSpec(id=f"{module_name}:{attr}", entry_point=target)
        if attr in gym.registry:  # gymnasium's own "module:EnvId-v0" form
            return gym.spec(attr)
        raise EnvConfigError(
            f"env.id {env_id!r}: module {module_name!r} has no class or function {attr!r} and registers no env with that id"
        )
    try:
        return gym.spec(env_id)
    except gym.error.Error as err:
        raise EnvConfigError(
            f"env.id {env_id!r} is not a registered Gymnasium id ({err}); use one of {', '.join(AUDIODREAM_IDS)}, "
            f"another registered id, or a module:Class entry point"
        ) from err


def run_settings(cfg: Config, run_dir: Path | str | None) -> dict[str, Any]:
    """The run's settings an audio env may take as constructor parameters."""
    return {
        "features": cfg.features,
        "chunk_frames": cfg.env.chunk_frames,
        "split": cfg.env.split,
        "episode_steps": cfg.env.episode_steps,
        "run_dir": None if run_dir is None else str(run_dir),
    }


def _parameters(creator: Callable[..., Any]) -> tuple[set[str], bool]:
    try:
        params = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: pass nothing implicit
        return set(), False
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def env_kwargs(spec: EnvSpec, cfg: Config, run_dir: Path | str | None) -> dict[str, Any]:
    """Constructor kwargs: spec defaults, accepted run settings, then `env.kwargs`."""
    creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(spec.entry_point)
    names, takes_any = _parameters(creator)
    settings = {k: v for k, v in run_settings(cfg, run_dir).items() if takes_any or k in names}
    user = dict(cfg.env.kwargs)
    if not takes_any:
        unknown = sorted(set(user) - names)
        if unknown:
            raise EnvConfigError(
                f"env.kwargs: {unknown} not accepted by {cfg.env.id!r} (its parameters: {sorted(names)})"
            )
    return {**settings, **user}


def make_env(cfg: Config, tokenizer_path: Path | str | None = None, run_dir: Path | str | None = None) -> gym.Env:
    """The configured env (`env.id`, `env.kwargs`), tokenised when `tokenizer_path` is given."""
    spec = resolve_env_spec(cfg.env.id)
    try:
        env = gym.make(spec, **env_kwargs(spec, cfg, run_dir))
    except TypeError as err:
        raise EnvConfigError(f"env.id {cfg.env.id!r}: constructor rejected the arguments ({err}); check env.kwargs") from err
    check_audio_observation_space(env.observation_space, cfg.features.n_mels, cfg.env.chunk_frames, cfg.env.id)
    if tokenizer_path is not None:
        env = TokenizeObservation(env, load_tokenizer(tokenizer_path, cfg.features))
    return env


def make_vector_env(
    cfg: Config, n: int | None = None, tokenizer_path: Path | str | None = None, run_dir: Path | str | None = None
) -> VectorEnv:
    """`n` (default `env.num_envs`) envs stepped in this process; tokens come from one batched
    tokenizer pass per step. Autoreset is Gymnasium's default (next step)."""
    count = cfg.env.num_envs if n is None else int(n)
    if count < 1:
        raise EnvConfigError(f"make_vector_env: need at least one env, got {count}")
    vector = SyncVectorEnv([partial(make_env, cfg, None, run_dir) for _ in range(count)])
    if tokenizer_path is not None:
        vector = TokenizeVectorObservation(vector, load_tokenizer(tokenizer_path, cfg.features))
    return vector
