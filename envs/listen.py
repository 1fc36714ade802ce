"""audiodream/Listen-v0: passive listening, for learning a world model from audio alone.

Each episode is one clip of a corpus split, streamed chunk by chunk (one chunk of
`chunk_frames` z-scored log-mel frames per step). A clip with more than
`episode_steps + 1` chunks yields a random window of `episode_steps` steps that ends
`truncated` (the clip goes on); a shorter clip is played whole and ends `terminated`.
Frames after the last whole chunk are dropped. The only action is 0 (listen); reward 0.

Clips come from the data stage's manifest in `run_dir` (source "manifest") or are
synthesised from the built-in grammar (source "synthetic"); "auto" uses the manifest when
`run_dir` has one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from gymnasium import spaces

from audiodream.config.schema import FeaturesConfig
from audiodream.data.stage import DataPaths
from envs.base import AudioEnv
from envs.clips import ClipSource, ManifestClips, SyntheticClips

SOURCES = ("auto", "manifest", "synthetic")


class ListenEnv(AudioEnv):
    def __init__(
        self,
        features: FeaturesConfig | Mapping[str, Any] | None = None,
        chunk_frames: int = 16,
        episode_steps: int = 32,
        split: str = "train",
        run_dir: str | Path | None = None,
        source: str = "auto",
        synthetic_clips: int = 64,
        min_syllables: int = 8,
        max_syllables: int = 20,
        clip_seed: int = 0,
    ) -> None:
        super().__init__(features, chunk_frames)
        if episode_steps < 1:
            raise ValueError(f"Listen-v0: episode_steps must be >= 1, got {episode_steps}")
        if source not in SOURCES:
            raise ValueError(f"Listen-v0: source must be one of {SOURCES}, got {source!r}")
        self.episode_steps = int(episode_steps)
        self.action_space = spaces.Discrete(1)
        self.clips = self._open_source(source, run_dir, split, synthetic_clips, min_syllables, max_syllables, clip_seed)
        self._chunks: np.ndarray = np.zeros((0,) + self.observation_space.shape, np.float32)
        self._position = 0
        self._truncates = False

    def _open_source(
        self, source: str, run_dir: str | Path | None, split: str, n_clips: int, min_syll: int, max_syll: int, seed: int
    ) -> ClipSource:
        has_manifest = run_dir is not None and DataPaths.of(Path(run_dir)).manifest.is_file()
        if source == "manifest" or (source == "auto" and has_manifest):
            if run_dir is None:
                raise ValueError("Listen-v0: source='manifest' needs run_dir (the run directory of a data stage)")
            return ManifestClips(run_dir, self.features, split, min_frames=2 * self.chunk_frames)
        return SyntheticClips(self.features, self.chunk_frames, split, n_clips, min_syll, max_syll, seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        index = int(self.np_random.integers(len(self.clips)))
        mel = self.clips.mel(index)
        n_chunks = mel.shape[1] // self.chunk_frames
        if n_chunks < 2:
            raise ValueError(f"Listen-v0: clip {index} of {self.clips.source} has fewer than 2 chunks of {self.chunk_frames} frames")
        start, length = 0, n_chunks
        self._truncates = n_chunks > self.episode_steps + 1
        if self._truncates:
            length = self.episode_steps + 1
            start = int(self.np_random.integers(n_chunks - length + 1))
        frames = mel[:, start * self.chunk_frames : (start + length) * self.chunk_frames]
        self._chunks = np.ascontiguousarray(
            frames.reshape(mel.shape[0], length, self.chunk_frames).transpose(1, 0, 2), dtype=np.float32
        )
        self._position = 0
        return self._chunks[0], {"clip": index, "start_chunk": start}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.check_action(action)
        if self._position >= len(self._chunks) - 1:
            raise RuntimeError("Listen-v0: the episode has ended; call reset() before step()")
        self._position += 1
        last = self._position == len(self._chunks) - 1
        truncated = last and self._truncates
        return self._chunks[self._position], 0.0, last and not truncated, truncated, {}
