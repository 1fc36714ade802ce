"""Stage `generate`: continue any audio file with the run's trained world model.

    python launch.py --config dreamer_audio run.dir=D run.stages=[generate] generate.prompt=FILE generate.seconds=S

writes D/generate/<name>.wav (the prompt, cut to whole env steps, then S seconds the
model imagines after it), <name>.png (the prompt's log-mel and the imagined one, a
dashed line where imagination starts) and <name>.json (what was done), and logs them to
MLflow. The model observes the whole prompt from an episode start, then rolls its prior
forward, drawing tokens at `generate.temperature` (as `generate.token_draw` says) and
the prior's latents within each step's mixture component at `generate.latent_temperature`;
actions are the actor's samples if the run trained one, else action 0
(evaluation/imagination.py). The continuation is made audible with Griffin-Lim at the
prompt's own loudness (its log-mel mean/std), run over the end of the prompt and the
continuation together so the phase runs on across the join.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from audiodream.config.schema import Config
from audiodream.evaluation.imagination import Temperatures, behaviour_policy, imagine_mels, observe_prompt
from audiodream.evaluation.plots import plot_spectrogram_rows
from audiodream.evaluation.trained_run import TrainedRun, load_trained_run
from audiodream.features import MelInverter, write_wav
from audiodream.generation.prompt import PromptClip, load_prompt
from audiodream.tracking import Tracker
from audiodream.worldmodel import resolve_device

log = logging.getLogger(__name__)

GRIFFIN_LIM_CONTEXT_STEPS = 12  # prompt steps inverted together with the continuation


@dataclass
class Continuation:
    prompt: PromptClip
    mel: np.ndarray  # (n_mels, steps * chunk_frames) imagined z-scored log-mel
    audio: np.ndarray  # prompt audio followed by exactly `seconds` of continuation
    steps: int


def check_generate_config(cfg: Config) -> None:
    seconds = cfg.generate.seconds
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"config key 'generate.seconds': must be a positive number of seconds, got {seconds!r}")
    Temperatures.from_config(cfg.generate, "generate", "temperature")


@torch.no_grad()
def continue_prompt(
    cfg: Config, run: TrainedRun, prompt: PromptClip, seconds: float, temperatures: Temperatures = Temperatures(), generator: Optional[torch.Generator] = None
) -> Continuation:
    """Imagine `seconds` of audio after `prompt` and make it audible."""
    features = cfg.features
    frames = run.tokenizer.chunk_frames
    samples_per_step = frames * features.hop_length
    samples = int(round(seconds * features.sample_rate))
    steps = max(1, math.ceil(samples / samples_per_step))
    tokens = run.tokenizer.encode(prompt.mel[None]).cpu()  # (1, P, K)
    policy = behaviour_policy(run.actor, run.world_model)
    state = observe_prompt(run.world_model, tokens, policy, generator)
    mel = imagine_mels(run.world_model, run.tokenizer, state, steps, policy, temperatures, generator)[0].numpy()
    context_steps = min(prompt.steps, GRIFFIN_LIM_CONTEXT_STEPS)
    joined = np.concatenate([prompt.mel[:, -context_steps * frames :], mel], axis=1)
    wave = MelInverter(features).waveform(joined, prompt.mean, prompt.std)
    tail = wave[context_steps * samples_per_step :][:samples]
    return Continuation(prompt, mel, np.concatenate([prompt.audio, tail]).astype(np.float32), steps)


def write_continuation(cfg: Config, result: Continuation, out_dir: Path, temperatures: Temperatures, actions: str) -> list[Path]:
    name = result.prompt.path.stem
    features = cfg.features
    wav = write_wav(out_dir / f"{name}.wav", result.audio, features.sample_rate)
    fps = features.sample_rate / features.hop_length
    prompt_frames = result.prompt.mel.shape[1]
    joined = np.concatenate([result.prompt.mel, result.mel], axis=1)
    png = plot_spectrogram_rows([[(joined, f"{name}: prompt ({result.prompt.steps} steps) | imagined ({result.steps} steps)", prompt_frames)]], out_dir / f"{name}.png", fps)
    info = {
        "prompt": str(result.prompt.path),
        "prompt_steps": result.prompt.steps,
        "prompt_seconds": len(result.prompt.audio) / features.sample_rate,
        "continuation_steps": result.steps,
        "continuation_seconds": (len(result.audio) - len(result.prompt.audio)) / features.sample_rate,
        "temperature": temperatures.tokens,
        "latent_temperature": temperatures.latents,
        "token_draw": temperatures.token_draw,
        "actions": actions,
        "sample_rate": features.sample_rate,
    }
    meta = out_dir / f"{name}.json"
    meta.write_text(json.dumps(info, indent=2))
    return [wav, png, meta]


def generate_stage(cfg: Config, run_dir: Path, tracker: Tracker) -> None:
    """Stage entry point (see audiodream.pipeline.stages)."""
    check_generate_config(cfg)
    prompt = load_prompt(cfg.generate.prompt, cfg.features, cfg.env.chunk_frames)
    run = load_trained_run(cfg, Path(run_dir), resolve_device(cfg.learner.device))
    generator = torch.Generator(device=run.device).manual_seed(cfg.run.seed)
    temperatures = Temperatures.from_config(cfg.generate, "generate", "temperature")
    result = continue_prompt(cfg, run, prompt, float(cfg.generate.seconds), temperatures, generator)
    actions = "actor (sampled)" if run.actor is not None else "0 (no actor in this run)"
    files = write_continuation(cfg, result, Path(run_dir) / "generate", temperatures, actions)
    tracker.log_artifacts(files, "generate")
    log.info("generate: %s + %.2f s imagined -> %s", prompt.path, float(cfg.generate.seconds), files[0])
