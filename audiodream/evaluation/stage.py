"""Stage `eval`: how well the run's world model predicts, completes and dreams, and how its agent does.

Writes run.dir/eval/:
    metrics.json     every number below (null where a measure does not apply, with the reason)
    plots/ce_by_horizon.png, plots/completion.png, plots/continuations.png, plots/dreams.png
    samples/*.wav    continuations and unconditional dreams (dreams.py)
and logs the numbers (prefixed `eval.`) and the files to MLflow.

metrics.json:
    ce_by_horizon, ce_by_horizon_sampled, ce_baselines, ce_lag_bigram,
    steps_by_horizon, context_steps, n_samples,
    ce_test_episodes, ce_baseline_fit                 open_loop.py
    completion_accuracy, completion_tv_distance, completion_tv_floor,
    completion_accuracy_exact_samples, completion_outside_support,
    completion_mode_mass(_true), completion_rest_of_support_mass(_true),
    completion_posterior_decode_accuracy, completion_prompts, completion_samples,
    completion_source, completion_classifier(_reconstructions), classifier_accuracy_real,
    classifier_accuracy_reconstructed                 completion.py, completion_prompts.py
    return_mean, return_std, return_episodes, return_policy, return_split,
    return_random_policy_measured, return_mean_test_split,
    optimal_return, random_return, blind_return, return_gap_closed   returns.py
    step                                              learner updates behind the evaluated weights

All randomness (episodes, prompts, latents, tokens) is seeded from run.seed, so the same
run.dir and config give the same numbers; eval episodes use seeds no training episode had.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from audiodream.agent import RandomPolicy
from audiodream.config.schema import Config, EvalConfig
from audiodream.evaluation.completion import ChunkClassifier, CompletionScores, completion_scores, imagine_next_syllables, posterior_decode_accuracy
from audiodream.evaluation.completion_prompts import CompletionSetup, check_syllable_classifier, completion_setup, fit_syllable_classifier
from audiodream.evaluation.dreams import corpus_utterances, training_statistics, write_continuations, write_dreams
from audiodream.evaluation.imagination import Temperatures, behaviour_policy
from audiodream.evaluation.open_loop import open_loop_metrics, training_episodes, warn_uncovered_horizons
from audiodream.evaluation.plots import plot_ce_by_horizon, plot_completion_histograms
from audiodream.evaluation.returns import play_in_env, return_metrics
from audiodream.evaluation.trained_run import TrainedRun, load_trained_run
from audiodream.features import MelInverter
from audiodream.tracking import Tracker
from audiodream.worldmodel import resolve_device

log = logging.getLogger(__name__)

# Far above any seed a training env worker uses (run.seed * 1_000_003 + env steps + worker index).
EVAL_SEED_OFFSET = 987_654_321


class EvalPaths:
    def __init__(self, run_dir: Path) -> None:
        self.root = Path(run_dir) / "eval"
        self.metrics = self.root / "metrics.json"
        self.plots = self.root / "plots"
        self.samples = self.root / "samples"

    def clear(self) -> None:
        """Remove the wavs and pictures of an earlier eval, so none of them outlives its numbers."""
        for stale in [*self.samples.glob("*.wav"), *self.plots.glob("*.png"), self.metrics]:
            stale.unlink(missing_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)


def eval_seed(cfg: Config) -> int:
    return cfg.run.seed * 1_000_003 + EVAL_SEED_OFFSET


def check_eval_config(cfg: EvalConfig) -> None:
    positive = ("context_steps", "episodes", "completion_prompts", "completion_samples", "ce_samples", "dream_steps")
    for key in positive:
        value = getattr(cfg, key)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"config key 'eval.{key}': must be a positive integer, got {value!r}")
    if not isinstance(cfg.n_dreams, int) or cfg.n_dreams < 0:
        raise ValueError(f"config key 'eval.n_dreams': must be an integer >= 0, got {cfg.n_dreams!r}")
    if not cfg.horizons or any(not isinstance(h, int) or h < 1 for h in cfg.horizons):
        raise ValueError(f"config key 'eval.horizons': must be a non-empty list of positive integers, got {cfg.horizons!r}")
    check_syllable_classifier(cfg.syllable_classifier)
    eval_temperatures(cfg)


def eval_temperatures(cfg: EvalConfig) -> Temperatures:
    return Temperatures.from_config(cfg, "eval", "token_temperature")


def eval_stage(cfg: Config, run_dir: Path, tracker: Tracker) -> None:
    """Stage entry point (see audiodream.pipeline.stages)."""
    check_eval_config(cfg.eval)
    run = load_trained_run(cfg, Path(run_dir), resolve_device(cfg.learner.device))
    metrics = run_eval(cfg, Path(run_dir), run, tracker)
    ce = metrics["ce_by_horizon"]
    log.info(
        "eval: CE (nats/token) by horizon %s; baselines at h=1: %s; completion accuracy %s, TV %s; greedy return %s",
        {h: _round(v) for h, v in ce.items()},
        {name: _round(curve.get("1")) for name, curve in metrics["ce_baselines"].items()},
        _round(metrics.get("completion_accuracy")),
        _round(metrics.get("completion_tv_distance")),
        _round(metrics.get("return_mean")),
    )


def run_eval(cfg: Config, run_dir: Path, run: TrainedRun, tracker: Optional[Tracker] = None) -> dict[str, Any]:
    """Every eval measure for the models in `run`; writes run.dir/eval/ and returns metrics.json's content."""
    check_eval_config(cfg.eval)
    paths = EvalPaths(run_dir)
    paths.clear()
    seed = eval_seed(cfg)
    agent = run.agent_policy()
    metrics: dict[str, Any] = {"step": run.step, "model_ema_decay": run.model_ema_decay, "model_ema_power": run.model_ema_power, "model_ema_start": run.model_ema_start}
    metrics.update(_open_loop(cfg, run_dir, run, agent, seed, paths))
    metrics.update(return_metrics(cfg, run_dir, run.tokenizer_path, agent, run.n_actions, seed))
    metrics.update(_completion(cfg, run_dir, run, seed, paths))
    _dreams(cfg, run_dir, run, seed, paths)
    metrics = _json_safe(metrics)
    paths.metrics.write_text(json.dumps(metrics, indent=2))
    if tracker is not None:
        tracker.log_metrics({"eval": metrics}, step=run.step)
        tracker.log_artifacts([paths.metrics], "eval")
        tracker.log_artifacts(sorted(paths.plots.glob("*.png")), "eval/plots")
        tracker.log_artifacts(sorted(paths.samples.glob("*.wav")), "eval/samples")
    return metrics


# ------------------------------------------------------------------------------ pieces


def _open_loop(cfg: Config, run_dir: Path, run: TrainedRun, agent: Any, seed: int, paths: EvalPaths) -> dict[str, Any]:
    behaviour = agent if agent is not None else RandomPolicy(run.n_actions)
    test = play_in_env(cfg, run_dir, run.tokenizer_path, behaviour, cfg.eval.episodes, seed, False, "test", "test episodes")
    train, fit_source = training_episodes(cfg, run_dir, run.tokenizer_path, behaviour, seed)
    result = open_loop_metrics(run.world_model, train, test.episodes, cfg.eval, seed)
    warn_uncovered_horizons(result, cfg.eval.context_steps)
    plot_ce_by_horizon(
        result["ce_by_horizon"], result["ce_baselines"], paths.plots / "ce_by_horizon.png", cfg.eval.context_steps, result["ce_by_horizon_sampled"]
    )
    return {**result, "ce_test_episodes": len(test.episodes), "ce_baseline_fit": fit_source}


def _completion(cfg: Config, run_dir: Path, run: TrainedRun, seed: int, paths: EvalPaths) -> dict[str, Any]:
    ecfg = cfg.eval
    setup, reason = completion_setup(cfg, run_dir, run.tokenizer, ecfg.completion_prompts, seed)
    if setup is None:
        log.warning("eval: no syllable completion test: %s", reason)
        return {"completion_accuracy": None, "completion_tv_distance": None, "completion_source": f"skipped: {reason}"}
    renderer = run.tokenizer if ecfg.classifier_reconstructions else None
    classifier = fit_syllable_classifier(ecfg.syllable_classifier, setup.train_chunks, seed, renderer)
    policy = behaviour_policy(run.actor, run.world_model)
    true_next = np.stack([p.true_next for p in setup.prompts])
    temperatures = eval_temperatures(ecfg)

    def imagined_scores(at: Temperatures) -> tuple[CompletionScores, torch.Generator]:
        generator = torch.Generator(device=run.device).manual_seed(seed)
        predicted = imagine_next_syllables(
            run.world_model, run.tokenizer, classifier, setup.prompts, ecfg.completion_samples, policy, generator, cfg.run.progress, at
        )
        return completion_scores(predicted, true_next, seed), generator

    scores, generator = imagined_scores(temperatures)
    heard = posterior_decode_accuracy(run.world_model, run.tokenizer, classifier, setup.prompts, policy, generator, temperatures)
    plot_completion_histograms(scores.histograms, true_next, [p.context for p in setup.prompts], paths.plots / "completion.png")
    metrics = {
        **scores.metrics(),
        "completion_posterior_decode_accuracy": heard,
        "completion_token_temperature": temperatures.tokens,
        "completion_latent_temperature": temperatures.latents,
        "completion_token_draw": temperatures.token_draw,
        "completion_prompts": len(setup.prompts),
        "completion_samples": ecfg.completion_samples,
        "completion_prompt_steps_mean": float(np.mean([len(p.context) for p in setup.prompts])),
        "completion_source": setup.source,
        "completion_classifier": ecfg.syllable_classifier,
        "completion_classifier_reconstructions": ecfg.classifier_reconstructions,
        **_classifier_accuracy(classifier, setup, run),
    }
    if temperatures != Temperatures():
        # The same prompts drawn from the model as trained, so a run shows what its
        # temperatures change and not only the figure at them.
        at_one = imagined_scores(Temperatures())[0].metrics()
        for key in ("completion_accuracy", "completion_tv_distance", "completion_outside_support"):
            metrics[f"{key}_temperature_1"] = at_one[key]
    return metrics


def _classifier_accuracy(classifier: ChunkClassifier, setup: CompletionSetup, run: TrainedRun) -> dict[str, Optional[float]]:
    """How far the classifier's names can be trusted: on held-out real chunks, and after a tokenizer round trip."""
    test = setup.test_chunks
    if len(test.labels) == 0:
        return {"classifier_accuracy_real": None, "classifier_accuracy_reconstructed": None}
    reconstructed = run.tokenizer.round_trip_chunks(test.mels)[1].numpy()
    return {
        "classifier_accuracy_real": float(np.mean(classifier.predict(test.mels) == test.labels)),
        "classifier_accuracy_reconstructed": float(np.mean(classifier.predict(reconstructed) == test.labels)),
    }


def _dreams(cfg: Config, run_dir: Path, run: TrainedRun, seed: int, paths: EvalPaths) -> list[Path]:
    n = cfg.eval.n_dreams
    if n < 1:
        return []
    inverter = MelInverter(cfg.features)
    policy = behaviour_policy(run.actor, run.world_model)
    generator = torch.Generator(device=run.device).manual_seed(seed + 3)
    utterances = corpus_utterances(cfg, run_dir, "test", n, seed)
    temperatures = eval_temperatures(cfg.eval)
    files = write_continuations(
        run, utterances, cfg.eval.context_steps, policy, inverter, paths.samples, paths.plots / "continuations.png", generator, cfg.run.progress, temperatures
    )
    mean, std = training_statistics(cfg, run_dir)
    files += write_dreams(
        run, n, cfg.eval.dream_steps, policy, inverter, mean, std, utterances, paths.samples, paths.plots / "dreams.png", generator, temperatures
    )
    return files


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value
