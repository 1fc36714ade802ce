"""A small probabilistic syllable grammar in which context beyond the last syllable matters.

The synthetic corpus exists so that later stages can be scored against a *known* source:
a world model that predicts the next syllable, or an agent rewarded for continuing a
sequence, is compared with the exact distribution below rather than with an estimate.

Syllables
    24 consonant-vowel syllables, consonant-major: ``SYLLABLES[i] = C[i // 3] + V[i % 3]``
    with ``C = b d k m n p s t`` and ``V = a i u`` ("ba", "bi", "bu", "da", ..., "tu").

The process, given the syllables so far (the context ``ctx``)
    * ``len(ctx) == 0``: the start distribution, uniform over the 24 syllables.
    * ``len(ctx) == 1``: the bigram row ``B[ctx[-1]]``.
    * ``len(ctx) >= 2``::

          p(next | ctx) = repeat_prob * onehot(ctx[-2]) + (1 - repeat_prob) * B[ctx[-1]]

      i.e. with probability ``repeat_prob`` the speaker continues the period-2 pattern
      ("ba-ta-ba" -> "ta"), otherwise they take a bigram step from the last syllable.

``B`` is a fixed sparse bigram table: every syllable has ``len(SUCCESSOR_PROBS) = 3``
distinct successors (never itself) with probabilities 0.5 / 0.3 / 0.2, drawn
deterministically from ``seed``.

Consequences later stages rely on
    * For ``len(ctx) >= 2`` the distribution depends only on ``(ctx[-2], ctx[-1])``, so exact
      optimal and random returns can be computed by dynamic programming over syllable pairs
      (see :meth:`SyllableGrammar.pair_transition`).
    * Two contexts with the same last syllable but different ``ctx[-2]`` have different
      distributions, so a model with memory beats a bigram model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

CONSONANTS: tuple[str, ...] = ("b", "d", "k", "m", "n", "p", "s", "t")
VOWELS: tuple[str, ...] = ("a", "i", "u")
SYLLABLES: tuple[str, ...] = tuple(c + v for c in CONSONANTS for v in VOWELS)
SUCCESSOR_PROBS: tuple[float, ...] = (0.5, 0.3, 0.2)


def syllable_id(name: str) -> int:
    """Id of a syllable name such as "ba"; a clear error for anything else."""
    try:
        return SYLLABLES.index(name)
    except ValueError:
        raise ValueError(f"unknown syllable {name!r}; expected one of {', '.join(SYLLABLES)}") from None


def consonant_of(syllable: int) -> str:
    return CONSONANTS[syllable // len(VOWELS)]


def vowel_of(syllable: int) -> str:
    return VOWELS[syllable % len(VOWELS)]


class SyllableGrammar:
    """The corpus grammar; see the module docstring for the exact process."""

    def __init__(self, repeat_prob: float = 0.7, seed: int = 0) -> None:
        if not 0.0 <= repeat_prob <= 1.0:
            raise ValueError(f"repeat_prob must lie in [0, 1], got {repeat_prob}")
        self.repeat_prob = float(repeat_prob)
        self.seed = int(seed)
        self.n_syllables: int = len(SYLLABLES)
        self.start = np.full(self.n_syllables, 1.0 / self.n_syllables)
        self.bigram = self._build_bigram(np.random.default_rng(self.seed))

    def _build_bigram(self, rng: np.random.Generator) -> np.ndarray:
        table = np.zeros((self.n_syllables, self.n_syllables))
        for current in range(self.n_syllables):
            others = np.array([s for s in range(self.n_syllables) if s != current])
            successors = rng.choice(others, size=len(SUCCESSOR_PROBS), replace=False)
            table[current, successors] = SUCCESSOR_PROBS
        return table

    def _check_context(self, context: Sequence[int]) -> None:
        for position, syllable in enumerate(context):
            if not 0 <= int(syllable) < self.n_syllables:
                raise ValueError(
                    f"context[{position}] = {syllable} is not a syllable id in [0, {self.n_syllables})"
                )

    def next_distribution(self, context: Sequence[int]) -> np.ndarray:
        """Exact p(next | context), shape (n_syllables,), float64, sums to 1."""
        self._check_context(context)
        if len(context) == 0:
            return self.start.copy()
        if len(context) == 1:
            return self.bigram[int(context[-1])].copy()
        return self._pair_distribution(int(context[-2]), int(context[-1]))

    def _pair_distribution(self, before_last: int, last: int) -> np.ndarray:
        probs = (1.0 - self.repeat_prob) * self.bigram[last]
        probs[before_last] += self.repeat_prob
        return probs

    def pair_transition(self) -> np.ndarray:
        """``T[a, b, c] = p(next = c | ctx[-2] = a, ctx[-1] = b)`` for every pair: the whole
        process for contexts of length >= 2, ready for dynamic programming."""
        n = self.n_syllables
        table = np.broadcast_to((1.0 - self.repeat_prob) * self.bigram[None, :, :], (n, n, n)).copy()
        table[np.arange(n), :, np.arange(n)] += self.repeat_prob
        return table

    def sample_next(self, rng: np.random.Generator, context: Sequence[int]) -> int:
        return int(rng.choice(self.n_syllables, p=self.next_distribution(context)))

    def sample_utterance(self, rng: np.random.Generator, n_syllables: int) -> list[int]:
        if n_syllables < 0:
            raise ValueError(f"n_syllables must be >= 0, got {n_syllables}")
        syllables: list[int] = []
        for _ in range(n_syllables):
            syllables.append(self.sample_next(rng, syllables))
        return syllables

    def to_dict(self) -> dict[str, object]:
        """Everything needed to rebuild the grammar, saved beside the corpus."""
        return {
            "syllables": list(SYLLABLES),
            "repeat_prob": self.repeat_prob,
            "seed": self.seed,
            "start": self.start.tolist(),
            "bigram": {
                SYLLABLES[s]: {SYLLABLES[t]: float(p) for t, p in enumerate(row) if p > 0}
                for s, row in enumerate(self.bigram)
            },
        }
