"""Reading the prompt clip of stage `generate`, with errors that name the file and what is wrong.

The prompt becomes exactly what the world model was trained on: audio resampled to
`features.sample_rate`, a log-mel z-scored over the whole clip (its mean/std are kept to
turn the continuation back into sound at the prompt's loudness), cut into whole env
steps of `env.chunk_frames` frames. Frames after the last whole step are dropped, and the
continuation starts right after the last whole step.
"""

from __future__ import annotations

from audiodream.errors import UserFacingError
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from audiodream.config.schema import FeaturesConfig
from audiodream.features import AudioReadError, LogMelExtractor, load_audio

MIN_PROMPT_STEPS = 2


class PromptError(UserFacingError, ValueError):
    """A `generate.prompt` that cannot be continued (missing, unreadable, silent, too short)."""


@dataclass
class PromptClip:
    path: Path
    audio: np.ndarray  # (steps * samples_per_step,) float32 at features.sample_rate
    mel: np.ndarray  # (n_mels, steps * chunk_frames) z-scored log-mel
    mean: float
    std: float
    steps: int


def load_prompt(path: Optional[str | Path], features: FeaturesConfig, chunk_frames: int, min_steps: int = MIN_PROMPT_STEPS) -> PromptClip:
    if path is None or str(path).strip() == "":
        raise PromptError("generate.prompt: not set; name the audio file to continue, e.g. generate.prompt=clip.wav")
    path = Path(path).expanduser()
    try:
        wave = load_audio(path, features.sample_rate)
    except AudioReadError as err:
        raise PromptError(f"generate.prompt {path}: {err.reason}") from err
    samples_per_step = chunk_frames * features.hop_length
    step_s = samples_per_step / features.sample_rate
    extractor = LogMelExtractor(features)
    steps = extractor.frames_of(len(wave)) // chunk_frames
    if steps < min_steps:
        raise PromptError(
            f"generate.prompt {path}: too short: {len(wave) / features.sample_rate:.3f} s is {steps} env step(s) of {step_s:.3f} s; "
            f"a prompt needs at least {min_steps} steps ({min_steps * step_s:.3f} s)"
        )
    normalized = extractor.normalized(wave)
    mel = normalized.mel[:, : steps * chunk_frames]
    if float(np.std(mel)) < 1e-3:
        raise PromptError(f"generate.prompt {path}: silent or constant (its log-mel does not change)")
    return PromptClip(path, wave[: steps * samples_per_step], mel, normalized.mean, normalized.std, steps)
