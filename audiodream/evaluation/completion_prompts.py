"""Where the completion test's prompts and the classifier's labelled chunks come from.

Two settings have syllables with a known next-syllable distribution:

* corpus (Listen-v0 over the data stage's manifest of the synthetic corpus): a prompt
  is the first L syllables of a **test-split** utterance (each utterance used once
  before any is reused), L uniform in [2, n - 1] for an utterance of n syllables, its
  tokens exactly the chunks Listen-v0 streams; the truth is the corpus grammar's
  p(next | first L syllables). The classifier is fitted on the **train** split's
  step-aligned chunks and their labels (manifest `extra["syllables"]`).
* spoken task (Complete-v0, any env with a `grammar` and `prompt_lengths`): a prompt
  is the first L steps of a fresh **test-split** episode (voices training never had).
  Only the prompt phase is grammar-driven, and a model cannot know where a prompt of
  variable length ends, so L is uniform in [2, shortest prompt - 1]: the next step is
  then surely the prompt's next syllable. The env ignores actions during the prompt;
  the model is fed its behaviour policy's actions (imagination.py), as in training.
  The classifier is fitted on chunks of train-split episodes labelled by the env's
  `info["syllable"]` (prompt and answer steps; the silent turn cue is left out).

Anything else (e.g. Echo-v0, whose words are not grammar-driven, or a corpus without
syllable labels) has no completion test; the reason is reported instead of a number.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from audiodream.config.schema import Config
from audiodream.data.stage import DataPaths, load_split_features
from audiodream.data.synthetic.classifier import SyllableClassifier
from audiodream.data.synthetic.corpus import corpus_grammar
from audiodream.data.synthetic.neural_classifier import NeuralSyllableClassifier
from audiodream.evaluation.completion import ChunkClassifier, CompletionPrompt
from audiodream.tokenizer.chunks import aligned_chunks
from audiodream.tokenizer.model import ROUND_TRIP_BATCH, Tokenizer

log = logging.getLogger(__name__)

ENV_CLASSIFIER_CHUNKS = 4000  # labelled chunks drawn from env episodes to fit the classifier on
# Labelled chunks each classifier is fitted on at most (a random subset of the train split):
# the linear one as in every session before the network (its figures stay comparable),
# the network on all the listen_synthetic corpus has (~53k).
CLASSIFIER_TRAIN_CHUNKS = {"mlp": 60000, "lda": 4000}
SYLLABLE_CLASSIFIERS = tuple(CLASSIFIER_TRAIN_CHUNKS)
CLASSIFIER_TEST_CHUNKS = 600  # held-out chunks its accuracy is reported on


@dataclass
class LabelledChunks:
    mels: np.ndarray  # (N, n_mels, chunk_frames) z-scored log-mel chunks
    labels: np.ndarray  # (N,) syllable ids

    def subset(self, limit: int, rng: np.random.Generator) -> "LabelledChunks":
        if len(self.labels) <= limit:
            return self
        pick = np.sort(rng.choice(len(self.labels), size=limit, replace=False))
        return LabelledChunks(self.mels[pick], self.labels[pick])


@dataclass
class CompletionSetup:
    source: str  # what the prompts are, in words (written to metrics.json)
    prompts: list[CompletionPrompt]
    train_chunks: LabelledChunks
    test_chunks: LabelledChunks


def with_split(cfg: Config, split: str) -> Config:
    return dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, split=split))


def completion_setup(cfg: Config, run_dir: Path, tokenizer: Tokenizer, n_prompts: int, seed: int) -> tuple[Optional[CompletionSetup], str]:
    """(setup, "") where the env has a completion test, else (None, why not)."""
    import envs

    probe = envs.make_env(cfg, None, run_dir)
    try:
        env = probe.unwrapped
        if hasattr(env, "grammar") and hasattr(env, "prompt_lengths"):
            return _spoken_task_setup(cfg, run_dir, tokenizer, n_prompts, seed, min(env.prompt_lengths))
        from envs.clips import ManifestClips
        from envs.listen import ListenEnv

        if isinstance(env, ListenEnv) and isinstance(env.clips, ManifestClips):
            return _corpus_setup(cfg, run_dir, tokenizer, n_prompts, seed)
        return None, f"env {cfg.env.id!r} has no grammar-driven syllables (completion needs Complete-v0 or Listen-v0 over the synthetic corpus)"
    finally:
        probe.close()


def check_syllable_classifier(kind: str) -> None:
    if kind not in SYLLABLE_CLASSIFIERS:
        raise ValueError(f"config key 'eval.syllable_classifier': unknown classifier {kind!r}; choose one of {', '.join(SYLLABLE_CLASSIFIERS)}")


def fit_syllable_classifier(kind: str, chunks: LabelledChunks, seed: int, tokenizer: Optional[Tokenizer] = None) -> ChunkClassifier:
    """The `eval.syllable_classifier` named `kind`, fitted on (a seeded subset of) `chunks`,
    and on their round trips through `tokenizer` when one is given
    (`eval.classifier_reconstructions`, `with_reconstructions`)."""
    check_syllable_classifier(kind)
    train = chunks.subset(CLASSIFIER_TRAIN_CHUNKS[kind], np.random.default_rng(seed))
    if tokenizer is not None:
        train = with_reconstructions(train, tokenizer)
    log.info("eval: fitting the syllable classifier (%s) on %d labelled train chunks", kind, len(train.labels))
    if kind == "lda":
        return SyllableClassifier.fit(train.mels, train.labels)
    return NeuralSyllableClassifier.fit(train.mels, train.labels, seed)


def with_reconstructions(chunks: LabelledChunks, tokenizer: Tokenizer, batch: int = ROUND_TRIP_BATCH) -> LabelledChunks:
    """`chunks` followed by their tokenizer round trips (encode, decode), with the same labels.

    Why: every chunk the completion test names was rendered by the tokenizer's decoder, whose
    spectra are smoother than real ones. A classifier that has seen both names renderings
    better without naming real chunks worse (run E1's models: held-out reconstructions
    0.965 -> 0.975 right, real 0.995 -> 0.997; README "World model", session 24). The
    world model plays no part in it, so the instrument stays the same for every model of a
    tokenizer."""
    return LabelledChunks(
        np.concatenate([chunks.mels, tokenizer.round_trip_chunks(chunks.mels, batch)[1].numpy()]).astype(np.float32, copy=False),
        np.concatenate([chunks.labels, chunks.labels]),
    )


# ------------------------------------------------------------------------------ corpus


def _syllables(row: Any) -> Optional[list[int]]:
    text = row.extra.get("syllables")
    return [int(s) for s in text.split()] if text else None


def _labelled_split(cfg: Config, run_dir: Path, split: str) -> tuple[list[tuple[np.ndarray, list[int]]], LabelledChunks]:
    """Per utterance (chunks, syllables), and all of them pooled, for one split of the manifest."""
    utterances = []
    for row, mel in load_split_features(cfg, run_dir, split):
        syllables = _syllables(row)
        if syllables is None:
            continue
        chunks = aligned_chunks(mel.mel, cfg.env.chunk_frames)
        n = min(len(chunks), len(syllables))
        utterances.append((chunks[:n], syllables[:n]))
    if not utterances:
        return [], LabelledChunks(np.zeros((0, cfg.features.n_mels, cfg.env.chunk_frames), np.float32), np.zeros(0, np.int64))
    pooled = LabelledChunks(np.concatenate([c for c, _ in utterances]), np.concatenate([np.asarray(s, np.int64) for _, s in utterances]))
    return utterances, pooled


def _corpus_setup(cfg: Config, run_dir: Path, tokenizer: Tokenizer, n_prompts: int, seed: int) -> tuple[Optional[CompletionSetup], str]:
    rng = np.random.default_rng(seed)
    manifest = DataPaths.of(run_dir).manifest
    test, test_pooled = _labelled_split(cfg, run_dir, "test")
    test = [(chunks, syllables) for chunks, syllables in test if len(syllables) >= 3]
    _, train_pooled = _labelled_split(cfg, run_dir, "train")
    if not test or len(np.unique(train_pooled.labels)) < 2:
        return None, f"{manifest}: no syllable labels (manifest extra 'syllables') on utterances of >= 3 syllables in the test split, or fewer than 2 syllables in train"
    grammar = corpus_grammar()
    order = rng.permutation(len(test))
    prompts = []
    for i in range(n_prompts):
        chunks, syllables = test[order[i % len(test)]]
        length = int(rng.integers(2, len(syllables)))  # 2 .. n-1: the next syllable exists
        tokens = tokenizer.encode_chunks(chunks[:length]).cpu().numpy()
        context = syllables[:length]
        prompts.append(CompletionPrompt(tokens, context, grammar.next_distribution(context)))
    source = f"first 2..n-1 syllables of {min(n_prompts, len(test))} test-split utterances of the corpus ({manifest})"
    return CompletionSetup(source, prompts, train_pooled, test_pooled.subset(CLASSIFIER_TEST_CHUNKS, rng)), ""


# ------------------------------------------------------------------------ spoken task


def _episode_chunks(env: Any, seed: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    """Every (chunk, syllable) of one random-action episode; the turn cue (syllable -1) is left out."""
    obs, info = env.reset(seed=seed)
    chunks, labels = [obs], [int(info.get("syllable", -1))]
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        chunks.append(obs)
        labels.append(int(info.get("syllable", -1)))
        done = terminated or truncated
    keep = [i for i, label in enumerate(labels) if label >= 0]
    return [chunks[i] for i in keep], [labels[i] for i in keep]


def _env_chunks(cfg: Config, run_dir: Path, split: str, limit: int, seed: int) -> LabelledChunks:
    import envs

    env = envs.make_env(with_split(cfg, split), None, run_dir)
    rng = np.random.default_rng(seed)
    mels: list[np.ndarray] = []
    labels: list[int] = []
    episode = 0
    bar = tqdm(total=limit, desc=f"labelled {split} chunks", unit="chunk", disable=not cfg.run.progress, leave=False)
    try:
        while len(labels) < limit:
            chunks, syllables = _episode_chunks(env, seed + episode, rng)
            mels.extend(chunks)
            labels.extend(syllables)
            bar.update(min(len(syllables), limit - bar.n))
            episode += 1
    finally:
        bar.close()
        env.close()
    return LabelledChunks(np.stack(mels[:limit]).astype(np.float32), np.asarray(labels[:limit], np.int64))


def _spoken_task_setup(
    cfg: Config, run_dir: Path, tokenizer: Tokenizer, n_prompts: int, seed: int, shortest_prompt: int
) -> tuple[Optional[CompletionSetup], str]:
    import envs

    if shortest_prompt < 3:
        return None, f"env {cfg.env.id!r}: prompts can be {shortest_prompt} syllables long, so no prompt of >= 2 steps is surely followed by a prompt syllable"
    rng = np.random.default_rng(seed)
    env = envs.make_env(with_split(cfg, "test"), None, run_dir)
    prompts = []
    try:
        for i in range(n_prompts):
            obs, _ = env.reset(seed=seed + i)
            grammar = env.unwrapped.grammar
            spoken = list(env.unwrapped.prompt)
            length = int(rng.integers(2, shortest_prompt))  # 2 .. shortest-1: the next step is a prompt syllable
            chunks = [obs]
            for _ in range(length - 1):
                obs, *_ = env.step(0)  # ignored during the prompt
                chunks.append(obs)
            tokens = tokenizer.encode_chunks(np.stack(chunks)).cpu().numpy()
            context = [int(s) for s in spoken[:length]]
            prompts.append(CompletionPrompt(tokens, context, grammar.next_distribution(context)))
    finally:
        env.close()
    train = _env_chunks(cfg, run_dir, "train", ENV_CLASSIFIER_CHUNKS, seed + 1_000_000)
    test = _env_chunks(cfg, run_dir, "test", CLASSIFIER_TEST_CHUNKS, seed + 2_000_000)
    source = f"first 2..{shortest_prompt - 1} prompt steps of {n_prompts} fresh test-split episodes of {cfg.env.id}"
    return CompletionSetup(source, prompts, train, test), ""
