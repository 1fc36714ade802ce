"""Token episodes for evaluation: fresh ones played in an env, and the training ones in replay.

`play_episodes` runs a tokenised vector env until every sub-env has finished its
share of exactly `n` episodes (a fixed quota per sub-env, so short episodes are not
over-represented the way "the first n to finish" would over-represent them). Episodes
follow the world model's conventions (worldmodel/batch.py): actions[t] is the action
that led to step t (0 at the first step), rewards[t] arrives with step t.

Gymnasium's vector envs reset a finished sub-env on the *next* step (NEXT_STEP
autoreset): that step returns the new episode's first observation and ignores the
action sent, which is why a step after an episode end starts a new episode here.

`replay_episodes` reads run.dir/replay/ (the chunk files the dreamer stage's replay
buffer persists) without opening a ReplayBuffer, which would prune the folder to its
capacity: eval must never change a run's data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from audiodream.distributed.replay import FIRST_BIT, TERMINAL_BIT
from audiodream.distributed.replay_store import CHUNK_PATTERN, META_FILE
from audiodream.distributed.token_packing import TokenPacker

Episode = dict[str, np.ndarray]


@dataclass
class PlayedEpisodes:
    episodes: list[Episode] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)

    @property
    def return_mean(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")


@dataclass
class _OpenEpisode:
    tokens: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)

    def add(self, tokens: np.ndarray, action: int, reward: float) -> None:
        self.tokens.append(np.asarray(tokens, np.int64))
        self.actions.append(int(action))
        self.rewards.append(float(reward))

    def close(self, terminated: bool) -> Episode:
        terminals = np.zeros(len(self.actions), bool)
        terminals[-1] = terminated
        is_first = np.zeros(len(self.actions), bool)
        is_first[0] = True
        return {
            "tokens": np.stack(self.tokens),
            "actions": np.asarray(self.actions, np.int64),
            "rewards": np.asarray(self.rewards, np.float32),
            "terminals": terminals,
            "is_first": is_first,
        }


def quotas(n_episodes: int, num_envs: int) -> np.ndarray:
    """Episodes each sub-env must finish: n split as evenly as possible."""
    base = np.full(num_envs, n_episodes // num_envs, np.int64)
    base[: n_episodes % num_envs] += 1
    return base


def play_episodes(
    vector_env: Any,
    policy: Any,
    n_episodes: int,
    seed: int,
    greedy: bool,
    progress: bool = False,
    desc: str = "episodes",
    max_steps_per_episode: int = 100_000,
) -> PlayedEpisodes:
    """Exactly `n_episodes` whole episodes of `policy` (an ActingPolicy) in a tokenised vector env."""
    if n_episodes < 1:
        raise ValueError(f"play_episodes: need at least one episode, got {n_episodes}")
    num_envs = int(vector_env.num_envs)
    wanted = quotas(n_episodes, num_envs)
    finished: list[list[tuple[Episode, float]]] = [[] for _ in range(num_envs)]
    generator = torch.Generator().manual_seed(seed)
    obs, _ = vector_env.reset(seed=seed)
    open_eps: list[Optional[_OpenEpisode]] = [None] * num_envs
    for env in range(num_envs):
        open_eps[env] = _OpenEpisode()
        open_eps[env].add(obs[env], 0, 0.0)  # type: ignore[union-attr]
    first = np.ones(num_envs, bool)
    prev_actions = np.zeros(num_envs, np.int64)
    state = policy.initial_state(num_envs)
    bar = tqdm(total=n_episodes, desc=desc, unit="episode", disable=not progress, leave=False)
    while any(len(done) < want for done, want in zip(finished, wanted)):
        actions, state = policy.act(obs, prev_actions, first, state, greedy, generator)
        actions = np.asarray(actions, np.int64)
        obs, rewards, terminated, truncated, _ = vector_env.step(actions)
        first = np.zeros(num_envs, bool)
        for env in range(num_envs):
            episode = open_eps[env]
            if episode is None:  # the previous step ended this sub-env's episode: this obs starts the next
                open_eps[env] = _OpenEpisode()
                open_eps[env].add(obs[env], 0, 0.0)  # type: ignore[union-attr]
                first[env] = True
                continue
            episode.add(obs[env], int(actions[env]), float(rewards[env]))
            if terminated[env] or truncated[env]:
                closed = episode.close(bool(terminated[env]))
                if len(finished[env]) < wanted[env]:
                    finished[env].append((closed, float(closed["rewards"].sum())))
                    bar.update(1)
                open_eps[env] = None
            elif len(episode.actions) > max_steps_per_episode:
                raise RuntimeError(f"play_episodes: an episode ran past {max_steps_per_episode} steps without ending")
        prev_actions = np.where(first, 0, actions)
    bar.close()
    result = PlayedEpisodes()
    for env_episodes in finished:
        for closed, ret in env_episodes:
            result.episodes.append(closed)
            result.returns.append(ret)
    return result


# ------------------------------------------------------------------------------ replay


def read_replay_meta(replay_dir: Path) -> dict[str, Any]:
    path = Path(replay_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no replay data here (the dreamer stage writes it)")
    return json.loads(path.read_text())


def replay_episodes(replay_dir: Path, max_steps: Optional[int] = None, accepted_fingerprints: Optional[Collection[str]] = None) -> list[Episode]:
    """The stored training segments (one per episode, or per stored piece of a long one), newest
    `max_steps` steps at most, oldest first; tokens unpacked to (T, K) int64. With
    `accepted_fingerprints` (checkpoint.resume_fingerprints), data of another config is refused."""
    replay_dir = Path(replay_dir)
    meta = read_replay_meta(replay_dir)
    if accepted_fingerprints is not None and meta.get("fingerprint") not in accepted_fingerprints:
        raise ValueError(f"{replay_dir}: replay data was made under a different tokenizer/env/model config than this one")
    packer = TokenPacker(int(meta["tokens_per_step"]), int(meta["vocab_size"]))
    files = sorted(p for p in replay_dir.iterdir() if CHUNK_PATTERN.match(p.name))
    arrays: list[dict[str, np.ndarray]] = []
    total = 0
    for path in reversed(files):  # newest first, until max_steps
        with np.load(path) as data:
            arrays.append({key: data[key] for key in ("tokens", "actions", "rewards", "flags")})
        total += len(arrays[-1]["actions"])
        if max_steps is not None and total >= max_steps:
            break
    episodes: list[Episode] = []
    for chunk in reversed(arrays):
        episodes.extend(_split_segments(chunk, packer))
    if max_steps is not None:  # whole chunks were read: drop the oldest segments beyond max_steps
        kept, steps = [], 0
        for episode in reversed(episodes):
            if steps >= max_steps:
                break
            kept.append(episode)
            steps += len(episode["actions"])
        episodes = kept[::-1]
    return episodes


def _split_segments(chunk: dict[str, np.ndarray], packer: TokenPacker) -> list[Episode]:
    flags = chunk["flags"]
    starts = np.flatnonzero(flags & FIRST_BIT)
    if len(starts) == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    ends = np.concatenate([starts[1:], [len(flags)]])
    tokens = packer.unpack(chunk["tokens"])
    return [
        {
            "tokens": tokens[a:b],
            "actions": chunk["actions"][a:b].astype(np.int64),
            "rewards": chunk["rewards"][a:b].astype(np.float32),
            "terminals": (flags[a:b] & TERMINAL_BIT) > 0,
            "is_first": (flags[a:b] & FIRST_BIT) > 0,
        }
        for a, b in zip(starts, ends)
        if b > a
    ]


def total_steps(episodes: Sequence[Episode]) -> int:
    return int(sum(len(e["actions"]) for e in episodes))
