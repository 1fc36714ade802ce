"""audiodream/Complete-v0: continue a syllable sequence ("ba-ta-ba" -> "ta").

Each episode the env speaks a prompt drawn from the synthetic corpus's grammar in one
voice, pauses (see envs.spoken_task), then for `answer_steps` steps the agent picks a
syllable, which the env speaks in the same voice. The reward of an answer is the
grammar's exact probability of that syllable given everything spoken so far (prompt and
earlier answers), so the expected returns of the optimal, random and blind policies are
known exactly (envs.completion_returns) and a learned agent can be scored against them.

Defaults (prompt 4-6 syllables, 3 answers, 8-10 steps per episode) keep episodes short
while the optimal policy (2.27) stays far above both random (0.125) and the best policy
that ignores the prompt (1.00); see `env.kwargs` to change them.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from audiodream.config.schema import FeaturesConfig
from audiodream.data.synthetic.grammar import SyllableGrammar
from envs import completion_returns
from envs.spoken_task import SpokenTaskEnv


class CompleteEnv(SpokenTaskEnv):
    def __init__(
        self,
        features: FeaturesConfig | Mapping[str, Any] | None = None,
        chunk_frames: int = 16,
        split: str = "train",
        prompt_min: int = 4,
        prompt_max: int = 6,
        answer_steps: int = 3,
        repeat_prob: float = 0.7,
        grammar_seed: int = 0,
        voices: int = 32,
        takes: int = 2,
        voice_seed: int = 0,
    ) -> None:
        if not 2 <= prompt_min <= prompt_max:
            raise ValueError(f"Complete-v0: need 2 <= prompt_min <= prompt_max, got prompt_min={prompt_min}, prompt_max={prompt_max}")
        if answer_steps < 1:
            raise ValueError(f"Complete-v0: answer_steps must be >= 1, got {answer_steps}")
        super().__init__(features, chunk_frames, split, voices, takes, voice_seed)
        self.grammar = SyllableGrammar(repeat_prob=repeat_prob, seed=grammar_seed)
        self.prompt_lengths = list(range(prompt_min, prompt_max + 1))
        self.answer_steps = int(answer_steps)
        self._values = completion_returns.optimal_values(self.grammar, self.answer_steps)

    def sample_prompt(self, rng: np.random.Generator) -> list[int]:
        return self.grammar.sample_utterance(rng, int(rng.choice(self.prompt_lengths)))

    def answer_count(self, prompt: list[int]) -> int:
        return self.answer_steps

    def answer_reward(self, action: int) -> float:
        return float(self.grammar.next_distribution(self.spoken)[action])

    # ------------------------------------------------------------ exact references
    def optimal_return(self) -> float:
        """Expected return of the optimal policy (which hears the whole prompt)."""
        return completion_returns.optimal_return(self.grammar, self.prompt_lengths, self.answer_steps)

    def random_return(self) -> float:
        """Expected return of the uniformly random policy."""
        return completion_returns.random_return(self.grammar, self.prompt_lengths, self.answer_steps)

    def blind_return(self) -> float:
        """Expected return of the best policy that does not listen to the prompt."""
        return completion_returns.blind_return(self.grammar, self.prompt_lengths, self.answer_steps)

    def optimal_action(self) -> int:
        """The optimal policy's next answer (cheats: reads the syllables, not the audio)."""
        if not self.in_answer_phase:
            return 0
        remaining = self.answer_steps - len(self.answers)
        return completion_returns.best_answer(self.grammar, self._values, self.spoken, remaining)
