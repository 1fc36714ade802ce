"""audiodream/Echo-v0: repeat a word.

The env speaks a random word of `word_min`-`word_max` syllables (uniform, independent
syllables) in one voice, pauses, and the agent must say the word back, one syllable per
step; reward 1 per syllable equal to the word's syllable at that position. The agent has
to remember the whole word across the pause, so this is a memory test: the optimal
return is the mean word length, a random policy gets 1 / n_syllables per syllable.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from audiodream.config.schema import FeaturesConfig
from envs.spoken_task import SpokenTaskEnv


class EchoEnv(SpokenTaskEnv):
    def __init__(
        self,
        features: FeaturesConfig | Mapping[str, Any] | None = None,
        chunk_frames: int = 16,
        split: str = "train",
        word_min: int = 2,
        word_max: int = 4,
        voices: int = 32,
        takes: int = 2,
        voice_seed: int = 0,
    ) -> None:
        if not 1 <= word_min <= word_max:
            raise ValueError(f"Echo-v0: need 1 <= word_min <= word_max, got word_min={word_min}, word_max={word_max}")
        super().__init__(features, chunk_frames, split, voices, takes, voice_seed)
        self.word_lengths = list(range(word_min, word_max + 1))

    def sample_prompt(self, rng: np.random.Generator) -> list[int]:
        length = int(rng.choice(self.word_lengths))
        return [int(s) for s in rng.integers(self.n_syllables, size=length)]

    def answer_count(self, prompt: list[int]) -> int:
        return len(prompt)

    def answer_reward(self, action: int) -> float:
        return float(action == self.prompt[len(self.answers)])

    def optimal_return(self) -> float:
        return float(np.mean(self.word_lengths))

    def random_return(self) -> float:
        return float(np.mean(self.word_lengths)) / self.n_syllables

    def optimal_action(self) -> int:
        """The perfect echo's next syllable (cheats: reads the word, not the audio)."""
        return self.prompt[len(self.answers)] if self.in_answer_phase else 0
