"""Exact expected returns of the sequence-completion task, by dynamic programming.

For contexts of two or more syllables the grammar's next-syllable distribution depends
only on the last two, ``T[a, b, c] = p(c | ..., a, b)``, and Complete-v0's reward for
answering c is exactly that probability. So the task is an MDP over syllable pairs whose
start state is the prompt's last pair, and returns can be computed instead of estimated:

* optimal:  V_k(a, b) = max_c  T[a, b, c] + V_{k-1}(b, c)      (hears everything)
* random:   R_k(a, b) = mean_c T[a, b, c] + R_{k-1}(b, c)      (= k / n_syllables)
* blind:    the best policy that does not hear the prompt. It still knows its own
            answers, so from the third answer on it knows the pair; the gap between
            optimal and blind is what listening to the context is worth.

Returns are averaged over the exact distribution of the prompt's last pair: prompts are
grammar utterances whose length is uniform over the configured range.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from audiodream.data.synthetic.grammar import SyllableGrammar


def last_pair_distribution(grammar: SyllableGrammar, prompt_lengths: Sequence[int]) -> np.ndarray:
    """``q[a, b]`` = p(prompt ends with a, b), for a prompt length uniform over `prompt_lengths` (each >= 2)."""
    if min(prompt_lengths) < 2:
        raise ValueError(f"prompt lengths must be >= 2 (the grammar's context is two syllables), got {list(prompt_lengths)}")
    transition = grammar.pair_transition()
    pair = grammar.start[:, None] * grammar.bigram  # after two syllables
    by_length = {2: pair}
    for length in range(3, max(prompt_lengths) + 1):
        pair = np.einsum("ab,abc->bc", pair, transition)
        by_length[length] = pair
    return np.mean([by_length[n] for n in prompt_lengths], axis=0)


def optimal_values(grammar: SyllableGrammar, steps: int) -> list[np.ndarray]:
    """``values[k][a, b]``: best expected reward of k answers from pair (a, b); values[0] = 0."""
    transition = grammar.pair_transition()
    values = [np.zeros(transition.shape[:2])]
    for _ in range(steps):
        values.append((transition + values[-1][None, :, :]).max(axis=2))
    return values


def optimal_return(grammar: SyllableGrammar, prompt_lengths: Sequence[int], answer_steps: int) -> float:
    pair = last_pair_distribution(grammar, prompt_lengths)
    return float((pair * optimal_values(grammar, answer_steps)[answer_steps]).sum())


def random_return(grammar: SyllableGrammar, prompt_lengths: Sequence[int], answer_steps: int) -> float:
    transition = grammar.pair_transition()
    values = np.zeros(transition.shape[:2])
    for _ in range(answer_steps):
        values = (transition + values[None, :, :]).mean(axis=2)
    return float((last_pair_distribution(grammar, prompt_lengths) * values).sum())


def blind_return(grammar: SyllableGrammar, prompt_lengths: Sequence[int], answer_steps: int) -> float:
    """Best expected return of a policy that hears none of the prompt (only its own answers)."""
    if answer_steps < 1:
        return 0.0
    transition = grammar.pair_transition()
    pair = last_pair_distribution(grammar, prompt_lengths)
    first = np.einsum("ab,abc->c", pair, transition)  # reward of answer 1, by c1
    if answer_steps == 1:
        return float(first.max())
    second = np.einsum("b,bcd->cd", pair.sum(axis=0), transition)  # answer 2, by (c1, c2); prompt[-1] unknown
    rest = optimal_values(grammar, answer_steps - 2)[answer_steps - 2]  # pair (c1, c2) known from here on
    return float((first[:, None] + second + rest).max())


def best_answer(grammar: SyllableGrammar, values: list[np.ndarray], context: Sequence[int], remaining: int) -> int:
    """The optimal next answer given everything spoken so far and the answers left (this one included)."""
    if len(context) < 2 or remaining < 1:
        raise ValueError(f"best_answer needs >= 2 syllables of context and >= 1 answer left, got {len(context)}, {remaining}")
    a, b = int(context[-2]), int(context[-1])
    scores = grammar.next_distribution([a, b]) + values[remaining - 1][b]
    return int(np.argmax(scores))
