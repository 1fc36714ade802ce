"""Turn-taking tasks: the env speaks a prompt in one voice, pauses, then the agent speaks.

Episode timeline (P prompt syllables, A answers; P + A env steps, P + A + 1 observations)::

    reset        -> prompt[0]
    steps 1..P-1 -> prompt[1..P-1]       actions ignored, reward 0      phase "prompt"
    step  P      -> silence (turn cue)   action ignored, reward 0       phase "turn"
    steps P+1..  -> the agent's syllable in the prompt's voice, task reward, phase "answer";
                    terminated after the A-th answer.

Why a silence step: an agent that only hears audio (a Dreamer world model, a recurrent
PPO policy) must know when its actions start to count. A fixed prompt length would make
that a counting problem; the pause makes it audible, so prompt lengths can vary.

Normalisation, as the tokenizer expects per-utterance z-scored log-mels: the prompt is
the utterance whose statistics are known at reset, so every chunk of the episode
(prompt, pause and answers) is z-scored with the mean/std of the prompt's raw log-mel.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from gymnasium import spaces

from audiodream.config.schema import FeaturesConfig
from audiodream.features.logmel import MIN_STD
from envs.base import AudioEnv
from envs.voices import N_SYLLABLES, VoiceBank, split_seed


class SpokenTaskEnv(AudioEnv):
    """Base of Complete-v0 and Echo-v0; subclasses choose the prompt, the answer count and the reward."""

    def __init__(
        self,
        features: FeaturesConfig | Mapping[str, Any] | None = None,
        chunk_frames: int = 16,
        split: str = "train",
        voices: int = 32,
        takes: int = 2,
        voice_seed: int = 0,
    ) -> None:
        super().__init__(features, chunk_frames)
        self.split = split
        self.bank = VoiceBank.shared(self.features, self.chunk_frames, voices, takes, voice_seed + split_seed(split))
        self.n_syllables = N_SYLLABLES
        self.action_space = spaces.Discrete(N_SYLLABLES)
        self._pending: list[np.ndarray] = []
        self._done = True
        self.spoken: list[int] = []
        self.prompt: list[int] = []
        self.answers: list[int] = []
        self.answers_due = 0

    # ------------------------------------------------------------ for subclasses
    def sample_prompt(self, rng: np.random.Generator) -> list[int]:
        raise NotImplementedError

    def answer_count(self, prompt: list[int]) -> int:
        raise NotImplementedError

    def answer_reward(self, action: int) -> float:
        """Reward of `action` as the next answer; `self.spoken` / `self.answers` exclude it."""
        raise NotImplementedError

    # ------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        self._voice = int(rng.integers(self.bank.n_voices))
        self.prompt = [int(s) for s in self.sample_prompt(rng)]
        if len(self.prompt) < 1:
            raise RuntimeError(f"{type(self).__name__}.sample_prompt returned an empty prompt")
        self.answers_due = int(self.answer_count(self.prompt))
        self.spoken = list(self.prompt)
        self.answers = []
        raw = self._raw_chunks(self.prompt)
        self._mean = float(raw.mean())
        self._std = max(float(raw.std()), MIN_STD)
        chunks = list(self._normalise(raw)) + [self._normalise(self.bank.silence())]
        self._pending = chunks[1:]
        self._done = False
        return chunks[0], {"phase": "prompt", "syllable": self.prompt[0]}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = self.check_action(action)
        if self._done:
            raise RuntimeError(f"{type(self).__name__}: the episode has ended; call reset() before step()")
        if self._pending:
            obs = self._pending.pop(0)
            if not self._pending:  # the pause after the prompt: the agent's turn starts
                return obs, 0.0, False, False, {"phase": "turn", "syllable": -1}
            syllable = self.prompt[len(self.prompt) - len(self._pending)]
            return obs, 0.0, False, False, {"phase": "prompt", "syllable": syllable}
        reward = float(self.answer_reward(action))
        self.answers.append(action)
        self.spoken.append(action)
        obs = self._normalise(self._raw_chunks([action]))[0]
        self._done = len(self.answers) >= self.answers_due
        return obs, reward, self._done, False, {"phase": "answer", "syllable": action}

    # ------------------------------------------------------------ helpers
    @property
    def in_answer_phase(self) -> bool:
        """True when the next action is spoken (and rewarded)."""
        return not self._done and not self._pending

    def _raw_chunks(self, syllables: list[int]) -> np.ndarray:
        takes = self.np_random.integers(self.bank.takes, size=len(syllables))
        return self.bank.chunks(self._voice, syllables, takes)

    def _normalise(self, raw: np.ndarray) -> np.ndarray:
        return ((raw - self._mean) / self._std).astype(np.float32)
