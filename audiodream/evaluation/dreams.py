"""Dreams to sound: imagined token rollouts -> tokenizer decoder -> log-mel -> Griffin-Lim -> wav.

Two kinds, written to eval/samples/ with pictures in eval/plots/:

* continuations (`continuation_<i>.wav`): a **test-split** utterance of the corpus; the
  model observes its first min(C, n-1) steps and imagines the remaining steps. The wav
  is the real prompt's log-mel followed by the imagined one, turned into sound with the
  prompt utterance's own mean/std; `continuation_<i>_real.wav` is the real utterance
  through the same Griffin-Lim, so vocoder artefacts are heard in both.
  `plots/continuations.png`: real log-mel beside prompt + imagination (dashed line:
  where imagination starts).
* unconditional dreams (`dream_<i>.wav`): `eval.dream_steps` steps imagined from the
  prior of an episode start, with no observation at all; sound made with the training
  split's average mean/std. `plots/dreams.png` shows each beside a real test utterance.

Both draw imagined steps at `eval.token_temperature`, `eval.latent_temperature` and
`eval.token_draw` (imagination.Temperatures). Actions are the run's behaviour
(imagination.py). Corpus utterances are the prompts for every env: for Complete-v0 they
sound like a (long) spoken prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from audiodream.config.schema import Config
from audiodream.data.stage import load_split_features
from audiodream.evaluation.imagination import Temperatures, dream_mels, imagine_mels, observe_prompt
from audiodream.evaluation.plots import plot_spectrogram_rows
from audiodream.evaluation.trained_run import TrainedRun
from audiodream.features import MelInverter, write_wav
from audiodream.tokenizer.chunks import aligned_chunks
from audiodream.worldmodel import Policy

STATISTICS_CLIPS = 256  # training clips whose mean/std are averaged for unconditional dreams


@dataclass
class Utterance:
    name: str
    mel: np.ndarray  # (n_mels, frames) z-scored
    mean: float
    std: float


def corpus_utterances(cfg: Config, run_dir: Path, split: str, n: int, seed: int, min_steps: int = 2) -> list[Utterance]:
    """Up to `n` utterances of a split with at least `min_steps` whole chunks, in a seeded random order."""
    items = [(row, mel) for row, mel in load_split_features(cfg, run_dir, split) if mel.frames >= min_steps * cfg.env.chunk_frames]
    order = np.random.default_rng(seed).permutation(len(items))[:n]
    return [Utterance(Path(items[i][0].path).stem, items[i][1].mel, items[i][1].mean, items[i][1].std) for i in order]


def training_statistics(cfg: Config, run_dir: Path) -> tuple[float, float]:
    """Average (mean, std) of the training clips' log-mels: how loud an unconditional dream is made."""
    stats = [(mel.mean, mel.std) for _, mel in load_split_features(cfg, run_dir, "train")[:STATISTICS_CLIPS]]
    if not stats:
        raise ValueError(f"{run_dir}: the train split of the manifest is empty; cannot turn dreams into sound")
    return float(np.mean([m for m, _ in stats])), float(np.mean([s for _, s in stats]))


@torch.no_grad()
def write_continuations(
    run: TrainedRun,
    utterances: list[Utterance],
    context_steps: int,
    policy: Policy,
    inverter: MelInverter,
    out_dir: Path,
    plot_path: Path,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
    temperatures: Temperatures = Temperatures(),
) -> list[Path]:
    """continuation_<i>.wav / _real.wav per utterance and one PNG; returns the files written."""
    tok, sample_rate, frames = run.tokenizer, inverter.cfg.sample_rate, run.tokenizer.chunk_frames
    written: list[Path] = []
    rows = []
    for i, utt in enumerate(tqdm(utterances, desc="continuations", unit="clip", disable=not progress, leave=False)):
        chunks = aligned_chunks(utt.mel, frames)
        prompt_steps = max(1, min(context_steps, len(chunks) - 1))
        tokens = tok.encode_chunks(chunks).cpu()[None]  # (1, n, K)
        state = observe_prompt(run.world_model, tokens[:, :prompt_steps], policy, generator)
        imagined_mel = imagine_mels(run.world_model, tok, state, len(chunks) - prompt_steps, policy, temperatures, generator)[0].numpy()
        real = utt.mel[:, : len(chunks) * frames]
        combined = np.concatenate([real[:, : prompt_steps * frames], imagined_mel], axis=1)
        written.append(write_wav(out_dir / f"continuation_{i}.wav", inverter.waveform(combined, utt.mean, utt.std), sample_rate))
        written.append(write_wav(out_dir / f"continuation_{i}_real.wav", inverter.waveform(real, utt.mean, utt.std), sample_rate))
        rows.append([(real, f"real: {utt.name}", None), (combined, f"{prompt_steps} steps observed | imagined", prompt_steps * frames)])
    if rows:
        fps = inverter.cfg.sample_rate / inverter.cfg.hop_length
        written.append(plot_spectrogram_rows(rows, plot_path, fps))
    return written


@torch.no_grad()
def write_dreams(
    run: TrainedRun,
    n: int,
    steps: int,
    policy: Policy,
    inverter: MelInverter,
    mean: float,
    std: float,
    references: list[Utterance],
    out_dir: Path,
    plot_path: Path,
    generator: Optional[torch.Generator] = None,
    temperatures: Temperatures = Temperatures(),
) -> list[Path]:
    """dream_<i>.wav for `n` unconditional dreams and one PNG beside real references."""
    if n < 1:
        return []
    mels = dream_mels(run.world_model, run.tokenizer, n, steps, policy, temperatures, generator).numpy()
    written = []
    rows = []
    for i, mel in enumerate(mels):
        written.append(write_wav(out_dir / f"dream_{i}.wav", inverter.waveform(mel, mean, std), inverter.cfg.sample_rate))
        row = [(mel, f"dream {i}: {steps} imagined steps", None)]
        if i < len(references):
            row.insert(0, (references[i].mel, f"real (test): {references[i].name}", None))
        rows.append(row)
    fps = inverter.cfg.sample_rate / inverter.cfg.hop_length
    written.append(plot_spectrogram_rows(rows, plot_path, fps))
    return written
