"""Stage generate (audiodream/generation/): continuing an audio file, and the prompt errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiodream.config.schema import Config
from audiodream.data.stage import samples_per_step
from audiodream.generation import MIN_PROMPT_STEPS, PromptError, generate_stage, load_prompt
from audiodream.tracking import Tracker
from tests.audio_fixtures import voiced_tone
from tests.test_evaluation import build_tiny_run, tiny_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    run_dir = tmp_path_factory.mktemp("generate_run")
    cfg = tiny_config(run_dir, "audiodream/Listen-v0", "dreamer.actor_critic=false")
    build_tiny_run(cfg, run_dir, updates=2)
    return cfg, run_dir


def with_prompt(cfg: Config, prompt: Path | None, seconds: float = 0.5) -> Config:
    return dataclasses.replace(cfg, generate=dataclasses.replace(cfg.generate, prompt=None if prompt is None else str(prompt), seconds=seconds))


def test_generate_continues_a_clip_of_another_rate_and_format(trained_run, tmp_path: Path) -> None:
    cfg, run_dir = trained_run
    prompt = tmp_path / "hello there.flac"
    sf.write(str(prompt), voiced_tone(22050, 1.0), 22050, format="FLAC")
    generate_stage(with_prompt(cfg, prompt, seconds=0.5), run_dir, Tracker.disabled())
    out = run_dir / "generate"
    audio, rate = sf.read(str(out / "hello there.wav"))
    step = samples_per_step(cfg)
    prompt_samples = (16000 // cfg.features.hop_length // cfg.env.chunk_frames) * step  # 1 s -> 6 whole steps
    assert rate == cfg.features.sample_rate
    assert len(audio) == prompt_samples + 8000  # the prompt cut to whole steps + exactly 0.5 s
    assert np.isfinite(audio).all()
    assert np.abs(audio[prompt_samples:]).max() > 1e-3  # the continuation is not silence
    assert (out / "hello there.png").read_bytes()[:4] == b"\x89PNG"
    info = json.loads((out / "hello there.json").read_text())
    assert info["prompt_steps"] == 6 and info["continuation_steps"] == 4 and info["actions"].startswith("0")
    assert info["temperature"] == 1.0 and info["latent_temperature"] == 1.0 and info["token_draw"] == "sample"


def test_generate_at_other_temperatures_says_so_and_refuses_negative_ones(trained_run, tmp_path: Path) -> None:
    cfg, run_dir = trained_run
    prompt = tmp_path / "tone.wav"
    sf.write(str(prompt), voiced_tone(16000, 1.0), 16000)
    out = run_dir / "generate" / "tone.wav"
    runs = []
    for tokens, latents, draw in ((1.0, 1.0, "sample"), (0.0, 0.0, "sample"), (1.0, 0.0, "mean")):
        at = with_prompt(cfg, prompt)
        generate_stage(
            dataclasses.replace(at, generate=dataclasses.replace(at.generate, temperature=tokens, latent_temperature=latents, token_draw=draw)), run_dir, Tracker.disabled()
        )
        info = json.loads(out.with_suffix(".json").read_text())
        assert (info["temperature"], info["latent_temperature"], info["token_draw"]) == (tokens, latents, draw)
        runs.append(sf.read(str(out))[0])
    assert not np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[1], runs[2])  # the same seed, other draws
    bad = with_prompt(cfg, prompt)
    with pytest.raises(ValueError, match="generate.latent_temperature"):
        generate_stage(dataclasses.replace(bad, generate=dataclasses.replace(bad.generate, latent_temperature=-1.0)), run_dir, Tracker.disabled())
    with pytest.raises(ValueError, match="'generate.token_draw': must be one of sample, mean"):
        generate_stage(dataclasses.replace(bad, generate=dataclasses.replace(bad.generate, token_draw="mode")), run_dir, Tracker.disabled())


@pytest.mark.parametrize(
    "kind, message",
    [
        ("short", f"too short: .* need.*at least {MIN_PROMPT_STEPS} steps"),
        ("silent", "silent"),
        ("garbage", "unreadable audio"),
        ("missing", "no such file"),
    ],
)
def test_bad_prompts_are_clear_errors_naming_the_file(trained_run, tmp_path: Path, kind: str, message: str) -> None:
    cfg, run_dir = trained_run
    path = tmp_path / f"{kind}.wav"
    step_s = samples_per_step(cfg) / cfg.features.sample_rate
    if kind == "short":
        sf.write(str(path), voiced_tone(16000, 1.5 * step_s), 16000)  # one whole step
    elif kind == "silent":
        sf.write(str(path), np.zeros(16000, np.float32), 16000)
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    with pytest.raises(PromptError, match=message) as caught:
        generate_stage(with_prompt(cfg, path), run_dir, Tracker.disabled())
    assert str(path) in str(caught.value)
    assert not (run_dir / "generate" / f"{kind}.wav").exists()


def test_unset_prompt_and_bad_seconds_name_the_key(trained_run) -> None:
    cfg, run_dir = trained_run
    with pytest.raises(PromptError, match="generate.prompt"):
        generate_stage(with_prompt(cfg, None), run_dir, Tracker.disabled())
    with pytest.raises(ValueError, match="generate.seconds"):
        generate_stage(with_prompt(cfg, Path("x.wav"), seconds=0.0), run_dir, Tracker.disabled())


def test_prompt_is_cut_to_whole_steps_and_keeps_its_statistics(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, "audiodream/Listen-v0")
    path = tmp_path / "p.wav"
    sf.write(str(path), voiced_tone(16000, 0.7), 16000)
    clip = load_prompt(path, cfg.features, cfg.env.chunk_frames)
    assert clip.steps == 70 // cfg.env.chunk_frames
    assert clip.mel.shape == (cfg.features.n_mels, clip.steps * cfg.env.chunk_frames)
    assert len(clip.audio) == clip.steps * samples_per_step(cfg)
    assert clip.std > 0 and np.isfinite(clip.mean)
