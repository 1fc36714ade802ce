"""Turns the steps of a vector env into episode segments ready for the replay buffer.

Gymnasium vector envs reset finished sub-envs themselves. In the default NEXT_STEP
autoreset mode the step *after* an episode's last step returns the new episode's
first observation and ignores that sub-env's action; the recorder stores that
observation as a first step (action 0, reward 0) and treats the episode's last step
as its end. Each sub-env has a preallocated open segment; a finished episode (or a
segment that reached `max_segment_steps`) moves to the outgoing list, which `drain`
hands over as one chunk (chunks.py conventions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from audiodream.distributed.chunks import Chunk


@dataclass
class FinishedEpisodes:
    """Episodes that ended since the last drain: their returns and lengths."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)


class EpisodeRecorder:
    def __init__(self, num_envs: int, tokens_per_step: int, max_segment_steps: int, episode_id_base: int) -> None:
        if max_segment_steps < 2:
            raise ValueError(f"max_segment_steps must be >= 2, got {max_segment_steps}")
        self.num_envs = int(num_envs)
        self.max_segment_steps = int(max_segment_steps)
        self.tokens = np.zeros((num_envs, max_segment_steps, tokens_per_step), np.int64)
        self.actions = np.zeros((num_envs, max_segment_steps), np.int64)
        self.rewards = np.zeros((num_envs, max_segment_steps), np.float32)
        self.terminals = np.zeros((num_envs, max_segment_steps), bool)
        self.is_first = np.zeros((num_envs, max_segment_steps), bool)
        self.length = np.zeros(num_envs, np.int64)
        self.episode_ids = np.zeros(num_envs, np.int64)
        self.episode_return = np.zeros(num_envs, np.float64)
        self.episode_length = np.zeros(num_envs, np.int64)
        self.ended = np.ones(num_envs, bool)  # the next observation of this sub-env starts an episode
        self._next_episode = int(episode_id_base)
        self._outgoing: list[Chunk] = []
        self._outgoing_steps = 0
        self.finished = FinishedEpisodes()

    @property
    def pending_steps(self) -> int:
        """Steps ready to be drained (whole segments)."""
        return self._outgoing_steps

    def first_flags(self) -> np.ndarray:
        """Which sub-envs' next recorded observation starts an episode (the policy resets its state there)."""
        return self.ended.copy()

    def record(self, tokens: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
        """Record the observations of one vector step (or of reset: pass zero actions/rewards, all False).

        `actions` are the actions sent to env.step that produced these observations.
        Returns the per-sub-env flags "this observation starts an episode", i.e. the
        `is_first` the policy needs with this observation.
        """
        first = self.ended.copy()
        taken = np.where(first, 0, np.asarray(actions, np.int64))
        reward = np.where(first, 0.0, np.asarray(rewards, np.float32)).astype(np.float32)
        terminal = np.asarray(terminated, bool) & ~first
        done = (terminal | (np.asarray(truncated, bool) & ~first))
        for env in np.flatnonzero(first):
            self._start_episode(int(env))
        rows = np.arange(self.num_envs)
        at = self.length
        self.tokens[rows, at] = tokens
        self.actions[rows, at] = taken
        self.rewards[rows, at] = reward
        self.terminals[rows, at] = terminal
        self.is_first[rows, at] = first | (at == 0)
        self.length += 1
        self.episode_return += reward
        self.episode_length += 1
        for env in np.flatnonzero(done):
            self.finished.returns.append(float(self.episode_return[env]))
            self.finished.lengths.append(int(self.episode_length[env]))
            self._close_segment(int(env))
        for env in np.flatnonzero(~done & (self.length >= self.max_segment_steps)):
            self._close_segment(int(env))  # long episode: stored in pieces, the next piece resets the model
        self.ended = done
        return first

    def _start_episode(self, env: int) -> None:
        self.episode_ids[env] = self._next_episode
        self._next_episode += 1
        self.episode_return[env] = 0.0
        self.episode_length[env] = 0

    def _close_segment(self, env: int) -> None:
        n = int(self.length[env])
        if n:
            self._outgoing.append(
                {
                    "tokens": self.tokens[env, :n].copy(),
                    "actions": self.actions[env, :n].copy(),
                    "rewards": self.rewards[env, :n].copy(),
                    "terminals": self.terminals[env, :n].copy(),
                    "is_first": self.is_first[env, :n].copy(),
                    "episode_ids": np.full(n, self.episode_ids[env], np.int64),
                }
            )
            self._outgoing_steps += n
        self.length[env] = 0

    def drain(self) -> tuple[list[Chunk], FinishedEpisodes]:
        """Closed segments since the last drain, and the episodes that finished."""
        segments, finished = self._outgoing, self.finished
        self._outgoing, self._outgoing_steps, self.finished = [], 0, FinishedEpisodes()
        return segments, finished
