"""A toy token source with the synthetic corpus's grammar, for developing the world model
before a trained tokenizer exists (and for tests and benchmarks that need no audio).

Each of `n_syllables` syllables is a template of K tokens; each speaker resamples a
few slots of every template (voice), and every step re-draws a few slots at random
(noise), so, as with real VQ tokens, the same syllable never gives exactly the same
tokens. Syllable sequences follow the corpus grammar
    p(next | ctx) = copy_prob * onehot(ctx[-2]) + (1 - copy_prob) * B[ctx[-1]]
with a sparse bigram B, one syllable per step: predicting well needs two steps of memory.
Actions are random syllable guesses; reward r_t = 1 when a_{t-1} named syllable t
(only meaningful when n_actions == n_syllables), like the Complete-v0 env.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

Episode = dict[str, np.ndarray]


@dataclass
class ToyTokenSource:
    n_syllables: int = 24
    tokens_per_step: int = 48
    vocab_size: int = 1024
    n_actions: int = 24
    n_speakers: int = 16
    speaker_slots: int = 6  # slots of each template a speaker re-draws
    noise_prob: float = 0.1  # per-step probability that a slot is re-drawn
    slot_pool: int = 96  # codes a slot draws from (templates overlap, as real codes do)
    copy_prob: float = 0.7
    bigram_support: int = 3  # nonzero successors per syllable in B
    seed: int = 0
    templates: np.ndarray = field(init=False, repr=False)  # (n_speakers, n_syllables, K)
    bigram: np.ndarray = field(init=False, repr=False)  # (n_syllables, n_syllables)
    pools: np.ndarray = field(init=False, repr=False)  # (K, slot_pool)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        k, s = self.tokens_per_step, self.n_syllables
        self.pools = np.stack([rng.choice(self.vocab_size, self.slot_pool, replace=False) for _ in range(k)])
        base = self.pools[np.arange(k), rng.integers(0, self.slot_pool, size=(s, k))]  # (S, K)
        templates = np.repeat(base[None], self.n_speakers, axis=0)
        for speaker in range(self.n_speakers):
            for syllable in range(s):
                slots = rng.choice(k, self.speaker_slots, replace=False)
                templates[speaker, syllable, slots] = self.pools[slots, rng.integers(0, self.slot_pool, size=len(slots))]
        self.templates = templates
        bigram = np.zeros((s, s))
        for syllable in range(s):
            successors = rng.choice(s, self.bigram_support, replace=False)
            bigram[syllable, successors] = rng.dirichlet(np.ones(self.bigram_support))
        self.bigram = bigram

    def next_syllable_distribution(self, context: Sequence[int]) -> np.ndarray:
        """The grammar's p(next | context), context of at least two syllables."""
        probs = (1.0 - self.copy_prob) * self.bigram[context[-1]]
        probs[context[-2]] += self.copy_prob
        return probs

    def syllables(self, length: int, rng: np.random.Generator) -> np.ndarray:
        seq = list(rng.integers(0, self.n_syllables, size=min(2, length)))
        while len(seq) < length:
            seq.append(int(rng.choice(self.n_syllables, p=self.next_syllable_distribution(seq))))
        return np.asarray(seq, dtype=np.int64)

    def render(self, syllables: np.ndarray, speaker: int, rng: np.random.Generator) -> np.ndarray:
        """(T,) syllables -> (T, K) tokens of one speaker, with per-step slot noise."""
        tokens = self.templates[speaker, syllables].copy()
        noisy = rng.random(tokens.shape) < self.noise_prob
        slots = np.nonzero(noisy)[1]
        tokens[noisy] = self.pools[slots, rng.integers(0, self.slot_pool, size=len(slots))]
        return tokens

    def episode(self, length: int, rng: np.random.Generator) -> Episode:
        syllables = self.syllables(length, rng)
        speaker = int(rng.integers(self.n_speakers))
        tokens = self.render(syllables, speaker, rng)
        actions = rng.integers(0, self.n_actions, size=length)
        actions[0] = 0
        rewards = (actions == syllables).astype(np.float32)
        rewards[0] = 0.0
        terminals = np.zeros(length, dtype=bool)
        terminals[-1] = True
        is_first = np.zeros(length, dtype=bool)
        is_first[0] = True
        return {"tokens": tokens, "actions": actions, "rewards": rewards, "terminals": terminals, "is_first": is_first, "syllables": syllables, "speaker": np.asarray(speaker)}

    def episodes(self, count: int, min_length: int, max_length: int, seed: int) -> list[Episode]:
        rng = np.random.default_rng(seed)
        return [self.episode(int(rng.integers(min_length, max_length + 1)), rng) for _ in range(count)]


def oracle_ce(source: ToyTokenSource, episodes: Sequence[Episode], context: int, horizons: Sequence[int]) -> dict[str, float]:
    """CE (nats/token) of the true generative process, knowing the grammar, the speaker and
    the observed syllables: the floor any predictor of step C + h - 1 can reach."""
    s, k = source.n_syllables, source.tokens_per_step
    pair_transition = np.zeros((s * s, s * s))  # (prev, last) -> (last, next)
    for prev in range(s):
        for last in range(s):
            pair_transition[prev * s + last, last * s : last * s + s] = source.next_syllable_distribution([prev, last])
    noise = source.noise_prob / source.slot_pool
    result = {}
    for h in horizons:
        total, count = 0.0, 0
        for ep in episodes:
            syllables, tokens = ep["syllables"], ep["tokens"]
            if len(syllables) < context + h or context < 2:
                continue
            state = np.zeros(s * s)
            state[syllables[context - 2] * s + syllables[context - 1]] = 1.0
            for _ in range(h):
                state = state @ pair_transition
            p_next = state.reshape(s, s).sum(axis=0)  # marginal of the newest syllable
            templates = source.templates[int(ep["speaker"])]  # (S, K)
            target = tokens[context + h - 1]
            in_pool = (source.pools == target[:, None]).any(axis=1)  # noise can draw it
            match = templates == target[None, :]  # (S, K)
            probs = p_next @ ((1.0 - source.noise_prob) * match) + noise * in_pool
            total += float(-np.log(probs).sum())
            count += k
        result[str(h)] = total / count if count else float("nan")
    return result


class ToySequenceSampler:
    """Samples (B, T) windows from a stream of episodes, windows crossing episode
    boundaries as replay samples do (so `is_first` resets happen mid-sequence)."""

    KEYS: tuple[str, ...] = ("tokens", "actions", "rewards", "terminals", "is_first")

    def __init__(self, episodes: Sequence[Episode], seed: int = 0) -> None:
        self.stream = {key: np.concatenate([ep[key] for ep in episodes]) for key in self.KEYS}
        self.length = len(self.stream["actions"])
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int, seq_len: int) -> dict[str, np.ndarray]:
        if seq_len > self.length:
            raise ValueError(f"seq_len {seq_len} exceeds the {self.length} steps in the stream")
        starts = self.rng.integers(0, self.length - seq_len + 1, size=batch_size)
        index = starts[:, None] + np.arange(seq_len)[None, :]
        return {key: value[index] for key, value in self.stream.items()}
