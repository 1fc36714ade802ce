"""Syllable-level completion: does the world model imagine the syllables the grammar would say?

Protocol (`completion_prompts.py` says where prompts come from):

* A prompt is the start of an utterance, L >= 2 syllables (= env steps) long, whose
  next syllable the grammar draws from a known distribution p(. | prompt).
* The model observes the prompt's tokens (posterior, from an episode start) and rolls
  its prior forward one step, S times independently (S = `eval.completion_samples`;
  every sample redraws the posterior and prior latents and the decoder's tokens, the
  tokens at `eval.token_temperature` and the prior's latents within the mixture component
  it draws at `eval.latent_temperature`, imagination.Temperatures). Each imagined step's
  tokens (or, with `eval.token_draw: mean`, each token slot's mean code vector) are decoded
  by the tokenizer into a log-mel chunk, and a classifier fitted on the
  train split's labelled chunks names its syllable (`eval.syllable_classifier`: the
  nearest-template `SyllableClassifier` by default, or a small network,
  `NeuralSyllableClassifier`).
* The S names form a histogram q. Scores, averaged over prompts:
    completion_accuracy     share of prompts where q's most frequent syllable is
                            p's most likely one (a tie among q's top syllables counts
                            as 1/#tied if p's choice is among them: random tie-breaking,
                            in expectation)
    completion_tv_distance  total variation 0.5 * sum |q - p|
* Where the misses come from, from the same prompts:
    completion_outside_support          q's mass on syllables p gives probability 0 (a
                                        syllable the grammar never says next)
    completion_tv_missed_mode           the part of completion_tv_distance that comes from
                                        prompts whose most frequent imagined syllable is not
                                        p's most likely one (weighted as accuracy counts them):
                                        a few confidently wrong prompts or a broad misfit. On two
                                        listen_synthetic models, 0.086 of 0.248 and 0.124 of 0.279
                                        from 14 and 19 % of the prompts (README "World model",
                                        session 29)
    completion_posterior_decode_accuracy share of the prompts' own steps the classifier
                                        names right when the model decodes them from its
                                        posterior (it has heard them): how well the model
                                        renders a syllable it knows, the ceiling of what it
                                        renders for one it imagines
    completion_mode_mass                q's mass on p's most likely syllable, beside
                                        completion_mode_mass_true (p's)
    completion_rest_of_support_mass     q's mass on the other syllables p allows, beside
                                        completion_rest_of_support_mass_true: on the corpus
                                        grammar, the mode is the period-2 repeat and the rest
                                        its bigram successors, so the two say which branch of
                                        the grammar the model has learnt
  Measured on the listen_synthetic model (seed 0, 64 prompts): the 16 prompts with TV > 0.6
  imagine mostly the right vowel with a wrong consonant (their most frequent imagined
  syllable shares the consonant of p's mode in 0.25 of them, the vowel in 0.88), and their
  voices' heard steps decode right 0.76 of the time, against 0.90 for the other prompts.
* References for reading those numbers, from the same prompts:
    completion_tv_floor                 the TV that S exact draws from p score (sampling
                                        noise alone: a perfect model scores about this)
    completion_accuracy_exact_samples   the accuracy of S exact draws from p
    classifier_accuracy_real / _reconstructed (completion_prompts.py): how well the
                                        classifier names real held-out chunks, and the
                                        same chunks after a tokenizer round trip
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence

import numpy as np
import torch
from tqdm import tqdm

from audiodream.evaluation.imagination import Temperatures, imagine_mels, observe_prompt, prompt_states, render_steps
from audiodream.tokenizer.model import Tokenizer
from audiodream.worldmodel import Policy, WorldModel

FLOOR_REPEATS = 20  # simulated sets of S exact samples per prompt for the references
PROMPT_ROWS = 1024  # rows (prompts x samples, or prompts x steps) the model takes in one batch


class ChunkClassifier(Protocol):
    """Names the syllable of each log-mel chunk (data/synthetic: SyllableClassifier,
    NeuralSyllableClassifier; `eval.syllable_classifier` picks one)."""

    def predict(self, mels: np.ndarray) -> np.ndarray:
        """(N, n_mels, chunk_frames) chunks -> (N,) syllable ids."""
        ...


@dataclass
class CompletionPrompt:
    tokens: np.ndarray  # (L, K) prompt tokens, from an episode start
    context: list[int]  # the prompt's L syllable ids
    true_next: np.ndarray  # (n_syllables,) the grammar's p(next | context)


@dataclass
class CompletionScores:
    accuracy: float
    tv_distance: float
    tv_floor: float
    accuracy_exact_samples: float
    outside_support: float
    tv_missed_mode: float
    mode_mass: float
    mode_mass_true: float
    rest_of_support_mass: float
    rest_of_support_mass_true: float
    histograms: np.ndarray  # (P, n_syllables) imagined next-syllable frequencies
    per_prompt_tv: list[float] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        return {
            "completion_accuracy": self.accuracy,
            "completion_tv_distance": self.tv_distance,
            "completion_tv_floor": self.tv_floor,
            "completion_accuracy_exact_samples": self.accuracy_exact_samples,
            "completion_outside_support": self.outside_support,
            "completion_tv_missed_mode": self.tv_missed_mode,
            "completion_mode_mass": self.mode_mass,
            "completion_mode_mass_true": self.mode_mass_true,
            "completion_rest_of_support_mass": self.rest_of_support_mass,
            "completion_rest_of_support_mass_true": self.rest_of_support_mass_true,
        }


def syllable_histograms(predicted: np.ndarray, n_syllables: int) -> np.ndarray:
    """(P, S) syllable ids -> (P, n_syllables) relative frequencies."""
    predicted = np.asarray(predicted, dtype=np.int64)
    if predicted.ndim != 2 or predicted.shape[1] < 1:
        raise ValueError(f"predicted syllables must have shape (prompts, samples >= 1), got {predicted.shape}")
    if predicted.size and (predicted.min() < 0 or predicted.max() >= n_syllables):
        raise ValueError(f"predicted syllables must lie in [0, {n_syllables}), got [{predicted.min()}, {predicted.max()}]")
    counts = np.stack([np.bincount(row, minlength=n_syllables) for row in predicted]).astype(np.float64)
    return counts / predicted.shape[1]


def top_choice_agreement(histograms: np.ndarray, true_next: np.ndarray) -> np.ndarray:
    """(P,) in [0, 1]: 1/#tied when p's most likely syllable is among q's most frequent, else 0."""
    top = histograms.max(axis=1, keepdims=True)
    tied = np.isclose(histograms, top)
    truth = true_next.argmax(axis=1)
    return tied[np.arange(len(truth)), truth] / tied.sum(axis=1)


def total_variation(histograms: np.ndarray, true_next: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(histograms - true_next).sum(axis=1)


def completion_scores(predicted: np.ndarray, true_next: np.ndarray, seed: int = 0) -> CompletionScores:
    """Scores of (P, S) imagined syllable ids against (P, n_syllables) true next-syllable distributions."""
    true_next = np.asarray(true_next, dtype=np.float64)
    if true_next.ndim != 2 or len(true_next) != len(predicted):
        raise ValueError(f"true_next must have shape ({len(predicted)}, n_syllables), got {true_next.shape}")
    if not np.allclose(true_next.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("true_next: every row must be a probability distribution (sum to 1)")
    histograms = syllable_histograms(predicted, true_next.shape[1])
    tv = total_variation(histograms, true_next)
    floor_tv, floor_acc = exact_sample_references(true_next, np.asarray(predicted).shape[1], seed)
    rows = np.arange(len(true_next))
    mode = true_next.argmax(axis=1)
    support = true_next > 0
    agreement = top_choice_agreement(histograms, true_next)
    return CompletionScores(
        accuracy=float(agreement.mean()),
        tv_distance=float(tv.mean()),
        tv_floor=floor_tv,
        accuracy_exact_samples=floor_acc,
        outside_support=float((histograms * ~support).sum(axis=1).mean()),
        tv_missed_mode=float(((1.0 - agreement) * tv).mean()),
        mode_mass=float(histograms[rows, mode].mean()),
        mode_mass_true=float(true_next[rows, mode].mean()),
        rest_of_support_mass=float(((histograms * support).sum(axis=1) - histograms[rows, mode]).mean()),
        rest_of_support_mass_true=float((1.0 - true_next[rows, mode]).mean()),
        histograms=histograms,
        per_prompt_tv=[float(v) for v in tv],
    )


def exact_sample_references(true_next: np.ndarray, samples: int, seed: int = 0, repeats: int = FLOOR_REPEATS) -> tuple[float, float]:
    """(mean TV, mean accuracy) of `samples` exact draws from each true distribution."""
    rng = np.random.default_rng(seed)
    tvs, accs = [], []
    for _ in range(repeats):
        draws = np.stack([rng.choice(len(p), size=samples, p=p / p.sum()) for p in true_next])
        hist = syllable_histograms(draws, true_next.shape[1])
        tvs.append(total_variation(hist, true_next).mean())
        accs.append(top_choice_agreement(hist, true_next).mean())
    return float(np.mean(tvs)), float(np.mean(accs))


def same_length_batches(prompts: Sequence[CompletionPrompt], max_prompts: int) -> list[list[int]]:
    """Indices of the prompts, grouped by length, at most `max_prompts` to a group.

    Prompts are observed step by step (`prompt_states`); one batch per length makes that
    one model call per step for the group instead of one per prompt and step."""
    by_length: dict[int, list[int]] = {}
    for index, prompt in enumerate(prompts):
        by_length.setdefault(len(prompt.tokens), []).append(index)
    size = max(1, max_prompts)
    return [group[start : start + size] for _, group in sorted(by_length.items()) for start in range(0, len(group), size)]


def _stacked_tokens(prompts: Sequence[CompletionPrompt], batch: Sequence[int]) -> torch.Tensor:
    return torch.as_tensor(np.stack([prompts[i].tokens for i in batch]), dtype=torch.long)  # (n, L, K)


@torch.no_grad()
def imagine_next_syllables(
    model: WorldModel,
    tokenizer: Tokenizer,
    classifier: ChunkClassifier,
    prompts: Sequence[CompletionPrompt],
    samples: int,
    policy: Policy,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
    temperatures: Temperatures = Temperatures(),
) -> np.ndarray:
    """(P, samples) syllable ids the classifier hears in the imagined step after each prompt."""
    if samples < 1:
        raise ValueError(f"eval.completion_samples: must be >= 1, got {samples}")
    out = np.zeros((len(prompts), samples), dtype=np.int64)
    with tqdm(total=len(prompts), desc="completion", unit="prompt", disable=not progress, leave=False) as bar:
        for batch in same_length_batches(prompts, PROMPT_ROWS // samples):
            tokens = _stacked_tokens(prompts, batch).repeat_interleave(samples, dim=0)  # (n * S, L, K)
            state = observe_prompt(model, tokens, policy, generator)
            mel = imagine_mels(model, tokenizer, state, 1, policy, temperatures, generator).numpy()  # (n * S, n_mels, chunk_frames)
            out[batch] = classifier.predict(mel).reshape(len(batch), samples)
            bar.update(len(batch))
    return out


@torch.no_grad()
def posterior_decode_accuracy(
    model: WorldModel,
    tokenizer: Tokenizer,
    classifier: ChunkClassifier,
    prompts: Sequence[CompletionPrompt],
    policy: Policy,
    generator: Optional[torch.Generator] = None,
    temperatures: Temperatures = Temperatures(),
) -> float:
    """Share of all prompt steps whose syllable the classifier names right after the model
    decodes the step from its posterior (tokens drawn as `temperatures` says: pass what
    imagined steps are drawn at; the latent temperature plays no part)."""
    if not prompts:
        return float("nan")
    hits = []
    longest = max(len(prompt.tokens) for prompt in prompts)
    for batch in same_length_batches(prompts, PROMPT_ROWS // longest):
        tokens = _stacked_tokens(prompts, batch)  # (n, L, K)
        features = torch.stack([state.features for state in prompt_states(model, tokens, policy, generator)], dim=1)  # (n, L, F)
        mel = render_steps(model, tokenizer, features.flatten(0, 1)[:, None], temperatures, generator).numpy()  # (n * L, n_mels, chunk_frames)
        hits.append(classifier.predict(mel) == np.concatenate([prompts[i].context for i in batch]))
    return float(np.concatenate(hits).mean())
