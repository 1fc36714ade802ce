"""Write the synthetic speech corpus to disk: wavs, syllable labels and timings.

Layout under ``out_dir``::

    <speaker>/<speaker>_<nnn>.wav   16-bit PCM, one utterance each
    labels.jsonl                    one JSON object per utterance (see ``_label_record``)
    speakers.json                   each speaker's Voice parameters
    grammar.json                    the grammar the syllables were drawn from

Every speaker draws from its own generator seeded by ``(cfg.seed, speaker index)``, so the
corpus is bit-identical for a seed however the work is spread over processes. The
grammar is always ``SyllableGrammar()`` (its defaults), the one the environments and the
evaluation score against. ``labels.jsonl`` is written last: its presence means the corpus
is complete. Nothing is reused from an earlier build; caching is the caller's business.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

from audiodream.config.schema import SyntheticCorpusConfig
from audiodream.data.synthetic.grammar import SYLLABLES, SyllableGrammar
from audiodream.data.synthetic.synth import FormantSynth, sample_voice
from audiodream.features.audio_io import write_pcm16

LABELS_FILE = "labels.jsonl"
SPEAKERS_FILE = "speakers.json"
GRAMMAR_FILE = "grammar.json"


@dataclass
class SyntheticUtterance:
    path: Path
    speaker: str
    syllables: list[int]
    duration_s: float


@dataclass(frozen=True)
class _SpeakerJob:
    out_dir: str
    index: int
    seed: int
    n_utterances: int
    min_syllables: int
    max_syllables: int
    sample_rate: int
    samples_per_syllable: int


def speaker_name(index: int) -> str:
    return f"spk{index:03d}"


def corpus_grammar() -> SyllableGrammar:
    """The grammar every synthetic corpus is drawn from."""
    return SyllableGrammar()


def check_corpus_config(cfg: SyntheticCorpusConfig) -> None:
    """A clear error naming the ``data.synthetic`` key that cannot make a corpus."""
    prefix = "data.synthetic"
    for key in ("n_speakers", "utterances_per_speaker", "min_syllables"):
        value = getattr(cfg, key)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{prefix}.{key} must be an integer >= 1, got {value!r}")
    if not isinstance(cfg.max_syllables, int) or cfg.max_syllables < cfg.min_syllables:
        raise ValueError(
            f"{prefix}.max_syllables must be an integer >= {prefix}.min_syllables "
            f"({cfg.min_syllables}), got {cfg.max_syllables!r}"
        )
    if cfg.n_speakers > 1000:
        raise ValueError(
            f"{prefix}.n_speakers must be <= 1000 (speakers are named spk000..spk999), got {cfg.n_speakers}"
        )


def build_synthetic_corpus(
    out_dir: Path,
    cfg: SyntheticCorpusConfig,
    sample_rate: int,
    samples_per_syllable: int,
    progress: bool = True,
    *,
    num_workers: int = 0,
) -> list[SyntheticUtterance]:
    """Synthesise the corpus into ``out_dir``; ``num_workers`` processes (0: one per CPU
    core, 1: in this process) each take whole speakers."""
    check_corpus_config(cfg)
    FormantSynth(sample_rate, samples_per_syllable)  # validates the sizes before any work
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        _SpeakerJob(str(out_dir), index, cfg.seed, cfg.utterances_per_speaker, cfg.min_syllables,
                    cfg.max_syllables, sample_rate, samples_per_syllable)
        for index in range(cfg.n_speakers)
    ]
    workers = min(len(jobs), num_workers if num_workers > 0 else (os.cpu_count() or 1))
    records: list[dict[str, Any]] = []
    voices: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=cfg.n_speakers * cfg.utterances_per_speaker, desc="synthetic corpus", unit="utt",
               disable=not progress)
    with bar:
        for speaker, voice, speaker_records in _run_jobs(jobs, workers):
            voices[speaker] = voice
            records.extend(speaker_records)
            bar.update(len(speaker_records))
    (out_dir / GRAMMAR_FILE).write_text(json.dumps(corpus_grammar().to_dict(), indent=1) + "\n")
    (out_dir / SPEAKERS_FILE).write_text(json.dumps(voices, indent=1) + "\n")
    with open(out_dir / LABELS_FILE, "w") as labels:
        for record in records:
            labels.write(json.dumps(record) + "\n")
    return [
        SyntheticUtterance(out_dir / r["path"], r["speaker"], list(r["syllable_ids"]), r["duration_s"])
        for r in records
    ]


def _run_jobs(jobs: list[_SpeakerJob], workers: int) -> Iterator[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """Speakers in order, from a process pool when ``workers > 1``. The pool spawns
    fresh interpreters: forking a process that already runs Ray or torch threads can hang."""
    if workers <= 1:
        yield from map(_synthesise_speaker, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_synthesise_speaker, jobs)


def _synthesise_speaker(job: _SpeakerJob) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    rng = np.random.default_rng([job.seed, job.index])
    speaker = speaker_name(job.index)
    voice = sample_voice(rng)
    synth = FormantSynth(job.sample_rate, job.samples_per_syllable)
    grammar = corpus_grammar()
    speaker_dir = Path(job.out_dir) / speaker
    speaker_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for number in range(job.n_utterances):
        n_syllables = int(rng.integers(job.min_syllables, job.max_syllables + 1))
        syllables = grammar.sample_utterance(rng, n_syllables)
        audio = synth.utterance(syllables, voice, rng)
        relative = f"{speaker}/{speaker}_{number:03d}.wav"
        write_pcm16(Path(job.out_dir) / relative, audio, job.sample_rate)
        records.append(_label_record(relative, speaker, syllables, job.samples_per_syllable / job.sample_rate))
    return speaker, dataclasses.asdict(voice), records


def _label_record(relative: str, speaker: str, syllables: list[int], syllable_s: float) -> dict[str, Any]:
    """One labels.jsonl line: syllable i spans [i, i+1) * syllable_s seconds."""
    return {
        "path": relative,
        "speaker": speaker,
        "syllables": [SYLLABLES[s] for s in syllables],
        "syllable_ids": list(syllables),
        "start_s": [round(i * syllable_s, 6) for i in range(len(syllables))],
        "end_s": [round((i + 1) * syllable_s, 6) for i in range(len(syllables))],
        "duration_s": round(len(syllables) * syllable_s, 6),
    }


def load_labels(out_dir: Path) -> dict[str, list[int]]:
    """Syllable ids of every utterance, keyed by its path relative to ``out_dir``."""
    path = Path(out_dir) / LABELS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no synthetic corpus labels here (build the corpus first)")
    labels: dict[str, list[int]] = {}
    with open(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                ids = [int(s) for s in record["syllable_ids"]]
                labels[str(record["path"])] = ids
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{path}:{number}: not a label record with 'path' and 'syllable_ids' ({err})") from err
            if any(not 0 <= s < len(SYLLABLES) for s in ids):
                raise ValueError(f"{path}:{number}: syllable id outside [0, {len(SYLLABLES)}) in {ids}")
    return labels
